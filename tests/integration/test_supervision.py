"""Supervision: restart after a crash, restart policies, crash-loop detection,
graceful stop of the whole process tree, and spawn failures that name the
failed step."""

import os
import signal
import socket
import time
import unittest

from harness import (CRASHER_SH, SERVER_PY, Daemon, DaemonTestCase, ask, host_pid_of,
                     pid_alive, pids_matching, port_is_free, proc_cmdline,
                     wait_pid_gone)


def python_processes(tag):
    """Live python processes of a test server started with argument `tag`."""
    return [p for p in pids_matching(tag)
            if proc_cmdline(p)[:1] and proc_cmdline(p)[0].endswith("python3")]


class SupervisionTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def create_server(self, name, *extra):
        """A test server instance; returns (instance, listening event, fifo)."""
        ev = self.d.events(name + ".fifo")
        obj = self.d.cli_json("create", name, "--command", self.d.server_program(),
                              "--arg", "tag=" + name + "-" + os.path.basename(self.d.home),
                              "--env", "HV_EVENTS=" + ev.path, *extra, "--json")
        event = ev.next()
        return obj, event, ev

    def test_kill_9_is_restarted_once_with_new_pid(self):
        d = self.d
        obj, first, ev = self.create_server("crashy", "--restart", "always")
        before = d.get("crashy")
        self.assertEqual(before["state"], "running", before)
        old_host = self.assertProgramIsInstance(before, ask(obj["port"]))

        os.kill(before["pid"], signal.SIGKILL)
        second = ev.next(timeout=30)
        self.assertNotEqual(second["nonce"], first["nonce"])
        after, _ = d.wait_state("crashy", "running", timeout=30,
                                pred=lambda o: o["pid"] not in (None, before["pid"]))
        self.assertEqual(after["restarts"], before["restarts"] + 1, after)
        self.assertEqual(after["port"], before["port"], "the port is kept across restarts")
        answer = ask(after["port"])
        self.assertEqual(answer["nonce"], second["nonce"])
        new_host = self.assertProgramIsInstance(after, answer)
        self.assertNotEqual(new_host, old_host)
        self.assertFalse(pid_alive(old_host))
        tag = "tag=crashy-" + os.path.basename(d.home)
        self.assertEqual(python_processes(tag), [new_host], "exactly one replacement")

    def test_restart_never_leaves_exited(self):
        d = self.d
        obj, _, _ = self.create_server("once", "--restart", "never")
        host = self.assertProgramIsInstance(d.get("once"), ask(obj["port"]))
        ask(obj["port"], "exit 3")
        self.assertTrue(wait_pid_gone(host, 10))
        final, _ = d.wait_state("once", "exited", timeout=15)
        self.assertIsNone(final["pid"], final)
        self.assertEqual(final["exit_code"], 3, final)
        self.assertEqual(final["restarts"], 0, final)
        self.assertTrue(port_is_free(obj["port"]))

    def test_on_failure_restarts_on_failure_only(self):
        d = self.d
        obj, first, ev = self.create_server("picky", "--restart", "on-failure")
        port = obj["port"]
        before = d.get("picky")
        ask(port, "exit 4")
        second = ev.next(timeout=30)
        self.assertNotEqual(second["nonce"], first["nonce"])
        after, _ = d.wait_state("picky", "running", timeout=30,
                                pred=lambda o: o["pid"] not in (None, before["pid"]))
        self.assertEqual(after["restarts"], before["restarts"] + 1, after)

        host = self.assertProgramIsInstance(after, ask(port))
        ask(port, "exit 0")
        self.assertTrue(wait_pid_gone(host, 10))
        final, _ = d.wait_state("picky", "exited", timeout=15)
        self.assertEqual(final["exit_code"], 0, final)
        self.assertEqual(final["restarts"], after["restarts"], final)
        self.assertIsNone(final["pid"], final)

    def test_crash_loop_backs_off_then_goes_fatal(self):
        d = self.d
        ev = d.events()
        crasher = d.write_program("crash.sh", CRASHER_SH)
        status, obj = d.api("POST", "/api/v1/instances", {
            "name": "loop", "command": crasher, "env": {"HV_EVENTS": ev.path},
            "restart": "always"})
        self.assertEqual(status, 201, obj)
        spawns = [ev.next(), ev.next(timeout=30)]   # it was started again
        final, seen = d.wait_state("loop", "fatal", timeout=120, interval=0.02)
        self.assertIn("backoff", seen, "states seen: %r" % seen)
        self.assertLess(seen.index("backoff"), seen.index("fatal"), seen)
        self.assertIsNone(final["pid"], final)
        self.assertGreaterEqual(final["restarts"], 1, final)
        self.assertTrue(final["reason"].strip(), "fatal without a reason: %r" % final)
        self.assertEqual(final["exit_code"], 1, final)
        self.assertIn("crasher-goodbye-line", final["last_output"], final)
        self.assertEqual(len({s["pid"] for s in spawns}), 2)
        self.assertEqual(pids_matching(crasher), [], "a crasher process is still alive")
        # fatal is final: a manual start is needed, and works.
        status, started = d.api("POST", "/api/v1/instances/loop/start")
        self.assertEqual(status, 200, started)
        ev.next(timeout=30)

    def test_stop_frees_port_and_start_again_works(self):
        d = self.d
        obj, first, ev = self.create_server("web")
        port = obj["port"]
        host = self.assertProgramIsInstance(d.get("web"), ask(port))

        stopped = d.cli_json("stop", "web", "--json")
        self.assertEqual(stopped["state"], "stopped", stopped)
        self.assertIsNone(stopped["pid"], stopped)
        self.assertEqual(stopped["port"], port)
        self.assertTrue(wait_pid_gone(host, 10), "the program outlived stop")
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        self.assertTrue(port_is_free(port), "port %d still in use after stop" % port)
        self.assertEqual(d.get("web")["state"], "stopped")

        started = d.cli_json("start", "web", "--json")
        self.assertEqual(started["state"], "running", started)
        self.assertEqual(started["port"], port, "start keeps the assigned port")
        second = ev.next()
        self.assertNotEqual(second["nonce"], first["nonce"])
        answer = ask(port)
        self.assertEqual(answer["nonce"], second["nonce"])
        self.assertProgramIsInstance(d.get("web"), answer)

    def test_cli_restart_replaces_process(self):
        d = self.d
        obj, first, ev = self.create_server("again")
        before = d.get("again")
        restarted = d.cli_json("restart", "again", "--json")
        self.assertEqual(restarted["state"], "running", restarted)
        second = ev.next()
        self.assertNotEqual(second["nonce"], first["nonce"])
        after = d.get("again")
        self.assertNotEqual(after["pid"], before["pid"])
        self.assertEqual(after["port"], before["port"])
        self.assertEqual(ask(obj["port"])["nonce"], second["nonce"])

    def test_stop_kills_whole_tree_after_grace(self):
        d = self.d
        ev = d.events()
        stubborn = d.write_program("stubborn.sh", '''#!/bin/sh
trap '' TERM
sleep 1000 &
echo "{\\"event\\": \\"spawned\\", \\"pid\\": $$, \\"child\\": $!}" > "$HV_EVENTS"
wait
''')
        status, obj = d.api("POST", "/api/v1/instances?wait=1", {
            "name": "stubborn", "command": stubborn, "env": {"HV_EVENTS": ev.path},
            "stop_grace_ms": 1000, "start_secs": 0})
        self.assertEqual(status, 201, obj)
        spawned = ev.next()
        running, _ = d.wait_state("stubborn", "running", timeout=15)
        shell = host_pid_of(running["pid"], spawned["pid"])
        child = host_pid_of(running["pid"], spawned["child"])
        self.assertIsNotNone(shell, "the shell is not in the instance's session")
        self.assertIsNotNone(child, "the sleep child is not in the instance's session")

        t0 = time.monotonic()
        status, stopped = d.api("POST", "/api/v1/instances/stubborn/stop")
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, stopped)
        self.assertEqual(stopped["state"], "stopped", stopped)
        self.assertGreaterEqual(elapsed, 0.9, "SIGKILL came before the 1000 ms grace")
        self.assertTrue(wait_pid_gone(shell, 5), "the program survived stop")
        self.assertTrue(wait_pid_gone(child, 5), "its child survived stop")

    def test_stop_uses_configured_signal(self):
        d = self.d
        ev = d.events()
        polite = d.write_program("polite.sh", '''#!/bin/sh
trap 'echo "{\\"event\\": \\"usr1\\"}" > "$HV_EVENTS"; exit 0' USR1
echo "{\\"event\\": \\"spawned\\", \\"pid\\": $$}" > "$HV_EVENTS"
while :; do sleep 1 & wait $!; done
''')
        status, obj = d.api("POST", "/api/v1/instances?wait=1", {
            "name": "polite", "command": polite, "env": {"HV_EVENTS": ev.path},
            "stop_signal": int(signal.SIGUSR1), "stop_grace_ms": 20000, "start_secs": 0})
        self.assertEqual(status, 201, obj)
        self.assertEqual(obj["stop_signal"], int(signal.SIGUSR1))
        self.assertEqual(ev.next()["event"], "spawned")
        d.wait_state("polite", "running", timeout=15)
        t0 = time.monotonic()
        status, stopped = d.api("POST", "/api/v1/instances/polite/stop")
        self.assertEqual(status, 200, stopped)
        self.assertEqual(ev.next(timeout=5)["event"], "usr1", "the program never got SIGUSR1")
        self.assertEqual(stopped["state"], "stopped", stopped)
        self.assertLess(time.monotonic() - t0, 15, "stop waited for the grace, not the exit")

    def test_spawn_failure_missing_interpreter_names_exec(self):
        d = self.d
        broken = d.write_program("broken.sh", "#!/nonexistent/interpreter\n")
        status, obj = d.api("POST", "/api/v1/instances", {
            "name": "broken", "command": broken})
        self.assertEqual(status, 201, obj)
        final, _ = d.wait_state("broken", {"backoff", "fatal"}, timeout=30,
                                pred=lambda o: "exec" in o["reason"])
        self.assertIn("No such file or directory", final["reason"], final)
        self.assertIsNone(final["pid"], final)
        d.wait_state("broken", "fatal", timeout=120)

    def test_spawn_failure_command_made_non_executable(self):
        d = self.d
        srv = d.server_program()
        d.cli("create", "later", "--command", srv, "--no-start")
        os.chmod(srv, 0o644)
        status, obj = d.api("POST", "/api/v1/instances/later/start")
        self.assertEqual(status, 200, obj)
        # exec(2) fails: the reason names the step, the command and the errno,
        # with the daemon's hint, and a permanent error is not retried for ever.
        final, _ = d.wait_state("later", {"backoff", "fatal"}, timeout=30,
                                pred=lambda o: "exec" in o["reason"])
        self.assertIn(srv, final["reason"], final)
        self.assertIn("Permission denied", final["reason"], final)
        self.assertIn("chmod u+x", final["reason"], final)
        self.assertIsNone(final["pid"], final)
        final, _ = d.wait_state("later", "fatal", timeout=60)
        self.assertEqual(pids_matching(srv), [])

    def test_spawn_failure_command_deleted_after_create(self):
        d = self.d
        srv = d.write_program("doomed.py", SERVER_PY)
        d.cli("create", "doomed", "--command", srv, "--no-start")
        os.unlink(srv)
        status, obj = d.api("POST", "/api/v1/instances/doomed/start")
        self.assertEqual(status, 200, obj)
        final, _ = d.wait_state("doomed", {"backoff", "fatal"}, timeout=30,
                                pred=lambda o: "exec" in o["reason"])
        self.assertIn(srv, final["reason"], final)
        self.assertIn("No such file or directory", final["reason"], final)
        self.assertIsNone(final["pid"], final)
        d.wait_state("doomed", "fatal", timeout=60)


if __name__ == "__main__":
    unittest.main()
