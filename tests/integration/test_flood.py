"""A program flooding stdout is never blocked: its log rotates at the
configured size, keeps only the configured number of old files, and
`logs -f` keeps following across every rotation (issue 3, logs)."""

import os
import queue
import subprocess
import tempfile
import threading
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
print("FLOOD-DONE", flush=True)
with open(os.environ["HV_EVENTS"], "w") as f:
    f.write(json.dumps({"event": "done", "seconds": elapsed}) + "\n")
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
        d.cli("create", "flood", "--command", flooder, "--arg", str(LINES),
              "--env", "HV_EVENTS=" + ev.path, "--ready", "start_secs", "--start-secs", "0",
              "--no-start")
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

        # Rotation happened, and only KEEP old files are kept.
        logs = os.path.join(d.data_dir, "logs")
        self.assertTrue(os.path.exists(os.path.join(logs, "flood.log.1")), os.listdir(logs))
        self.assertFalse(os.path.exists(os.path.join(logs, "flood.log.%d" % (KEEP + 1))),
                         os.listdir(logs))
        total = sum(os.path.getsize(os.path.join(logs, f)) for f in os.listdir(logs)
                    if f.startswith("flood.log"))
        self.assertLess(total, 30_000_000 // 4, "rotation did not bound the disk use")

        # The follower saw the last line, written after ~100 rotations.
        try:
            got = seen.get(timeout=30)
        except queue.Empty:
            got = "timeout"
        if got != "done":
            follower.kill()
            self.fail("logs -f stopped following (%s): %r" % (got, follower.stderr.read()))
        self.assertIsNone(follower.poll(), "logs -f ended")


if __name__ == "__main__":
    unittest.main()
