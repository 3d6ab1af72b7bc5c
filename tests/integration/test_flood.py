"""A program flooding stdout is never blocked: its log rotates at the
configured size, keeps only the configured number of old files, and
`logs -f` keeps following across every rotation (issue 3, logs)."""

import os
import queue
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Daemon, DaemonTestCase

# Writes `total` numbered lines of ~100 bytes as fast as it can, reports to the
# event FIFO how long that took, prints a final marker, then stays alive.
FLOODER_PY = r'''#!/usr/bin/python3
import json, os, sys, time
total = int(sys.argv[1])
pad = "x" * 90
out = sys.stdout.buffer
start = time.monotonic()
for i in range(total):
    out.write(b"flood %08d %s\n" % (i, pad.encode()))
out.flush()
elapsed = time.monotonic() - start
with open(os.environ["HV_EVENTS"], "w") as f:
    f.write(json.dumps({"event": "done", "seconds": elapsed}) + "\n")
# The last line once the test asks: what a burst overflowed is behind us.
with open(os.environ["HV_ASK"], "rb") as asks:
    asks.readline()
    print("FLOOD-DONE", flush=True)
    while True:
        time.sleep(3600)
'''

LINES = 300_000          # ~30 MB of output
MAX_SIZE = 256 * 1024    # rotate every 256 KiB: ~100 rotations
KEEP = 2


class FloodTest(DaemonTestCase):

    def setUp(self):
        conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        conf.write('[logs]\nmax_size = "%d"\nkeep = %d\n' % (MAX_SIZE, KEEP))
        conf.close()
        self.addCleanup(os.unlink, conf.name)
        self.d = Daemon(extra_args=["--config", conf.name])
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def test_flood_rotates_never_blocks_and_follow_survives_rotation(self):
        d = self.d
        flooder = d.write_program("flood.py", FLOODER_PY)
        ev = d.events()
        asks = os.path.join(d.home, "ask.fifo")
        os.mkfifo(asks, 0o600)
        ask_fd = os.open(asks, os.O_RDWR | os.O_NONBLOCK)
        self.addCleanup(os.close, ask_fd)
        d.cli("create", "flood", "--command", flooder, "--arg", str(LINES),
              "--env", "HV_EVENTS=" + ev.path, "--env", "HV_ASK=" + asks,
              "--ready", "start_secs", "--start-secs", "0", "--no-start")
        follower = d.spawn([d.serve_argv()[0], "--data-dir", d.data_dir, "logs", "flood", "-f",
                            "-n", "0"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        seen = queue.Queue()

        def pump():
            for raw in follower.stdout:
                if b"FLOOD-DONE" in raw:
                    seen.put("done")
            seen.put(None)

        threading.Thread(target=pump, daemon=True).start()
        d.cli("start", "flood")

        # The program finishes its 30 MB: nothing it writes to ever blocks.
        done = ev.next(timeout=120)
        self.assertEqual(done["event"], "done")
        status = d.get("flood")
        self.assertEqual(status["state"], "running", status)

        # The follower sees the last line, written after ~100 rotations. (A
        # burst faster than the disk may have overflowed the keeper's buffer:
        # those lines are dropped and counted, the program is never held.)
        os.write(ask_fd, b"last\n")
        try:
            got = seen.get(timeout=30)
        except queue.Empty:
            got = "timeout"
        if got != "done":
            follower.kill()
            self.fail("logs -f stopped following (%s): %r" % (got, follower.stderr.read()))
        self.assertIsNone(follower.poll(), "logs -f ended")

        # Rotation happened, and only KEEP old files are kept. The keeper may be
        # between the two renames of its last rotation: look until it is not.
        logs = os.path.join(d.data_dir, "logs")
        names = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            names = set(os.listdir(logs))
            if {"flood.log.1", "flood.log.%d" % KEEP} <= names:
                break
            time.sleep(0.01)
        self.assertIn("flood.log.1", names)
        self.assertNotIn("flood.log.%d" % (KEEP + 1), names)
        total = sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs)
                    if f.startswith("flood.log"))
        self.assertLess(total, 30_000_000 // 4, "rotation did not bound the disk use")
        # Nothing vanished unaccounted: every byte the program wrote was either
        # written or dropped and counted (a burst faster than the disk and a
        # CPU shared with the program may overflow the keeper's buffer). The
        # counters reach the status within a second (cached).
        produced = LINES * len(b"flood 00000000 " + b"x" * 90 + b"\n") + len(b"FLOOD-DONE\n")
        log = d.wait_state("flood", "running", timeout=10,
                           pred=lambda o: o["log"]["written_bytes"] + o["log"]["dropped_bytes"] >= produced)[0]["log"]
        # Written also holds the keeper's own "N lines dropped" notes.
        self.assertLess(log["written_bytes"] + log["dropped_bytes"], produced + 1_000_000, log)
        self.assertEqual(log["dropped_lines"] == 0, log["dropped_bytes"] == 0, log)

if __name__ == "__main__":
    unittest.main()
