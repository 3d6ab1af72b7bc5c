"""Front proxy, WebSocket side, with real peers no one here wrote: clients on
Debian's python3-websockets and node-ws, backends on python3-websockets,
node-ws, websocketd (/bin/cat) and the chat example, all through the daemon's
proxy to instances with a `--route`. Text and binary frames of the sizes
around each length encoding boundary (0, 1, 125, 126, 65535, 65536, 1 MiB)
come back intact."""

import asyncio
import json
import os
import random
import string
import subprocess
import unittest

import websockets

from harness import Daemon, DaemonTestCase
from test_proxy import (HTTP_ECHO_PY, NODE_PATH, WEBSOCKETD_SH, WS_ECHO_JS, WS_ECHO_PY, create,
                        install, install_chat, proxy_addr, request)

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
NODE = "/usr/bin/node"

# A node-ws client (Debian node-ws). Modes:
#   echo URL SIZE...   for each size a text then a binary message of exactly
#                      SIZE bytes; checks each echo (type, length, bytes)
#   lines URL LINE...  sends each line as text, expects it back (websocketd)
# Prints one JSON line {"ok": bool, "results"/"error": ...}; exit 0 if ok.
NODE_CLIENT_JS = r'''
const WebSocket = require('ws');
const crypto = require('crypto');
const [mode, url, ...rest] = process.argv.slice(2);
function done(obj) { console.log(JSON.stringify(obj)); process.exit(obj.ok ? 0 : 1); }
setTimeout(() => done({ ok: false, error: 'timeout' }), 60000).unref();
const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
ws.on('error', (e) => done({ ok: false, error: String(e) }));
ws.on('unexpected-response', (req, res) => done({ ok: false, error: 'status ' + res.statusCode }));
const plan = [];
if (mode === 'echo') {
  for (const n of rest.map(Number)) {
    const letters = 'abcdefghijklmnopqrstuvwxyz0123456789';
    let text = '';
    const bytes = crypto.randomBytes(n);
    for (let k = 0; k < n; k++) text += letters[bytes[k] % letters.length];
    plan.push({ n, binary: false, payload: Buffer.from(text, 'latin1') });
    plan.push({ n, binary: true, payload: crypto.randomBytes(n) });
  }
} else {
  for (const line of rest) plan.push({ n: line.length, binary: false, payload: Buffer.from(line) });
}
const results = [];
let i = 0;
function next() {
  if (i === plan.length) {
    ws.on('close', () => done({ ok: results.every((r) => r.same && r.typeOk), results }));
    return ws.close(1000);
  }
  const p = plan[i];
  ws.send(p.binary ? p.payload : p.payload.toString('latin1'), { binary: p.binary });
}
ws.on('open', next);
ws.on('message', (data, isBinary) => {
  const p = plan[i];
  results.push({ n: p.n, binary: p.binary, got_binary: isBinary, len: data.length,
                 same: Buffer.compare(data, p.payload) === 0, typeOk: isBinary === p.binary });
  i++;
  next();
});
ws.on('close', (code) => { if (i < plan.length) done({ ok: false, error: 'closed ' + code, results }); });
'''


def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def text_of(n, rnd):
    return "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(n))


def connect(url, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(url, **kw)


class ProxyWebSocketTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = d = Daemon()
        d.__enter__()
        try:
            create(d, "echo-py", install(d, "ws_echo.py", WS_ECHO_PY), "/echo/")
            create(d, "echo-node", install(d, "ws_echo.js", WS_ECHO_JS), "/nodeecho/",
                   "--env", "NODE_PATH=" + NODE_PATH)
            create(d, "wsd", install(d, "websocketd.sh", WEBSOCKETD_SH), "/wsd/",
                   "--strip-prefix")
            create(d, "chat", install_chat(d), "/chat/")
            create(d, "web", install(d, "http_echo.py", HTTP_ECHO_PY), "/web/")
            cls.node_client = os.path.join(d.data_dir, "ws_client.js")
            with open(cls.node_client, "w") as f:
                f.write(NODE_CLIENT_JS)
        except BaseException:
            d.__exit__(None, None, None)
            raise
        host, port = proxy_addr(d)
        cls.base = "ws://%s:%d" % (host, port)

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    # ---- python-websockets client ---------------------------------------

    def check_sizes_python(self, path):
        rnd = random.Random(path)

        async def go():
            got = []
            async with connect(self.base + path) as ws:
                for n in SIZES:
                    text = text_of(n, rnd)
                    await ws.send(text)
                    back = await asyncio.wait_for(ws.recv(), 30)
                    got.append(("text", n, isinstance(back, str), back == text))
                    data = rnd.randbytes(n)
                    await ws.send(data)
                    back = await asyncio.wait_for(ws.recv(), 30)
                    got.append(("binary", n, isinstance(back, bytes), back == data))
            return got

        for kind, n, type_ok, same in run(go()):
            self.assertTrue(type_ok, "%s frame of %d bytes via %s came back as the other type"
                            % (kind, n, path))
            self.assertTrue(same, "%s frame of %d bytes via %s changed on the way"
                            % (kind, n, path))

    def test_python_client_frame_sizes_to_python_echo(self):
        self.check_sizes_python("/echo/")

    def test_python_client_frame_sizes_to_node_echo(self):
        self.check_sizes_python("/nodeecho/")

    # ---- node-ws client --------------------------------------------------

    def node(self, *args):
        env = dict(os.environ, NODE_PATH=NODE_PATH)
        cp = subprocess.run([NODE, self.node_client] + list(args), capture_output=True,
                            text=True, timeout=90, env=env)
        try:
            out = json.loads(cp.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail("node client printed no result (exit %d): %r %r"
                      % (cp.returncode, cp.stdout, cp.stderr))
        return cp.returncode, out

    def test_node_client_frame_sizes_to_python_and_node_echo(self):
        for path in ("/echo/", "/nodeecho/"):
            code, out = self.node("echo", self.base + path, *map(str, SIZES))
            self.assertEqual(code, 0, "%s: %r" % (path, out))
            self.assertEqual(len(out["results"]), 2 * len(SIZES), out)
            for r in out["results"]:
                self.assertTrue(r["same"] and r["typeOk"], "%s: %r" % (path, r))

    def test_websocketd_with_python_and_node_clients(self):
        lines = ["hello through the proxy", "x", "a line with \t tab", "é ü ☃"]

        async def go():
            async with connect(self.base + "/wsd/") as ws:
                out = []
                for line in lines:
                    await ws.send(line)
                    out.append(await asyncio.wait_for(ws.recv(), 10))
                return out

        self.assertEqual(run(go()), lines)
        code, out = self.node("lines", self.base + "/wsd/", *lines[:3])
        self.assertEqual(code, 0, out)
        self.assertEqual([r["len"] for r in out["results"]], [len(x) for x in lines[:3]], out)

    # ---- the chat example ------------------------------------------------

    def test_chat_example_through_the_proxy(self):
        status, hdrs, body = request(self.d, "GET", "/chat/")
        self.assertEqual(status, 200, body[:200])
        self.assertIn("text/html", hdrs.get("content-type", ""))
        self.assertIn(b"/chat/ws", body, "the page does not name its WebSocket path")
        status, _, body = request(self.d, "GET", "/chat/healthz")
        self.assertEqual((status, body.strip()), (200, b"ok"))

        async def recv_json(ws, want):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg.get("type") == want:
                    return msg

        async def go():
            async with connect(self.base + "/chat/ws") as ann, \
                    connect(self.base + "/chat/ws") as bob:
                await recv_json(ann, "welcome")
                await ann.send(json.dumps({"type": "hello", "name": "ann"}))
                self.assertEqual((await recv_json(ann, "join"))["name"], "ann")
                await recv_json(bob, "welcome")
                await bob.send(json.dumps({"type": "hello", "name": "bob"}))
                self.assertEqual((await recv_json(ann, "join"))["name"], "bob")
                await ann.send(json.dumps({"type": "say", "text": "hi bob, via the proxy"}))
                got = await recv_json(bob, "message")
                self.assertEqual((got["name"], got["text"]), ("ann", "hi bob, via the proxy"))
                mine = await recv_json(ann, "message")
                self.assertEqual(mine["text"], "hi bob, via the proxy")

        run(go(), 60)

    # ---- upgrade errors --------------------------------------------------

    def test_upgrade_to_missing_route_or_non_websocket_backend(self):
        async def status_of(path):
            try:
                async with connect(self.base + path):
                    return 101
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code

        self.assertEqual(run(status_of("/nowhere/ws")), 404)
        # A plain HTTP backend answers the upgrade with 200: no tunnel is made,
        # and the proxy passes the backend's answer on.
        self.assertEqual(run(status_of("/web/ws")), 200)


if __name__ == "__main__":
    unittest.main()
