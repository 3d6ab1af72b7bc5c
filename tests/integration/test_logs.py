"""Logs: a program's stdout and stderr are captured; `logs -n`, the API's
`logs?n=` and `logs -f` show them."""

import queue
import subprocess
import threading
import time
import unittest

from harness import Daemon, DaemonTestCase, ask


class LogsTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        ev = self.d.events()
        self.obj = self.d.cli_json("create", "talker", "--command", self.d.server_program(),
                                   "--env", "HV_EVENTS=" + ev.path, "--json")
        ev.next()
        self.port = self.obj["port"]

    def wait_logged(self, marker, timeout=15.0):
        """Bounded poll of `logs` until `marker` was captured (no event to
        wait on: capture happens inside the daemon)."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.d.cli("logs", "talker", "-n", "1000").stdout
            if marker in out:
                return out
            if time.monotonic() > deadline:
                self.fail("%r never reached the logs; they hold:\n%s" % (marker, out))
            time.sleep(0.05)

    def test_stdout_and_stderr_captured_and_tail(self):
        d = self.d
        ask(self.port, "err marker-stderr-1")
        self.wait_logged("marker-stderr-1")
        for i in range(1, 6):
            ask(self.port, "out marker-line-%d" % i)
        everything = self.wait_logged("marker-line-5")
        for i in range(1, 6):
            self.assertIn("marker-line-%d" % i, everything)
        self.assertLess(everything.index("marker-stderr-1"), everything.index("marker-line-1"))

        tail = [line for line in d.cli("logs", "talker", "-n", "2").stdout.splitlines()
                if line.strip()]
        self.assertEqual(len(tail), 2, tail)
        self.assertIn("marker-line-4", tail[0])
        self.assertIn("marker-line-5", tail[1])

        status, text = d.api("GET", "/api/v1/instances/talker/logs?n=2")
        self.assertEqual(status, 200, text)
        self.assertIsInstance(text, str)
        lines = [line for line in text.splitlines() if line.strip()]
        self.assertEqual(len(lines), 2, text)
        self.assertIn("marker-line-4", lines[0])
        self.assertIn("marker-line-5", lines[1])

        status, text = d.api("GET", "/api/v1/instances/talker/logs?n=6")
        self.assertEqual(status, 200, text)
        lines = [line for line in text.splitlines() if line.strip()]
        self.assertEqual(len(lines), 6, text)
        self.assertIn("marker-stderr-1", lines[0])

    def test_bad_n_is_rejected(self):
        self.assertApiError(self.d.api("GET", "/api/v1/instances/talker/logs?n=abc"),
                            400, "invalid_argument")
        cp = self.d.cli("logs", "talker", "-n", "abc", check=False)
        self.assertCliError(cp, codes=(1, 2))

    def test_logs_kept_across_instance_restart(self):
        d = self.d
        ask(self.port, "out before-restart-marker")
        self.wait_logged("before-restart-marker")
        d.cli("restart", "talker")
        ask(self.port, "out after-restart-marker")
        out = self.wait_logged("after-restart-marker")
        self.assertIn("before-restart-marker", out)

    def test_follow_shows_new_lines(self):
        d = self.d
        follower = d.spawn([d.serve_argv()[0], "--data-dir", d.data_dir, "logs", "talker", "-f"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        lines = queue.Queue()

        def pump():
            for raw in follower.stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        pumper = threading.Thread(target=pump, daemon=True)
        pumper.start()
        try:
            # Each marker is printed until the follower shows it: the follower
            # may attach after the first print (its start is not an event we
            # can see), so the first marker is repeated, bounded.
            deadline = time.monotonic() + 20
            got = False
            while not got and time.monotonic() < deadline:
                ask(self.port, "out followed-marker")
                try:
                    while True:
                        line = lines.get(timeout=1.0)
                        if line is None:
                            self.fail("logs -f ended: %r" % follower.stderr.read().decode())
                        if "followed-marker" in line:
                            got = True
                            break
                except queue.Empty:
                    pass
            self.assertTrue(got, "logs -f never showed the new line")
            ask(self.port, "err followed-stderr-marker")
            deadline = time.monotonic() + 15
            while True:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    self.fail("logs -f never showed the stderr line")
                self.assertIsNotNone(line, "logs -f ended")
                if "followed-stderr-marker" in line:
                    break
            self.assertIsNone(follower.poll(), "logs -f exited while following")
        finally:
            follower.terminate()
            follower.wait(10)
            pumper.join(10)
            follower.stdout.close()
            follower.stderr.close()


if __name__ == "__main__":
    unittest.main()
