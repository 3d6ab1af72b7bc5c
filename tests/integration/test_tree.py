"""Supervision of whole process trees (issue 3): a program that daemonizes a
grandchild out of its session cannot outlive `stop` nor hold the port; a
program over its memory limit is killed and its status says why; a crash
loop costs the daemon little CPU while it backs off."""

import os
import socket
import time
import unittest

from harness import Daemon, DaemonTestCase, port_is_free, wait_pid_gone

# Double-forks a daemon into its own session (out of the instance's process
# group) that holds the instance's port, then the parent waits forever.
ESCAPER_PY = r'''#!/usr/bin/python3
import json, os, socket, sys, time
port = int(os.environ["PORT"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
        with open(os.environ["HV_EVENTS"], "w") as f:
            f.write(json.dumps({"event": "escaped", "pid": os.getpid()}) + "\n")
        while True:
            conn, _ = s.accept()
            conn.close()
    os._exit(0)
while True:
    time.sleep(3600)
'''

HOG_PY = r'''#!/usr/bin/python3
import json, os
with open(os.environ["HV_EVENTS"], "w") as f:
    f.write(json.dumps({"event": "allocating", "pid": os.getpid()}) + "\n")
block = bytearray(256 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("allocated 256 MiB: the limit did not hold", flush=True)
'''


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cgroups_available():
    return os.geteuid() == 0 and os.path.isdir("/sys/fs/cgroup")


class TreeTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    @unittest.skipUnless(cgroups_available(), "needs root and cgroups")
    def test_stop_ends_a_double_forked_daemon_and_frees_the_port(self):
        d = self.d
        ev = d.events()
        prog = d.write_program("escaper.py", ESCAPER_PY)
        obj = d.cli_json("create", "escaper", "--command", prog, "--env", "HV_EVENTS=" + ev.path,
                         "--ready", "start_secs", "--start-secs", "0", "--json")
        escaped = ev.next()["pid"]
        self.assertNotEqual(os.getsid(escaped), obj["pid"], "the grandchild did not leave the session")
        with socket.create_connection(("127.0.0.1", obj["port"]), timeout=5):
            pass  # the escaped grandchild holds the port
        stopped = d.cli_json("stop", "escaper", "--json")
        self.assertEqual(stopped["state"], "stopped", stopped)
        self.assertTrue(wait_pid_gone(escaped, 5), "the double-forked grandchild survived stop")
        self.assertTrue(port_is_free(obj["port"]), "the port is still held after stop")

    @unittest.skipUnless(cgroups_available(), "needs root and cgroups")
    def test_memory_limit_kills_and_the_status_says_out_of_memory(self):
        d = self.d
        ev = d.events()
        prog = d.write_program("hog.py", HOG_PY)
        d.cli("create", "hog", "--command", prog, "--env", "HV_EVENTS=" + ev.path,
              "--memory", "64M", "--restart", "never", "--ready", "start_secs", "--no-wait")
        ev.next()
        final, _ = d.wait_state("hog", "exited", timeout=30)
        self.assertIn("out of memory", final["reason"], final)
        self.assertEqual(final["memory"], 64 << 20, final)
        logs = d.cli("logs", "hog", "-n", "50").stdout
        self.assertNotIn("the limit did not hold", logs)

    def test_crash_loop_backs_off_with_little_daemon_cpu(self):
        d = self.d
        crasher = d.write_program("crash.sh", "#!/bin/sh\nexit 3\n")
        before = cpu_seconds(d.pid)
        t0 = time.monotonic()
        d.cli("create", "loop", "--command", crasher, "--ready", "start_secs", "--no-wait")
        final, _ = d.wait_state("loop", "fatal", timeout=30)
        elapsed = time.monotonic() - t0
        used = cpu_seconds(d.pid) - before
        self.assertIn("crash loop", final["reason"], final)
        self.assertEqual(final["restarts"], 4, final)
        # Backoff 100+200+400+800 ms (±20 %): it took a while, and the daemon
        # spent that time waiting on timers, not spinning.
        self.assertGreater(elapsed, 1.0, final)
        self.assertLess(used, 0.5, "the daemon burned %.2f s of CPU during a %.1f s crash loop" % (used, elapsed))


if __name__ == "__main__":
    unittest.main()
