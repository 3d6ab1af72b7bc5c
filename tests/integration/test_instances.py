"""Instances: create through the CLI and the API, reach the program on its
assigned port, list and inspect it, patch and delete it."""

import os
import socket
import threading
import unittest

from harness import (INSTANCE_FIELDS, STATES, Daemon, DaemonTestCase, ask,
                     port_is_free, wait_pid_gone)


class InstancesTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def assertInRange(self, port):
        lo, hi = self.d.port_range
        self.assertIsInstance(port, int)
        self.assertTrue(lo <= port <= hi, "port %r outside %d-%d" % (port, lo, hi))

    def test_cli_create_program_gets_port_and_is_reachable(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        obj = d.cli_json("create", "web", "--command", srv,
                         "--arg", "--port", "--arg", "{port}",
                         "--env", "HV_EVENTS=" + ev.path, "--env", "HV_GREETING=hello",
                         "--route", "/ws/", "--json")
        self.assertEqual(obj["name"], "web")
        self.assertEqual(obj["state"], "running", obj)
        self.assertEqual(obj["account"], "default")
        self.assertEqual(obj["command"], srv)
        self.assertEqual(obj["args"], ["--port", "{port}"])
        self.assertEqual(obj["route"], "/ws/")
        port = obj["port"]
        self.assertInRange(port)

        event = ev.next()
        self.assertEqual(event["port_env"], str(port), "PORT in the environment")
        self.assertEqual(event["argv"], ["--port", str(port)], "{port} replaced in args")
        self.assertEqual(event["env"].get("HV_GREETING"), "hello")

        answer = ask(port)
        self.assertEqual(answer["nonce"], event["nonce"])
        self.assertProgramIsInstance(d.get("web"), answer)

    def test_program_inherits_only_stdio(self):
        """No daemon descriptor (API or proxy listening socket, database,
        log or lock file) leaks into an instance: every fd is O_CLOEXEC."""
        d = self.d
        ev = d.events()
        d.cli("create", "clean", "--command", d.server_program(), "--env", "HV_EVENTS=" + ev.path)
        fds = ev.next()["fds"]
        self.assertEqual(sorted(fds, key=int), ["0", "1", "2"],
                         "descriptors inherited from the daemon: %r" % fds)
        self.assertEqual(fds["0"], "/dev/null")

    def test_ls_and_status_show_port_and_state(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        d.cli("create", "web", "--command", srv, "--env", "HV_EVENTS=" + ev.path)
        ev.next()
        obj = d.get("web")
        port, pid = obj["port"], obj["pid"]

        table = d.cli("ls").stdout.splitlines()
        header = table[0].split()
        self.assertEqual(header, ["NAME", "ACCOUNT", "STATE", "PID", "PORT", "UPTIME",
                                  "RESTARTS", "ROUTE", "COMMAND"], table[0])
        rows = [line.split() for line in table[1:] if line.strip()]
        self.assertEqual(len(rows), 1, table)
        row = rows[0]
        self.assertEqual(row[0], "web")
        self.assertEqual(row[1], "default")
        self.assertEqual(row[2], "running")
        self.assertEqual(row[3], str(pid))
        self.assertEqual(row[4], str(port))
        self.assertEqual(row[-1], srv)

        listing = d.ls()
        self.assertIsInstance(listing, list)
        self.assertEqual(len(listing), 1, listing)
        item = listing[0]
        self.assertEqual(INSTANCE_FIELDS - set(item), set(), "fields missing from ls --json")
        self.assertEqual((item["name"], item["port"], item["pid"], item["state"]),
                         ("web", port, pid, "running"))
        self.assertIn(item["restart"], ("always", "on-failure", "never"))
        self.assertIsInstance(item["restarts"], int)
        self.assertIsInstance(item["args"], list)
        self.assertIsInstance(item["env"], dict)
        self.assertEqual(item["env"].get("HV_EVENTS"), ev.path)

        status = d.cli_json("status", "web", "--json")
        self.assertEqual(INSTANCE_FIELDS - set(status), set(), "fields missing from status --json")
        self.assertEqual((status["name"], status["port"], status["pid"], status["state"]),
                         ("web", port, pid, "running"))
        self.assertIn(status["state"], STATES)

        text = d.cli("status", "web").stdout
        pairs = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        pairs = {k.strip(): v.strip() for k, v in pairs.items()}
        self.assertEqual(pairs.get("name"), "web", text)
        self.assertEqual(pairs.get("state"), "running", text)
        self.assertEqual(pairs.get("port"), str(port), text)
        self.assertEqual(pairs.get("pid"), str(pid), text)

    def test_two_instances_get_distinct_ports(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        ports = []
        for name in ("one", "two"):
            obj = d.cli_json("create", name, "--command", srv, "--arg", "tag=" + name,
                             "--env", "HV_EVENTS=" + ev.path, "--json")
            self.assertInRange(obj["port"])
            ports.append(obj["port"])
        self.assertNotEqual(ports[0], ports[1])
        events = {e["argv"][0]: e for e in (ev.next(), ev.next())}
        for name, port in zip(("one", "two"), ports):
            answer = ask(port)
            self.assertEqual(answer["argv"], ["tag=" + name])
            self.assertEqual(answer["nonce"], events["tag=" + name]["nonce"])

    def test_ports_in_use_are_skipped(self):
        """Every port of the range but one is taken by another program: the
        instance gets that one, and the next create finds none."""
        d = self.d
        lo, hi = d.port_range
        squatters = []
        try:
            for port in range(lo, hi):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                squatters.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                    s.listen(1)
                except OSError:
                    pass   # someone else listens there: in use all the same
            obj = d.cli_json("create", "skipper", "--command", d.server_program(),
                             "--no-start", "--json")
            self.assertEqual(obj["port"], hi, "got a port another program listens on")
            self.assertApiError(d.api("POST", "/api/v1/instances", {
                "name": "nomore", "command": d.server_program(), "start": False}),
                409, "exhausted", mentions=["port"])
            self.assertEqual([i["name"] for i in d.ls()], ["skipper"])
        finally:
            for s in squatters:
                s.close()

    def test_concurrent_creates_get_distinct_ports(self):
        d = self.d
        srv = d.server_program()
        results = {}

        def create(name):
            results[name] = d.api("POST", "/api/v1/instances",
                                  {"name": name, "command": srv, "start": False})

        names = ["c%d" % i for i in range(8)]
        threads = [threading.Thread(target=create, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for name in names:
            self.assertEqual(results[name][0], 201, results[name])
        ports = [results[n][1]["port"] for n in names]
        self.assertEqual(len(set(ports)), len(ports), "a port was given twice: %r" % ports)
        for port in ports:
            self.assertInRange(port)
        self.assertEqual(sorted(i["name"] for i in d.ls()), sorted(names))

    def test_concurrent_creates_of_one_name_make_one_instance(self):
        d = self.d
        srv = d.server_program()
        results = []

        def create():
            results.append(d.api("POST", "/api/v1/instances",
                                 {"name": "twin", "command": srv, "start": False}))

        threads = [threading.Thread(target=create) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        statuses = sorted(r[0] for r in results)
        self.assertEqual(statuses, [201] + [409] * 5, results)
        self.assertEqual([i["name"] for i in d.ls()], ["twin"])

    def test_cwd_and_no_start(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        work = os.path.join(d.home, "work")
        os.mkdir(work)
        obj = d.cli_json("create", "lazy", "--command", srv, "--cwd", work,
                         "--env", "HV_EVENTS=" + ev.path, "--no-start", "--json")
        self.assertEqual(obj["state"], "stopped", obj)
        self.assertIsNone(obj["pid"], obj)
        self.assertEqual(obj["cwd"], work)
        self.assertInRange(obj["port"])

        started = d.cli_json("start", "lazy", "--json")
        self.assertEqual(started["state"], "running", started)
        event = ev.next()
        self.assertEqual(event["cwd"], work)
        self.assertEqual(event["port_env"], str(obj["port"]))
        self.assertProgramIsInstance(d.get("lazy"), ask(obj["port"]))

    def test_api_create_get_patch_restart_delete(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        status, obj = d.api("POST", "/api/v1/instances?wait=1", {
            "name": "api1", "command": srv, "args": ["{port}", "x"],
            "env": {"HV_EVENTS": ev.path}, "restart": "always"})
        self.assertEqual(status, 201, obj)
        self.assertEqual(INSTANCE_FIELDS - set(obj), set(), "fields missing from POST answer")
        self.assertEqual(obj["name"], "api1")
        self.assertEqual(obj["restart"], "always")
        self.assertEqual(obj["state"], "running", obj)
        port = obj["port"]
        self.assertInRange(port)
        first = ev.next()
        self.assertEqual(first["argv"], [str(port), "x"])
        first_host = self.assertProgramIsInstance(obj, ask(port))

        status, got = d.api("GET", "/api/v1/instances/api1")
        self.assertEqual(status, 200, got)
        self.assertEqual((got["name"], got["port"], got["state"]), ("api1", port, "running"))
        status, listing = d.api("GET", "/api/v1/instances")
        self.assertEqual(status, 200, listing)
        self.assertEqual([it["name"] for it in listing], ["api1"])

        status, patched = d.api("PATCH", "/api/v1/instances/api1",
                                {"env": {"HV_EVENTS": ev.path, "HV_COLOR": "blue"},
                                 "args": ["{port}", "y"]})
        self.assertEqual(status, 200, patched)
        self.assertEqual(patched["env"], {"HV_EVENTS": ev.path, "HV_COLOR": "blue"})
        self.assertEqual(patched["args"], ["{port}", "y"])
        self.assertEqual(patched["port"], port, "a patch keeps the port")
        self.assertEqual(d.get("api1")["env"].get("HV_COLOR"), "blue")

        old_pid = d.get("api1")["pid"]
        status, restarted = d.api("POST", "/api/v1/instances/api1/restart?wait=1")
        self.assertEqual(status, 200, restarted)
        event = ev.next_matching(lambda e: e["nonce"] != first["nonce"])
        self.assertEqual(event["env"].get("HV_COLOR"), "blue", "restart uses the patched spec")
        self.assertEqual(event["argv"], [str(port), "y"])
        now = d.get("api1")
        self.assertEqual(now["state"], "running", now)
        self.assertNotEqual(now["pid"], old_pid)
        self.assertTrue(wait_pid_gone(first_host, 10), "the old process outlived restart")
        answer = ask(port)
        self.assertEqual(answer["nonce"], event["nonce"])
        host = self.assertProgramIsInstance(now, answer)

        status, deleted = d.api("DELETE", "/api/v1/instances/api1")
        self.assertEqual(status, 200, deleted)
        self.assertEqual(deleted, {"name": "api1", "deleted": True})
        self.assertTrue(wait_pid_gone(host, 10), "the program outlived DELETE")
        self.assertTrue(port_is_free(port), "port %d still in use after DELETE" % port)
        self.assertApiError(d.api("GET", "/api/v1/instances/api1"), 404, "not_found")
        self.assertEqual(d.ls(), [])

    def test_cli_rm_removes_instance_and_process(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        obj = d.cli_json("create", "gone", "--command", srv,
                         "--env", "HV_EVENTS=" + ev.path, "--json")
        host = self.assertProgramIsInstance(d.get("gone"), ask(obj["port"]))
        d.cli("rm", "gone")
        self.assertTrue(wait_pid_gone(host, 10), "the program outlived rm")
        self.assertTrue(port_is_free(obj["port"]))
        self.assertEqual(d.ls(), [])


if __name__ == "__main__":
    unittest.main()
