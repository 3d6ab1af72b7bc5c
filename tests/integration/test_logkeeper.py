"""The log keeper (issue 3, item 2 and 4): a program's output survives the
daemon's death and the keeper's own death, and a full disk drops and counts
output instead of blocking the program."""

import os
import signal
import subprocess
import time
import unittest

from harness import Daemon, DaemonTestCase, ask, pids_matching, proc_cmdline, wait_pid_gone

# Floods `total` lines, reports to the event FIFO, then writes a numbered
# "after" line whenever the test asks for one over the FIFO named in HV_ASK.
FLOODER_PY = r'''#!/usr/bin/python3
import json, os, sys
total = int(sys.argv[1])
pad = b"z" * 1000
for i in range(total):
    sys.stdout.buffer.write(b"flood %08d %s\n" % (i, pad))
sys.stdout.flush()
with open(os.environ["HV_EVENTS"], "w") as f:
    f.write(json.dumps({"event": "done"}) + "\n")
with open(os.environ["HV_ASK"], "rb") as asks:
    for line in asks:
        sys.stdout.write("after " + line.decode().strip() + "\n")
        sys.stdout.flush()
'''


def keepers(data_dir):
    return sorted(p for p in pids_matching(data_dir) if "log-keeper" in proc_cmdline(p))


def wait_for(pred, what, timeout=15.0):
    """Bounded wait for a condition the daemon or keeper brings about."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


class LogKeeperTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def create_talker(self, name="talk"):
        d = self.d
        ev = d.events(name + ".fifo")
        obj = d.cli_json("create", name, "--command", d.server_program(), "--arg", "tag=" + name,
                         "--env", "HV_EVENTS=" + ev.path, "--json")
        ev.next()
        return obj

    def log_path(self, name):
        return os.path.join(self.d.data_dir, "logs", name + ".log")

    def test_output_written_while_the_daemon_is_dead_is_kept(self):
        d = self.d
        obj = self.create_talker()
        before = d.get("talk")
        keeper = keepers(d.data_dir)
        self.assertEqual(len(keeper), 1, "one log keeper per data dir")

        d.stop(signal.SIGKILL)
        # No daemon: the program is not blocked and its line still reaches the file.
        self.assertEqual(ask(obj["port"], "out said-while-the-daemon-was-dead"), {"ok": True})
        wait_for(lambda: "said-while-the-daemon-was-dead" in read(self.log_path("talk")),
                 "the keeper to write the line with no daemon")

        d.start()
        self.assertEqual(keepers(d.data_dir), keeper, "the new daemon took the pipes back from the same keeper")
        ask(obj["port"], "out said-after-the-restart")
        wait_for(lambda: "said-after-the-restart" in d.cli("logs", "talk").stdout, "the line after the restart")
        now = d.get("talk")
        self.assertEqual((now["pid"], now["restarts"], now["state"]), (before["pid"], 0, "running"), now)
        self.assertGreater(now["log"]["written_bytes"], 0, now)

    def test_a_killed_keeper_is_replaced_and_the_program_never_notices(self):
        d = self.d
        obj = self.create_talker()
        pid = d.get("talk")["pid"]
        ask(obj["port"], "out before-the-keeper-died")
        wait_for(lambda: "before-the-keeper-died" in read(self.log_path("talk")), "the first line")
        (old,) = keepers(d.data_dir)
        os.kill(old, signal.SIGKILL)
        wait_pid_gone(old, 5)
        new = wait_for(lambda: [k for k in keepers(d.data_dir) if k != old], "a new keeper")
        self.assertEqual(len(new), 1, new)
        ask(obj["port"], "out after-the-keeper-died")
        wait_for(lambda: "after-the-keeper-died" in read(self.log_path("talk")), "the line through the new keeper")
        now = d.get("talk")
        self.assertEqual((now["pid"], now["restarts"], now["state"]), (pid, 0, "running"), now)

    def test_shutdown_with_instances_stops_the_keeper_too(self):
        d = self.d
        self.create_talker()
        (keeper,) = keepers(d.data_dir)
        d.cli("shutdown", "--stop-instances")
        d.proc.wait(30)
        wait_pid_gone(keeper, 10)
        self.assertEqual(keepers(d.data_dir), [])
        self.assertFalse(os.path.exists(os.path.join(d.data_dir, "log-keeper.sock")))


@unittest.skipUnless(os.geteuid() == 0, "needs root to mount a small tmpfs as the logs directory")
class DiskFullTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        logs = os.path.join(self.d.data_dir, "logs")
        os.makedirs(logs, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", logs], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", logs], check=False)
        self.logs = logs
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def test_a_full_disk_drops_and_counts_and_never_blocks_the_program(self):
        d = self.d
        flooder = d.write_program("flood.py", FLOODER_PY)
        ev = d.events("flood.fifo")
        asks = os.path.join(d.home, "ask.fifo")
        os.mkfifo(asks, 0o600)
        ask_fd = os.open(asks, os.O_RDWR | os.O_NONBLOCK)
        self.addCleanup(os.close, ask_fd)
        # 4 MB of output into a 256 KiB disk.
        d.cli("create", "flood", "--command", flooder, "--arg", "4000", "--env", "HV_EVENTS=" + ev.path,
              "--env", "HV_ASK=" + asks, "--ready", "start_secs", "--start-secs", "0")
        self.assertEqual(ev.next(timeout=60)["event"], "done", "the program was held back by the full disk")
        status = d.get("flood")
        self.assertEqual(status["state"], "running", status)
        wait_for(lambda: d.get("flood")["log"]["dropped_lines"] > 0, "dropped lines to be counted", timeout=5)
        metrics = d.api("GET", "/metrics")[1]
        self.assertIn('hostvisor_instance_log_dropped_lines_total{instance="flood"', metrics)

        # Space again: the next line arrives, after a line that says what was lost.
        os.truncate(os.path.join(self.logs, "flood.log"), 0)
        os.write(ask_fd, b"1\n")
        text = wait_for(lambda: (lambda t: t if "after 1" in t else "")(read(os.path.join(self.logs, "flood.log"))),
                        "the line after space came back")
        self.assertRegex(text, r"\d+ line\(s\), \d+ bytes of output dropped: disk full")
        self.assertLess(text.index("output dropped"), text.index("after 1"))


if __name__ == "__main__":
    unittest.main()
