"""Alerts (issue 17): an instance that keeps crashing and then goes fatal is
announced to the account's webhook (a JSON POST, retried until a 2xx) and
to its open panels (an "alert" event), at most once per instance per 5
minutes apart from the final "fatal". The receiver is a loopback HTTP server
this test runs; its first answer is a 500, so the retry is exercised."""

import http.server
import json
import os
import threading
import time
import unittest

from harness import Daemon, DaemonTestCase

CRASH_SH = "#!/bin/sh\necho 'boom'\nexit 3\n"


class Receiver(http.server.BaseHTTPRequestHandler):
    posts = []
    answers = []  # status codes to give, in order; then 204

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = Receiver.answers.pop(0) if Receiver.answers else 204
        Receiver.posts.append((self.path, self.headers.get("Content-Type"), json.loads(body), status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class AlertsTest(DaemonTestCase):

    def setUp(self):
        Receiver.posts, Receiver.answers = [], [500]
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def test_a_crash_loop_and_its_fatal_end_reach_the_webhook(self):
        url = "http://127.0.0.1:%d/hooks/hv" % self.server.server_address[1]
        status, body = self.d.api("PATCH", "/api/v1/accounts/default", {"webhook": url})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["webhook"], url)
        status, body = self.d.api("PATCH", "/api/v1/accounts/default", {"webhook": "ftp://x/"})
        self.assertEqual(status, 400, body)
        prog = self.d.write_program("crash.sh", CRASH_SH)
        self.d.cli("create", "crashy", "--command", prog, "--restart", "always")
        self.d.wait_state("crashy", "fatal", timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(p[2]["kind"] == "fatal" and p[3] == 204 for p in Receiver.posts):
            time.sleep(0.05)
        kinds = [(p[2]["kind"], p[3]) for p in Receiver.posts]
        # The first POST got a 500 and was tried again; then the fatal end.
        self.assertEqual(kinds[:2], [("crash_loop", 500), ("crash_loop", 204)], Receiver.posts)
        self.assertEqual(kinds[-1], ("fatal", 204), Receiver.posts)
        path, ctype, alert, _ = Receiver.posts[-1]
        self.assertEqual(path, "/hooks/hv")
        self.assertEqual(ctype, "application/json")
        self.assertEqual(alert["instance"], "crashy")
        self.assertEqual(alert["account"], "default")
        self.assertIn("exit", alert["reason"])
        self.assertIn("alert: instance crashy", self.d.stderr_text())


if __name__ == "__main__":
    unittest.main()
