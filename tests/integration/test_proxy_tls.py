"""Front proxy, TLS termination through the daemon: a certificate for
chat.example.test made by openssl at test time, `[proxy] tls_listen` and
`[[proxy.certificates]]` in the config, https and wss (the chat example)
through it, and SIGHUP reloading the certificate files: new connections get
the new certificate while an open wss tunnel keeps working."""

import asyncio
import hashlib
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
from test_proxy import (HTTP_ECHO_PY, create, header_values, install, install_chat,
                        proxy_addr, write_config)

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


if __name__ == "__main__":
    unittest.main()
