"""Front proxy: request smuggling through the daemon's proxy. Raw bytes on a
socket, the way an attacker sends them: each ambiguous framing gets one 400
from the proxy, the connection is not reused, and the backend (an instance
behind `--route /app/`) never sees any of it. Well-formed framings (plain
Content-Length, chunked) still pass, so the 400s are not a blanket refusal."""

import json
import re
import unittest

from harness import Daemon, DaemonTestCase
from test_proxy import HTTP_ECHO_PY, create, install, raw_exchange, request

# name -> raw request; each carries a second, smuggled request whose target
# contains "smuggled", which must never reach the backend.
SMUGGLING = {
    "te_and_cl": (
        b"POST /app/a HTTP/1.1\r\nHost: h.example.test\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /app/smuggled-te-cl HTTP/1.1\r\nHost: h.example.test\r\n\r\n"),
    "cl_and_te_obfuscated": (
        b"POST /app/a HTTP/1.1\r\nHost: h.example.test\r\nTransfer-Encoding: xchunked\r\n"
        b"Content-Length: 4\r\n\r\n"
        b"0\r\n\r\nGET /app/smuggled-te-obf HTTP/1.1\r\nHost: h.example.test\r\n\r\n"),
    "differing_duplicate_cl": (
        b"POST /app/a HTTP/1.1\r\nHost: h.example.test\r\nContent-Length: 0\r\n"
        b"Content-Length: 45\r\n\r\n"
        b"GET /app/smuggled-cl-cl HTTP/1.1\r\nHost: h.example.test\r\n\r\n"),
    "obs_fold": (
        b"GET /app/a HTTP/1.1\r\nHost: h.example.test\r\nX-Folded: one\r\n"
        b" Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
        b"GET /app/smuggled-fold HTTP/1.1\r\nHost: h.example.test\r\n\r\n"),
    "bad_chunk_size": (
        b"POST /app/a HTTP/1.1\r\nHost: h.example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nGET /app/smuggled-chunk HTTP/1.1\r\nHost: h.example.test\r\n\r\n0\r\n\r\n"),
    "duplicate_te": (
        b"POST /app/a HTTP/1.1\r\nHost: h.example.test\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: identity\r\n\r\n"
        b"0\r\n\r\nGET /app/smuggled-te-te HTTP/1.1\r\nHost: h.example.test\r\n\r\n"),
}

# What the 400's body must name (PRODUCT.md: a clear error naming what is wrong).
EXPLAINS = {
    "te_and_cl": ["Transfer-Encoding", "Content-Length"],
    "cl_and_te_obfuscated": ["Transfer-Encoding"],
    "differing_duplicate_cl": ["Content-Length"],
    "obs_fold": ["fold"],
    "bad_chunk_size": ["chunk"],
    "duplicate_te": ["Transfer-Encoding"],
}


def responses(raw):
    """The status lines of every HTTP response in `raw`."""
    return re.findall(rb"(?:^|\n)(HTTP/1\.[01] \d{3}[^\r\n]*)", raw)


class ProxySmugglingTest(DaemonTestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon()
        cls.d.__enter__()
        try:
            echo = install(cls.d, "http_echo.py", HTTP_ECHO_PY)
            create(cls.d, "app", echo, "/app/")
        except BaseException:
            cls.d.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.__exit__(None, None, None)

    def setUp(self):
        status, _, body = request(self.d, "GET", "/app/__reset")
        self.assertEqual(status, 200, body)

    def seen(self):
        status, _, body = request(self.d, "GET", "/app/__seen")
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def test_ambiguous_framing_is_400_and_never_reaches_the_backend(self):
        for name, raw in SMUGGLING.items():
            with self.subTest(case=name):
                out = raw_exchange(self.d, raw)
                lines = responses(out)
                self.assertTrue(lines, "%s: no answer at all: %r" % (name, out))
                self.assertTrue(lines[0].startswith(b"HTTP/1.1 400"),
                                "%s: expected 400, got %r" % (name, out[:400]))
                self.assertEqual(len(lines), 1,
                                 "%s: more than one response (connection reused): %r"
                                 % (name, out[:800]))
                head, _, body = out.partition(b"\r\n\r\n")
                self.assertTrue(body.strip(), "%s: the 400 has no body" % name)
                self.assertMentionsAny(body.decode(errors="replace"), EXPLAINS[name])
                self.assertEqual(self.seen(), [], "%s reached the backend" % name)

    def test_well_formed_framing_still_passes(self):
        body = b"hello=world"
        out = raw_exchange(self.d, b"POST /app/cl HTTP/1.1\r\nHost: h.example.test\r\n"
                                   b"Content-Length: 11\r\nConnection: close\r\n\r\n" + body)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:300])
        self.assertEqual(json.loads(out.partition(b"\r\n\r\n")[2])["body"], "hello=world")

        out = raw_exchange(self.d, b"POST /app/chunked HTTP/1.1\r\nHost: h.example.test\r\n"
                                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                   b"5\r\nhello\r\n6\r\n=world\r\n0\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:300])
        self.assertEqual(json.loads(out.partition(b"\r\n\r\n")[2])["body"], "hello=world")

        # Two pipelined well-formed requests on one connection: both answered, in order.
        out = raw_exchange(self.d, b"GET /app/one HTTP/1.1\r\nHost: h.example.test\r\n\r\n"
                                   b"GET /app/two HTTP/1.1\r\nHost: h.example.test\r\n"
                                   b"Connection: close\r\n\r\n")
        self.assertEqual(len(responses(out)), 2, out)
        self.assertEqual([s["path"] for s in self.seen()],
                         ["/app/cl", "/app/chunked", "/app/one", "/app/two"])


if __name__ == "__main__":
    unittest.main()
