"""Persistence: the daemon restarted (SIGTERM or SIGKILL) on the same data dir
keeps its instances and their ports, re-adopts running programs without
duplicating them, and a second daemon on the same data dir is refused."""

import json
import os
import signal
import subprocess
import time
import unittest

from harness import (Daemon, DaemonTestCase, ask, pids_matching, proc_cmdline,
                     stable_view, wait_pid_gone)


def stored_view(instances):
    keys = ("name", "account", "command", "args", "env", "cwd", "route", "restart",
            "autostart", "port")
    return sorted([it.get(k) for k in keys] for it in instances)


class PersistenceTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def create_server(self, name, *extra):
        d = self.d
        ev = d.events(name + ".fifo")
        self.tag = "tag=" + name + "-" + os.path.basename(d.home)
        obj = d.cli_json("create", name, "--command", d.server_program(), "--arg", self.tag,
                         "--env", "HV_EVENTS=" + ev.path, *extra, "--json")
        return obj, ev.next(), ev

    def programs(self):
        return [p for p in pids_matching(self.tag)
                if proc_cmdline(p)[:1] and proc_cmdline(p)[0].endswith("python3")]

    def check_readopted(self, stop_signal):
        d = self.d
        obj, event, ev = self.create_server("keep", "--restart", "always")
        d.cli("create", "idle", "--command", d.server_program(), "--no-start")
        before = d.ls()
        keep = d.get("keep")
        host = self.assertProgramIsInstance(keep, ask(obj["port"]))

        old_daemon = d.pid
        d.stop(stop_signal)
        # The program outlives its daemon and still answers, same process.
        self.assertEqual(ask(obj["port"])["nonce"], event["nonce"])

        d.start()
        self.assertNotEqual(d.pid, old_daemon)
        after = d.ls()
        self.assertEqual(stored_view(after), stored_view(before))
        now = d.get("keep")
        self.assertEqual(now["state"], "running", now)
        self.assertEqual(now["pid"], keep["pid"], "the running program was re-adopted")
        self.assertEqual(now["restarts"], keep["restarts"], now)
        self.assertEqual(d.get("idle")["port"], [i for i in before if i["name"] == "idle"][0]["port"])
        answer = ask(obj["port"])
        self.assertEqual(answer["nonce"], event["nonce"], "the program was started again")
        self.assertEqual(self.programs(), [host], "exactly one program for the instance")

        # Re-adopted means supervised: a crash now is seen and restarted.
        os.kill(now["pid"], signal.SIGKILL)
        second = ev.next(timeout=30)
        self.assertNotEqual(second["nonce"], event["nonce"])
        again, _ = d.wait_state("keep", "running", timeout=30,
                                pred=lambda o: o["pid"] not in (None, keep["pid"]))
        self.assertEqual(again["restarts"], keep["restarts"] + 1, again)
        self.assertEqual(again["port"], obj["port"])
        self.assertEqual(ask(obj["port"])["nonce"], second["nonce"])

    def test_sigterm_restart_keeps_instances_ports_and_processes(self):
        self.check_readopted(signal.SIGTERM)

    def test_sigkill_restart_readopts_without_duplicates(self):
        self.check_readopted(signal.SIGKILL)

    def test_program_that_died_while_daemon_was_down_is_restarted(self):
        d = self.d
        obj, event, ev = self.create_server("phoenix", "--restart", "always")
        before = d.get("phoenix")
        host = self.assertProgramIsInstance(before, ask(obj["port"]))
        d.stop()
        os.kill(host, signal.SIGKILL)
        self.assertTrue(wait_pid_gone(host, 10))
        d.start()
        second = ev.next(timeout=30)
        self.assertNotEqual(second["nonce"], event["nonce"])
        now, _ = d.wait_state("phoenix", "running", timeout=30,
                              pred=lambda o: o["pid"] not in (None, before["pid"]))
        self.assertEqual(now["port"], before["port"])
        self.assertEqual(ask(obj["port"])["nonce"], second["nonce"])
        self.assertEqual(len(self.programs()), 1, "exactly one program for the instance")

    def test_autostart_after_full_shutdown(self):
        d = self.d
        obj, event, ev = self.create_server("auto")
        srv = d.server_program()
        status, manual = d.api("POST", "/api/v1/instances?wait=1", {
            "name": "manual", "command": srv, "autostart": False})
        self.assertEqual(status, 201, manual)
        self.assertEqual(manual["autostart"], False)
        d.cli("shutdown", "--stop-instances")
        self.assertEqual(d.proc.wait(20), 0, d.stderr_text())
        self.assertEqual(self.programs(), [], "shutdown --stop-instances left the program")
        d.start()
        # `auto` starts with the daemon, `manual` does not.
        second = ev.next(timeout=30)
        self.assertNotEqual(second["nonce"], event["nonce"])
        auto, _ = d.wait_state("auto", "running", timeout=30)
        self.assertEqual(auto["port"], obj["port"])
        self.assertEqual(ask(obj["port"])["nonce"], second["nonce"])
        self.assertEqual(d.get("manual")["state"], "stopped")
        self.assertEqual(d.get("manual")["port"], manual["port"])

    def test_readopted_program_output_still_captured(self):
        d = self.d
        obj, event, _ = self.create_server("talk")
        d.restart()
        ask(obj["port"], "out said-after-daemon-restart")
        deadline = time.monotonic() + 15
        while "said-after-daemon-restart" not in d.cli("logs", "talk").stdout:
            self.assertLess(time.monotonic(), deadline, "line never reached the logs")
            time.sleep(0.05)
        self.assertEqual(ask(obj["port"])["nonce"], event["nonce"], "the program was replaced")

    def test_stopped_daemon_restart_keeps_deletes_and_creates(self):
        d = self.d
        srv = d.server_program()
        for name in ("a", "b", "c"):
            d.cli("create", name, "--command", srv, "--no-start")
        ports = {i["name"]: i["port"] for i in d.ls()}
        d.cli("rm", "b")
        d.restart()
        self.assertEqual({i["name"]: i["port"] for i in d.ls()},
                         {"a": ports["a"], "c": ports["c"]})
        # Ports of surviving instances are still reserved: a new instance
        # never gets one of them.
        new = d.cli_json("create", "d", "--command", srv, "--no-start", "--json")
        self.assertNotIn(new["port"], (ports["a"], ports["c"]))
        d.restart()
        self.assertEqual({i["name"]: i["port"] for i in d.ls()},
                         {"a": ports["a"], "c": ports["c"], "d": new["port"]})

    def test_second_daemon_on_same_data_dir_names_lock_holder(self):
        d = self.d
        self.create_server("one")
        before = d.ls()
        second = d.spawn(d.serve_argv(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = second.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait(5)
            self.fail("a second daemon on the same data dir kept running")
        err = err.decode(errors="replace")
        self.assertNotEqual(second.returncode, 0, err)
        self.assertIn(str(d.pid), err, "the message does not name the pid holding the lock")
        # The first daemon is untouched.
        self.assertTrue(d.alive())
        with open(os.path.join(d.data_dir, "daemon.json")) as f:
            self.assertEqual(json.load(f)["pid"], d.pid)
        self.assertEqual(stable_view(d.ls()), stable_view(before))
        status, body = d.api("GET", "/healthz", token=None)
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
