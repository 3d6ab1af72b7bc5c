"""Front proxy, HTTP side, through the whole daemon: an instance's `--route`
makes it reachable on the proxy address of daemon.json; X-Forwarded-* and
Forwarded reach the backend; `--strip-prefix`; host routes; 404 / 502 / 503
(and a held request) with bodies that say why; per-instance access rules; header size limits.

This file also holds the helpers and backend programs the other
test_proxy_*.py files import (functions and constants only, no TestCase).
"""

import http.client
import json
import os
import shutil
import socket
import tempfile
import time
import unittest

from harness import BIN, Daemon, DaemonTestCase, HarnessError

# --------------------------------------------------------------------------
# Backend programs, written into the harness home (commands must live there).
# --------------------------------------------------------------------------

# HTTP/1.1 echo backend (standard library). Every request is answered with a
# JSON object describing what arrived: method, target, header fields in order
# (with duplicates), body, and the backend's pid and HV_NAME. Every request it
# receives is also recorded; a target ending in `/__seen` returns that record
# (and is not recorded itself), `/__reset` clears it.
# HV_GATE (optional): a FIFO path. When the file HV_GATE + ".closed" exists at
# start, the program reads one line from the FIFO before it binds its port:
# the test decides when the instance may become ready.
HTTP_ECHO_PY = r'''#!/usr/bin/python3
import http.server, json, os, socketserver, threading

gate = os.environ.get("HV_GATE")
if gate and os.path.exists(gate + ".closed"):
    with open(gate) as f:
        f.readline()

seen = []
lock = threading.Lock()

def read_chunked(rfile):
    out = b""
    while True:
        size = int(rfile.readline().split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return out
        out += rfile.read(size)
        rfile.readline()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = read_chunked(self.rfile)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        path = self.path
        if path.split("?")[0].endswith("/__seen"):
            with lock:
                reply = list(seen)
        elif path.split("?")[0].endswith("/__reset"):
            with lock:
                seen.clear()
            reply = {"ok": True}
        else:
            with lock:
                seen.append({"method": self.command, "path": path})
            reply = {"name": os.environ.get("HV_NAME", ""), "pid": os.getpid(),
                     "method": self.command, "path": path,
                     "version": self.request_version,
                     "headers": [[k, v] for k, v in self.headers.items()],
                     "body": body.decode("latin-1"), "peer": self.client_address[0]}
        data = (json.dumps(reply) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = answer

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

Server(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

# WebSocket echo backend on Debian's python3-websockets (a peer no one here
# wrote): every message goes back as it came, text as text, binary as binary.
# No size limit, no compression, no pings (so an idle tunnel carries nothing).
WS_ECHO_PY = r'''#!/usr/bin/python3
import asyncio, os, resource, websockets

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
except (ValueError, OSError):
    pass

async def echo(ws, *_):
    async for message in ws:
        await ws.send(message)

async def main():
    async with websockets.serve(echo, "127.0.0.1", int(os.environ["PORT"]),
                                max_size=None, max_queue=None, compression=None,
                                ping_interval=None, backlog=2048):
        await asyncio.Future()

asyncio.run(main())
'''

# WebSocket echo backend on Debian's node-ws (NODE_PATH=/usr/share/nodejs).
WS_ECHO_JS = r'''#!/usr/bin/node
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.env.PORT),
                                  maxPayload: 64 * 1024 * 1024, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
'''

# websocketd (Debian) running /bin/cat: each text message comes back as a line.
WEBSOCKETD_SH = '''#!/bin/sh
exec /usr/bin/websocketd --address=127.0.0.1 --port="$PORT" /bin/cat
'''

NODE_PATH = "/usr/share/nodejs"
# The chat example is built beside the daemon: BUILD/hostvisor, BUILD/examples/.
CHAT_BIN = os.environ.get("HV_CHAT_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(BIN)), "examples", "hostvisor-chat")


def install(d, name, text):
    """Writes a program into the daemon's test home (mode 755) once."""
    path = os.path.join(d.home, name)
    if not os.path.exists(path):
        d.write_program(name, text)
    return path


def install_chat(d):
    """Copies the chat example binary into the test home."""
    if not os.path.exists(CHAT_BIN):
        raise unittest.SkipTest("chat example not built: %s" % CHAT_BIN)
    path = os.path.join(d.home, "hostvisor-chat")
    if not os.path.exists(path):
        shutil.copyfile(CHAT_BIN, path)
        os.chmod(path, 0o755)
    return path


def create(d, name, command, route=None, *extra):
    """`hostvisor create` through the CLI (waits until it left `starting`);
    returns the instance object. Fails the test unless it is running. With a
    route, also waits until the proxy serves it (see wait_route_live)."""
    argv = ["create", name, "--command", command]
    if route is not None:
        argv += ["--route", route]
    argv += list(extra) + ["--json"]
    obj = d.cli_json(*argv)
    if obj.get("state") != "running":
        raise HarnessError("instance %s is %s, not running: %r\nlogs:\n%s"
                           % (name, obj.get("state"), obj,
                              d.cli("logs", name, "-n", "50", check=False).stdout))
    if route is not None:
        wait_route_live(d, route)
    return obj


def wait_route_live(d, route, timeout=10.0):
    """The daemon hands routes to the proxy asynchronously, so the API can say
    `running` a moment before the proxy knows: a request then gets 404 (no
    route yet) or, with `hold_ms = 0`, 503 (still `starting`). Polls a GET on
    the route's own host and prefix until the backend answers it."""
    host, _, path = route.partition("/")
    headers = {"Host": host} if host else {}

    def live():
        status, hdrs, _ = request(d, "GET", "/" + path, headers=headers)
        # The proxy's own answers say `Server: hostvisor`; a backend's 404 is fine.
        return not (status in (404, 502, 503) and hdrs.get("server") == "hostvisor")
    wait_for("route %s live on the proxy" % route, live, timeout)


def write_config(testcase, text):
    """A TOML config file in a temp dir removed at cleanup; returns its path."""
    directory = tempfile.mkdtemp(prefix="hv-it-conf-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    path = os.path.join(directory, "hostvisor.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def proxy_addr(d, key="proxy"):
    """(host, port) of the proxy listener named in daemon.json."""
    addr = (d.info or {}).get(key)
    if not addr:
        raise HarnessError("daemon.json has no %r address: %r" % (key, d.info))
    host, _, port = addr.rpartition(":")
    return host, int(port)


def request(d, method, path, headers=None, body=None, source=None, timeout=15.0):
    """One request to the proxy; returns (status, headers dict (lower-case
    names), body bytes). `source`: the client's local address (127.0.0.x)."""
    host, port = proxy_addr(d)
    conn = http.client.HTTPConnection(host, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def echo_of(testcase, status, body):
    """The JSON the HTTP echo backend answered (asserting a 200)."""
    testcase.assertEqual(status, 200, body)
    return json.loads(body)


def header_values(echo, name):
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def wait_for(what, probe, timeout=10.0, interval=0.05):
    """Polls probe() until it returns a true value, with a deadline: for
    changes that happen inside the daemon (a route published to the proxy
    after an API call returned) there is no event to wait on."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise HarnessError("%s: not within %.0f s" % (what, timeout))
        time.sleep(interval)


def raw_exchange(d, data, timeout=10.0, source=None):
    """Sends raw bytes to the proxy, half-closes nothing, and reads until the
    proxy closes the connection (or `timeout`). Returns everything read."""
    host, port = proxy_addr(d)
    s = socket.create_connection((host, port), timeout=timeout,
                                 source_address=(source, 0) if source else None)
    with s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


class Gate:
    """A FIFO the gated HTTP echo backend (HV_GATE) reads before it binds its
    port once `close_gate()` was called: the (re)started instance stays
    `starting` until `open_gate()`."""

    def __init__(self, d, name="gate.fifo"):
        self.path = os.path.join(d.home, name)
        os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        d.fifos.append(self)  # closed at the daemon's cleanup

    def close_gate(self):
        open(self.path + ".closed", "w").close()

    def open_gate(self):
        try:
            os.unlink(self.path + ".closed")
        except FileNotFoundError:
            pass
        os.write(self.fd, b"go\n")

    def close(self):  # EventFifo-compatible, for the harness's cleanup
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

class ProxyHttpTest(DaemonTestCase):

    def start(self, config=None):
        extra = ["--config", write_config(self, config)] if config is not None else []
        self.d = Daemon(extra_args=extra)
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.echo = install(self.d, "http_echo.py", HTTP_ECHO_PY)
        return self.d

    def test_route_reaches_instance_with_forwarded_headers(self):
        d = self.start()
        self.assertRegex(d.info.get("proxy", ""), r"^127\.0\.0\.1:\d+$", d.info)
        obj = create(d, "app", self.echo, "/app/", "--env", "HV_NAME=app-backend")
        self.assertEqual(obj["route"], "/app/")

        status, hdrs, body = request(d, "GET", "/app/hello?x=1&y=%2F",
                                     headers={"Host": "site.example.test",
                                              "X-Forwarded-For": "6.6.6.6",
                                              "Forwarded": "for=6.6.6.6;proto=https",
                                              "X-Forwarded-Proto": "https"})
        echo = echo_of(self, status, body)
        self.assertEqual(echo["name"], "app-backend")
        self.assertEqual(echo["method"], "GET")
        self.assertEqual(echo["path"], "/app/hello?x=1&y=%2F", "the path is forwarded unchanged")
        # The proxy is the edge: what the client claims is replaced, not appended to.
        self.assertEqual(header_values(echo, "X-Forwarded-For"), ["127.0.0.1"], echo["headers"])
        self.assertEqual(header_values(echo, "X-Forwarded-Proto"), ["http"], echo["headers"])
        self.assertEqual(header_values(echo, "X-Forwarded-Host"), ["site.example.test"],
                         echo["headers"])
        fwd = header_values(echo, "Forwarded")
        self.assertEqual(len(fwd), 1, echo["headers"])
        params = dict(p.strip().split("=", 1) for p in fwd[0].split(";"))
        self.assertEqual(params.get("for"), "127.0.0.1", fwd)
        self.assertEqual(params.get("proto"), "http", fwd)
        self.assertEqual(params.get("host", "").strip('"'), "site.example.test", fwd)
        self.assertEqual(header_values(echo, "Host"), ["site.example.test"], echo["headers"])
        self.assertNotIn("6.6.6.6", json.dumps(echo["headers"]))

        # A request body arrives intact; /app (no slash) is the same route.
        payload = bytes(range(256)) * 40
        status, _, body = request(d, "POST", "/app/upload", body=payload,
                                  headers={"Content-Type": "application/octet-stream"})
        echo = echo_of(self, status, body)
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["body"].encode("latin-1"), payload)
        status, _, body = request(d, "GET", "/app")
        self.assertEqual(echo_of(self, status, body)["path"], "/app")

    def test_strip_prefix(self):
        d = self.start()
        obj = create(d, "api", self.echo, "/api/", "--strip-prefix")
        self.assertIs(obj.get("strip_prefix"), True, obj)
        status, _, body = request(d, "GET", "/api/v1/items?q=2")
        self.assertEqual(echo_of(self, status, body)["path"], "/v1/items?q=2")
        status, _, body = request(d, "GET", "/api/")
        self.assertEqual(echo_of(self, status, body)["path"], "/")
        # Without the flag the prefix stays.
        create(d, "keep", self.echo, "/keep/")
        status, _, body = request(d, "GET", "/keep/v1/items")
        self.assertEqual(echo_of(self, status, body)["path"], "/keep/v1/items")

    def test_host_route_matches_only_its_host(self):
        d = self.start()
        create(d, "chat", self.echo, "chat.example.test/ws/", "--env", "HV_NAME=chat-host")
        for host in ("chat.example.test", "CHAT.Example.Test", "chat.example.test:8443"):
            status, _, body = request(d, "GET", "/ws/room", headers={"Host": host})
            echo = echo_of(self, status, body)
            self.assertEqual(echo["name"], "chat-host", host)
            self.assertEqual(echo["path"], "/ws/room")
        for host in ("other.example.test", "example.test", "chat.example.test.evil.test",
                     "127.0.0.1"):
            status, _, body = request(d, "GET", "/ws/room", headers={"Host": host})
            self.assertEqual(status, 404, "Host %s: %r" % (host, body))
        status, _, body = request(d, "GET", "/other/", headers={"Host": "chat.example.test"})
        self.assertEqual(status, 404, body)

    def test_no_route_is_404_with_a_body(self):
        d = self.start()
        create(d, "app", self.echo, "/app/")
        for path in ("/", "/nothing/here", "/apple", "/ap"):
            status, hdrs, body = request(d, "GET", path)
            self.assertEqual(status, 404, "%s: %r" % (path, body))
            self.assertTrue(body.strip(), "404 for %s has an empty body" % path)
        # An instance without a route is not reachable through the proxy.
        create(d, "hidden", self.echo)
        status, _, _ = request(d, "GET", "/hidden/")
        self.assertEqual(status, 404)

    def test_stopped_instance_is_502_not_naming_it_and_back_after_start(self):
        d = self.start()
        create(d, "shop-backend", self.echo, "/shop/")
        status, _, body = request(d, "GET", "/shop/")
        echo_of(self, status, body)

        d.cli("stop", "shop-backend")
        status, hdrs, body = request(d, "GET", "/shop/cart")
        self.assertEqual(status, 502, body)
        self.assertIn(b"not running", body, body)
        # The instance's name is the account's business, not the internet's.
        self.assertNotIn(b"shop-backend", body, "the 502 body names the instance: %r" % body)

        d.cli("start", "shop-backend")
        status, _, body = wait_for("route back after start",
                                   lambda: (lambda r: r if r[0] == 200 else None)(
                                       request(d, "GET", "/shop/cart")))
        self.assertEqual(echo_of(self, status, body)["path"], "/shop/cart")

        # Deleting the instance removes its route.
        d.cli("rm", "shop-backend")
        status, _, _ = wait_for("route gone after rm",
                                lambda: (lambda r: r if r[0] == 404 else None)(
                                    request(d, "GET", "/shop/cart")))

    def _restart_gated(self, d, name="slow"):
        gate = Gate(d)
        create(d, name, self.echo, "/slow/", "--env", "HV_GATE=" + gate.path,
               "--start-secs", "60")
        status, _, body = request(d, "GET", "/slow/")
        first_pid = echo_of(self, status, body)["pid"]
        gate.close_gate()
        d.cli("restart", name, "--no-wait")
        d.wait_state(name, "starting", pred=lambda o: o.get("pid") not in (None, first_pid))
        return gate, first_pid

    def test_restarting_instance_is_503_without_hold(self):
        d = self.start("[proxy]\nhold_ms = 0\n")
        gate, first_pid = self._restart_gated(d)
        # (The proxy learns of the state change a moment after the API: a
        # bounded poll, then the answer itself is checked.)
        answers = []

        def got_503():
            t0 = time.monotonic()
            answers.append(request(d, "GET", "/slow/page") + (time.monotonic() - t0,))
            return answers[-1][0] == 503
        try:
            wait_for("503 while starting", got_503)
        except HarnessError:
            self.fail("no 503 while the instance was starting; answers: %r" % answers[-3:])
        status, hdrs, body, took = answers[-1]
        self.assertLess(took, 2.0, "hold_ms = 0 still held the request")
        self.assertIn("retry-after", hdrs, hdrs)
        self.assertIn(b"starting", body, body)
        self.assertNotIn(b"slow", body, "the 503 body names the instance: %r" % body)

        gate.open_gate()
        d.wait_state("slow", "running")
        status, _, body = wait_for("200 once running",
                                   lambda: (lambda r: r if r[0] == 200 else None)(
                                       request(d, "GET", "/slow/page")))
        self.assertNotEqual(echo_of(self, status, body)["pid"], first_pid)

    def test_restarting_instance_request_is_held_then_served(self):
        d = self.start()  # default hold_ms (3000)
        gate, first_pid = self._restart_gated(d)
        host, port = proxy_addr(d)
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(b"GET /slow/held HTTP/1.1\r\nHost: h.example.test\r\n"
                      b"Connection: close\r\n\r\n")
            # Proving a hold needs a window with no answer: 0.5 s, well inside
            # the 3 s hold (with hold_ms = 0 the 503 comes at once, see above).
            s.settimeout(0.5)
            try:
                early = s.recv(65536)
            except socket.timeout:
                early = None
            self.assertIsNone(early, "answered while the instance was starting: %r" % early)
            gate.open_gate()
            s.settimeout(10)
            answer = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), answer[:300])
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/slow/held")
        self.assertNotEqual(echo["pid"], first_pid)

    def test_access_rules(self):
        d = self.start()
        obj = create(d, "denied", self.echo, "/denied/", "--access", "deny 127.0.0.1/32")
        self.assertEqual(obj.get("access"), ["deny 127.0.0.1/32"], obj)
        status, _, body = request(d, "GET", "/denied/")
        self.assertEqual(status, 403, body)
        # Only 127.0.0.1 is denied: another loopback client gets through.
        status, _, body = request(d, "GET", "/denied/", source="127.0.0.2")
        echo_of(self, status, body)

        create(d, "allowed", self.echo, "/allowed/",
               "--access", "allow 127.0.0.1/32", "--access", "deny all")
        status, _, body = request(d, "GET", "/allowed/")
        self.assertEqual(echo_of(self, status, body)["peer"], "127.0.0.1")
        status, _, body = request(d, "GET", "/allowed/", source="127.0.0.2")
        self.assertEqual(status, 403, "'deny all' let 127.0.0.2 through: %r" % body)

        # Access rules change live through PATCH.
        status, obj = d.api("PATCH", "/api/v1/instances/allowed", {"access": ["deny all"]})
        self.assertEqual(status, 200, obj)
        wait_for("403 after PATCH access",
                 lambda: request(d, "GET", "/allowed/")[0] == 403)
        status, obj = d.api("PATCH", "/api/v1/instances/allowed", {"access": []})
        self.assertEqual(status, 200, obj)
        wait_for("200 after clearing access",
                 lambda: request(d, "GET", "/allowed/", source="127.0.0.2")[0] == 200)

        # A bad rule is refused with a message naming the field.
        status, err = d.api("PATCH", "/api/v1/instances/allowed", {"access": ["permit everyone"]})
        self.assertApiError((status, err), 400, "invalid_argument", mentions=["access"])

    def test_header_limits(self):
        """src/proxy/proxy.h: a request head over 16 KiB, or over 100 fields,
        is refused with 431 before it reaches the backend."""
        d = self.start()
        create(d, "app", self.echo, "/app/")
        request(d, "GET", "/app/__reset")
        status, _, body = request(d, "GET", "/app/", headers={"X-Big": "b" * 8000})
        self.assertEqual(header_values(echo_of(self, status, body), "X-Big"), ["b" * 8000])
        status, _, body = request(d, "GET", "/app/big", headers={"X-Big": "b" * 20000})
        self.assertEqual(status, 431, body)
        many = {"X-Field-%d" % i: "v" for i in range(150)}
        status, _, body = request(d, "GET", "/app/many", headers=many)
        self.assertEqual(status, 431, body)
        status, _, body = request(d, "GET", "/app/__seen")
        self.assertEqual([s["path"] for s in json.loads(body)], ["/app/"])

    def test_patch_route_moves_it_live(self):
        d = self.start()
        create(d, "mover", self.echo, "/old/")
        status, obj = d.api("PATCH", "/api/v1/instances/mover", {"route": "/new/"})
        self.assertEqual(status, 200, obj)
        self.assertEqual(obj["route"], "/new/")
        wait_route_live(d, "/new/")
        status, _, body = request(d, "GET", "/new/x")
        self.assertEqual(echo_of(self, status, body)["path"], "/new/x")
        wait_for("old route gone", lambda: request(d, "GET", "/old/x")[0] == 404)
        status, obj = d.api("PATCH", "/api/v1/instances/mover", {"route": ""})
        self.assertEqual(status, 200, obj)
        wait_for("route removed", lambda: request(d, "GET", "/new/x")[0] == 404)

    def test_duplicate_route_does_not_freeze_other_routes(self):
        """Whatever the daemon does with a second instance asking for a route
        that is taken, every other route keeps working and route changes keep
        applying live (PRODUCT.md item 4; one account must not be able to
        break the proxy for the others)."""
        d = self.start()
        create(d, "first", self.echo, "/x/", "--env", "HV_NAME=first")
        d.api("POST", "/api/v1/instances", {"name": "second", "command": self.echo,
                                            "route": "/x/", "env": {"HV_NAME": "second"}})
        create(d, "third", self.echo, None, "--env", "HV_NAME=third")
        status, obj = d.api("PATCH", "/api/v1/instances/third", {"route": "/y/"})
        self.assertEqual(status, 200, obj)
        try:
            wait_route_live(d, "/y/")
        except HarnessError:
            self.fail("after a second instance asked for the taken route /x/, a new route /y/ "
                      "never went live; GET /y/ -> %r; daemon log:\n%s"
                      % (request(d, "GET", "/y/")[:3:2],
                         "\n".join(d.stderr_text().splitlines()[-5:])))
        status, _, body = request(d, "GET", "/y/")
        self.assertEqual(echo_of(self, status, body)["name"], "third")
        status, _, body = request(d, "GET", "/x/")
        self.assertIn(echo_of(self, status, body)["name"], ("first", "second"))

    def test_duplicate_route_is_refused_with_a_clear_error(self):
        """Two instances cannot both own HOST/PATH: the second create (or
        PATCH) is refused with an error naming the route, nothing is stored."""
        d = self.start()
        create(d, "first", self.echo, "chat.example.test/ws/")
        result = d.api("POST", "/api/v1/instances", {"name": "second", "command": self.echo,
                                                     "route": "chat.example.test/ws/"})
        self.assertIn(result[0], (400, 409), "a second instance got the taken route: %r"
                      % (result,))
        self.assertMentionsAny(result[1]["error"]["message"], ["chat.example.test/ws/", "route"])
        self.assertEqual(d.api("GET", "/api/v1/instances/second")[0], 404)
        create(d, "other", self.echo, "/other/")
        result = d.api("PATCH", "/api/v1/instances/other", {"route": "chat.example.test/ws/"})
        self.assertIn(result[0], (400, 409), "PATCH took a taken route: %r" % (result,))

    def test_route_the_proxy_cannot_serve_is_refused(self):
        """A route is either refused at create with an error naming it, or
        served: never stored and then silently skipped by the proxy."""
        d = self.start()
        for route, host in (("chat.example.test:8080/ws/", "chat.example.test:8080"),):
            with self.subTest(route=route):
                status, obj = d.api("POST", "/api/v1/instances",
                                    {"name": "odd", "command": self.echo, "route": route})
                if status == 201:
                    d.wait_state("odd", "running")
                    try:
                        wait_for("route %s served" % route,
                                 lambda: request(d, "GET", "/ws/", headers={"Host": host})[0] == 200)
                    except HarnessError:
                        self.fail("route %r was accepted (201) but the proxy does not serve it; "
                                  "daemon log:\n%s" % (route, "\n".join(
                                      line for line in d.stderr_text().splitlines()
                                      if "route" in line)))
                else:
                    self.assertApiError((status, obj), 400, "invalid_argument", mentions=["route"])


if __name__ == "__main__":
    unittest.main()
