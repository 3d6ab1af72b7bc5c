"""Front proxy, TLS termination through the daemon: a certificate for
chat.example.test made by openssl at test time, `[proxy] tls_listen` and
`[[proxy.certificates]]` in the config, https and wss (the chat example)
through it, and SIGHUP reloading the certificate files: new connections get
the new certificate while an open wss tunnel keeps working.

TLS takeover (`[proxy] tls_takeover`, src/proxy/tls_records.h): with "auto"
(the default) a wss tunnel on TLS 1.3 continues on the proxy's own record
layer; ProxyTlsTakeoverTest drives that path with real peers (python
websockets, node ws, Python's ssl for close_notify and half-close, `openssl
s_client` for KeyUpdate, whose "k"/"K" commands send one), checks a TLS 1.2
client stays on OpenSSL, and runs the same traffic with "off"."""

import asyncio
import hashlib
import base64
import re
import select
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import websockets

from harness import Daemon, DaemonTestCase, HarnessError
from test_proxy import (HTTP_ECHO_PY, NODE_PATH, WS_ECHO_JS, WS_ECHO_PY, create, header_values,
                        install, install_chat, proxy_addr, write_config)
from test_proxy_ws import NODE, NODE_CLIENT_JS, SIZES

HOST = "chat.example.test"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def make_cert(directory, stem):
    """A fresh self-signed RSA certificate for HOST; returns (cert, key) paths."""
    cert = os.path.join(directory, stem + ".crt")
    key = os.path.join(directory, stem + ".key")
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-subj", "/CN=" + HOST,
                    "-addext", "subjectAltName=DNS:" + HOST, "-days", "1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def fingerprint_of_file(cert):
    with open(cert) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def context_trusting(cert):
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = True
    return ctx


class ProxyTlsTest(DaemonTestCase):

    def setUp(self):
        if not os.path.exists(OPENSSL):
            self.skipTest("openssl not installed")
        self.dir = tempfile.mkdtemp(prefix="hv-it-tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cert = os.path.join(self.dir, "site.crt")
        self.key = os.path.join(self.dir, "site.key")
        cert, key = make_cert(self.dir, "first")
        shutil.copyfile(cert, self.cert)
        shutil.copyfile(key, self.key)
        os.chmod(self.key, 0o600)
        self.first = fingerprint_of_file(self.cert)
        self.first_ca = cert
        config = write_config(self, '[proxy]\ntls_listen = "127.0.0.1:0"\n\n'
                                    '[[proxy.certificates]]\nhost = "%s"\ncert = "%s"\nkey = "%s"\n'
                              % (HOST, self.cert, self.key))
        self.d = Daemon(extra_args=["--config", config])
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.assertRegex(self.d.info.get("proxy_tls", ""), r"^127\.0\.0\.1:\d+$", self.d.info)
        self.tls = proxy_addr(self.d, "proxy_tls")

    def handshake(self, ctx, server_hostname=HOST):
        """A TLS connection to the proxy's TLS port; returns the certificate's
        SHA-256 and the socket (the caller closes it)."""
        raw = socket.create_connection(self.tls, timeout=10)
        try:
            s = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), s

    def https_get(self, ctx, path):
        fp, s = self.handshake(ctx)
        with s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (path, HOST)).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return fp, head.split(b"\r\n")[0], body

    def wss(self, ctx):
        url = "wss://%s:%d/chat/ws" % (HOST, self.tls[1])
        return websockets.connect(url, ssl=ctx, host=self.tls[0], port=self.tls[1],
                                  server_hostname=HOST, open_timeout=10, close_timeout=5,
                                  ping_interval=None)

    def wait_logged(self, text, after, timeout=15.0):
        """The daemon's stderr (drained by the harness) gets `text` after line
        index `after`; a bounded poll of what was drained so far."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.d.stderr_text().splitlines()[after:]
            for line in lines:
                if text in line:
                    return line
            if time.monotonic() > deadline:
                raise HarnessError("daemon never logged %r; its stderr:\n%s"
                                   % (text, "\n".join(lines)))
            time.sleep(0.05)

    def test_https_and_wss_and_certificate_reload_on_sighup(self):
        d = self.d
        create(d, "web", install(d, "http_echo.py", HTTP_ECHO_PY), "/web/")
        create(d, "chat", install_chat(d), "/chat/")
        ctx1 = context_trusting(self.first_ca)

        # https: the certificate for chat.example.test, the route, and the
        # backend told the client came over https.
        fp, status_line, body = self.https_get(ctx1, "/web/hello")
        self.assertEqual(fp, self.first)
        self.assertTrue(status_line.startswith(b"HTTP/1.1 200"), status_line)
        echo = json.loads(body)
        self.assertEqual(echo["path"], "/web/hello")
        self.assertEqual(header_values(echo, "X-Forwarded-Proto"), ["https"], echo["headers"])
        self.assertEqual(header_values(echo, "X-Forwarded-Host"), [HOST], echo["headers"])
        self.assertIn("proto=https", header_values(echo, "Forwarded")[0])

        # A client that does not trust this certificate refuses it.
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.handshake(ssl.create_default_context())

        async def recv_type(ws, want):
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg.get("type") == want:
                    return msg

        async def go():
            async with self.wss(ctx1) as ann:
                await recv_type(ann, "welcome")
                await ann.send(json.dumps({"type": "hello", "name": "ann"}))
                await recv_type(ann, "join")
                await ann.send(json.dumps({"type": "say", "text": "over wss"}))
                self.assertEqual((await recv_type(ann, "message"))["text"], "over wss")

                # New certificate files in place, then SIGHUP.
                cert2, key2 = await asyncio.to_thread(make_cert, self.dir, "second")
                second = fingerprint_of_file(cert2)
                self.assertNotEqual(second, self.first)
                for src, dst in ((cert2, self.cert), (key2, self.key)):
                    shutil.copyfile(src, dst + ".new")
                    os.replace(dst + ".new", dst)
                mark = len(d.stderr_text().splitlines())
                os.kill(d.pid, 1)  # SIGHUP
                await asyncio.to_thread(self.wait_logged, "certificate(s) reloaded", mark)

                ctx2 = context_trusting(cert2)
                fp2, status2, _ = await asyncio.to_thread(self.https_get, ctx2, "/web/after")
                self.assertEqual(fp2, second, "a new connection still gets the old certificate")
                self.assertTrue(status2.startswith(b"HTTP/1.1 200"), status2)
                with self.assertRaises(ssl.SSLCertVerificationError):
                    await asyncio.to_thread(self.handshake, ctx1)

                # The wss tunnel made with the old certificate still works,
                # and a new one is made with the new certificate.
                await ann.send(json.dumps({"type": "say", "text": "still here"}))
                self.assertEqual((await recv_type(ann, "message"))["text"], "still here")
                async with self.wss(ctx2) as bob:
                    await recv_type(bob, "welcome")
                    await bob.send(json.dumps({"type": "hello", "name": "bob"}))
                    self.assertEqual((await recv_type(ann, "join"))["name"], "bob")
                    await bob.send(json.dumps({"type": "say", "text": "hi ann"}))
                    self.assertEqual((await recv_type(ann, "message"))["text"], "hi ann")

                # A broken certificate file: SIGHUP keeps the current one.
                with open(self.cert, "w") as f:
                    f.write("not a certificate\n")
                mark = len(d.stderr_text().splitlines())
                os.kill(d.pid, 1)
                await asyncio.to_thread(self.wait_logged, "not reloaded", mark)
                fp3, status3, _ = await asyncio.to_thread(self.https_get, ctx2, "/web/kept")
                self.assertEqual(fp3, second)
                await ann.send(json.dumps({"type": "say", "text": "after a bad reload"}))
                self.assertEqual((await recv_type(ann, "message"))["text"], "after a bad reload")

        asyncio.run(asyncio.wait_for(go(), 120))
        self.assertTrue(d.alive(), "the daemon died on SIGHUP")


# A raw tunnel backend: answers an upgrade with a 101, echoes bytes, and on
# EOF writes "bye\n" and shuts its side down (to see half-close end to end).
RAW_UPGRADE_PY = r'''#!/usr/bin/python3
import os, socket, threading
srv = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
def serve(c):
    with c:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c.recv(4096)
            if not chunk:
                return
            head += chunk
        if b"\r\nupgrade:" not in head.lower():  # the harness's "is the route live" GET
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            return
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        rest = head.partition(b"\r\n\r\n")[2]
        if rest:
            c.sendall(rest)
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            c.sendall(chunk)
        c.sendall(b"bye\n")
        c.shutdown(socket.SHUT_WR)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
'''

UPGRADE = ("GET %s HTTP/1.1\r\nHost: " + HOST + "\r\nUpgrade: %s\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + base64.b64encode(b"k" * 16).decode() +
           "\r\n\r\n")


def ws_frame(payload):
    """A masked client text frame (mask key 0: the payload stays readable)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class ProxyTlsTakeoverTest(DaemonTestCase):
    """wss through the daemon with `[proxy] tls_takeover` as TAKEOVER (None:
    the key left out, i.e. the default)."""

    TAKEOVER = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(OPENSSL):
            raise unittest.SkipTest("openssl not installed")
        cls.dir = tempfile.mkdtemp(prefix="hv-it-tko-")
        cls.cert, cls.key = make_cert(cls.dir, "site")
        conf = os.path.join(cls.dir, "hostvisor.toml")
        with open(conf, "w") as f:
            f.write('[proxy]\ntls_listen = "127.0.0.1:0"\n%s\n[[proxy.certificates]]\nhost = "%s"\n'
                    'cert = "%s"\nkey = "%s"\n'
                    % ('tls_takeover = "%s"\n' % cls.TAKEOVER if cls.TAKEOVER else "", HOST, cls.cert, cls.key))
        cls.d = d = Daemon(extra_args=["--config", conf])
        d.__enter__()
        try:
            create(d, "echo-py", install(d, "ws_echo.py", WS_ECHO_PY), "/echo/")
            create(d, "echo-node", install(d, "ws_echo.js", WS_ECHO_JS), "/nodeecho/",
                   "--env", "NODE_PATH=" + NODE_PATH)
            create(d, "raw", install(d, "raw_upgrade.py", RAW_UPGRADE_PY), "/raw/")
            cls.node_client = os.path.join(d.data_dir, "ws_client.js")
            with open(cls.node_client, "w") as f:
                f.write(NODE_CLIENT_JS)
        except BaseException:
            d.__exit__(None, None, None)
            raise
        cls.tls = proxy_addr(d, "proxy_tls")

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)
        shutil.rmtree(cls.dir, True)

    def expect_takeover(self):
        return self.TAKEOVER != "off"

    def taken_over(self):
        status, text = self.d.api("GET", "/metrics")
        self.assertEqual(status, 200)
        if isinstance(text, bytes):
            text = text.decode()
        m = re.search(r"^hostvisor_proxy_tunnels_tls_takeover_total (\d+)$", text, re.M)
        self.assertIsNotNone(m, "no takeover counter in /metrics")
        return int(m.group(1))

    def context(self, tls12=False):
        ctx = context_trusting(self.cert)
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def python_echo(self, ctx, path="/echo/"):
        """Every size of SIZES both as text and binary, then 600 small
        messages (records well past 2^8), through one wss tunnel."""
        async def go():
            url = "wss://%s:%d%s" % (HOST, self.tls[1], path)
            async with websockets.connect(url, ssl=ctx, host=self.tls[0], port=self.tls[1],
                                          server_hostname=HOST, max_size=None, compression=None,
                                          ping_interval=None, open_timeout=10,
                                          close_timeout=5) as ws:
                for n in SIZES:
                    text = ("t%d-" % n * (n // 3 + 1))[:n]
                    await ws.send(text)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 30), text)
                    data = os.urandom(n)
                    await ws.send(data)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 30), data)
                for i in range(600):
                    await ws.send("m%d" % i)
                for i in range(600):
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 30), "m%d" % i)
                version = ws.transport.get_extra_info("ssl_object").version()
            return version
        return asyncio.run(asyncio.wait_for(go(), 120))

    def test_python_websockets_tls13(self):
        before = self.taken_over()
        self.assertEqual(self.python_echo(self.context()), "TLSv1.3")
        self.assertEqual(self.taken_over() - before, 1 if self.expect_takeover() else 0)

    def test_tls12_client_stays_on_openssl(self):
        before = self.taken_over()
        self.assertEqual(self.python_echo(self.context(tls12=True)), "TLSv1.2")
        self.assertEqual(self.taken_over(), before)

    def test_node_ws_client(self):
        before = self.taken_over()
        env = dict(os.environ, NODE_PATH=NODE_PATH, NODE_EXTRA_CA_CERTS=self.cert)
        # node resolves the URL's host itself: give it the name through the
        # loopback address's certificate check instead (servername = HOST).
        script = self.node_client + ".tls.js"
        with open(script, "w") as f:
            f.write(NODE_CLIENT_JS.replace(
                "const ws = new WebSocket(url, {",
                "const ws = new WebSocket(url, { servername: %r, ca: require('fs').readFileSync(%r)," % (HOST, self.cert)))
        url = "wss://%s:%d/nodeecho/" % self.tls
        cp = subprocess.run([NODE, script, "echo", url] + [str(n) for n in SIZES], capture_output=True,
                            text=True, timeout=90, env=env)
        lines = [l for l in cp.stdout.splitlines() if l.startswith("{")]
        self.assertTrue(lines, "node printed no result (exit %d): %r %r" % (cp.returncode, cp.stdout, cp.stderr))
        result = json.loads(lines[-1])
        self.assertTrue(result["ok"], result)
        self.assertEqual(len(result["results"]), 2 * len(SIZES))
        self.assertEqual(self.taken_over() - before, 1 if self.expect_takeover() else 0)

    def raw_tunnel(self):
        """A TLS 1.3 connection (Python's ssl over memory BIOs, so close_notify
        and the socket can be handled one at a time) upgraded to /raw/."""
        sock = socket.create_connection(self.tls, timeout=10)
        self.addCleanup(sock.close)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context().wrap_bio(incoming, outgoing, server_hostname=HOST)
        deadline = time.monotonic() + 20

        def flush():
            data = outgoing.read()
            if data:
                sock.sendall(data)

        def pump(op):
            """Runs op until it stops wanting input; returns its result."""
            while True:
                try:
                    result = op()
                    flush()
                    return result
                except ssl.SSLWantReadError:
                    flush()
                    if time.monotonic() > deadline:
                        raise HarnessError("TLS peer timed out")
                    chunk = sock.recv(65536)
                    if not chunk:
                        incoming.write_eof()
                    else:
                        incoming.write(chunk)

        def read_until(want):
            got = b""
            while want not in got:
                chunk = pump(lambda: tls.read(65536))
                if not chunk:
                    break
                got += chunk
            return got

        pump(tls.do_handshake)
        self.assertEqual(tls.version(), "TLSv1.3")
        pump(lambda: tls.write((UPGRADE % ("/raw/", "websocket")).encode()))
        self.assertIn(b" 101 ", read_until(b"\r\n\r\n"))
        return tls, pump, read_until

    def test_half_close_and_close_notify_both_ways(self):
        before = self.taken_over()
        tls, pump, read_until = self.raw_tunnel()
        payload = os.urandom(200000)
        pump(lambda: tls.write(payload))
        self.assertEqual(read_until(payload)[-len(payload):], payload)
        # Our close_notify: the proxy half-closes toward the backend, which
        # answers "bye" and closes; that reaches us as data, then the
        # proxy's close_notify: SSLZeroReturnError is exactly "close_notify
        # received" (a bare TCP FIN would be SSLEOFError).
        try:
            tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        pump(lambda: None)
        got = read_until(b"bye\n")
        self.assertTrue(got.endswith(b"bye\n"), got)
        with self.assertRaises(ssl.SSLZeroReturnError):
            pump(lambda: tls.read(65536))
        self.assertEqual(self.taken_over() - before, 1 if self.expect_takeover() else 0)

    def test_key_update_from_openssl_s_client(self):
        """`openssl s_client` sends a KeyUpdate when a line starts with "K"
        (update_requested: the proxy must answer with its own) or "k"."""
        before = self.taken_over()
        proc = subprocess.Popen([OPENSSL, "s_client", "-connect", "%s:%d" % self.tls, "-servername", HOST,
                                 "-tls1_3", "-CAfile", self.cert],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        out = b""

        def wait_until(done, what, timeout=20):
            """Reads s_client's output until done(out) (bounded)."""
            nonlocal out
            deadline = time.monotonic() + timeout
            while not done(out):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.fail("s_client never printed %s; it printed:\n%s" % (what, out.decode(errors="replace")))
                if select.select([proc.stdout], [], [], min(left, 1))[0]:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        self.fail("s_client ended before %s:\n%s" % (what, out.decode(errors="replace")))
                    out += chunk

        def wait_for_output(want):
            wait_until(lambda o: want in o, repr(want))

        def send(data):
            proc.stdin.write(data)
            proc.stdin.flush()

        wait_for_output(b"Verify return code: 0")
        send((UPGRADE % ("/echo/", "websocket")).encode())
        wait_for_output(b"101 Switching Protocols")
        send(ws_frame(b"before-update"))
        wait_for_output(b"before-update")
        for i, command in enumerate([b"K\n", b"k\n", b"K\n", b"K\n", b"k\n"]):
            mark = out.count(b"KEYUPDATE")
            send(command)
            # s_client has read the line and called SSL_key_update; the
            # KeyUpdate goes out with the next record, the frame below.
            wait_until(lambda o: o.count(b"KEYUPDATE") > mark, "KEYUPDATE")
            word = b"after-update-%d" % i
            send(ws_frame(word))
            wait_for_output(word)
        send(b"Q\n")
        proc.stdin.close()
        self.assertEqual(proc.wait(timeout=20), 0, out)
        self.assertEqual(self.taken_over() - before, 1 if self.expect_takeover() else 0)
        self.assertTrue(self.d.alive())


class ProxyTlsTakeoverOffTest(ProxyTlsTakeoverTest):
    TAKEOVER = "off"


if __name__ == "__main__":
    unittest.main()
