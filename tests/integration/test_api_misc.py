"""The daemon's surroundings: readiness file, admin token, /healthz, /metrics,
accounts, the data dir from the environment, and shutdown."""

import os
import re
import stat
import unittest

from harness import Daemon, DaemonTestCase, ask, port_is_free, wait_pid_gone


class ApiMiscTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def create_server(self, name):
        ev = self.d.events(name + ".fifo")
        obj = self.d.cli_json("create", name, "--command", self.d.server_program(),
                              "--env", "HV_EVENTS=" + ev.path, "--json")
        return obj, ev.next()

    def test_daemon_json_and_admin_token(self):
        d = self.d
        self.assertEqual(d.info["pid"], d.pid)
        self.assertRegex(d.info["api"], r"^127\.0\.0\.1:\d+$")
        self.assertNotEqual(d.api_addr[1], 0)
        self.assertEqual(d.info["socket"], os.path.join(d.data_dir, "api.sock"))
        self.assertTrue(stat.S_ISSOCK(os.stat(d.info["socket"]).st_mode))

        st = os.stat(os.path.join(d.data_dir, "admin.token"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(st.st_mode))
        self.assertEqual(st.st_uid, os.getuid())
        self.assertGreaterEqual(len(d.token), 16, "admin token too short to be a secret")
        # The token survives a daemon restart (written at first start only).
        token = d.token
        d.restart()
        self.assertEqual(d.token, token)

    def test_healthz(self):
        status, body = self.d.api("GET", "/healthz", token=None)
        self.assertEqual(status, 200)
        self.assertEqual(body.strip(), "ok")

    def test_metrics_has_per_instance_samples(self):
        d = self.d
        self.create_server("metered")
        # It names every account's instances: admin only (docs/api.md).
        status, body = d.api("GET", "/metrics", token=None)
        self.assertEqual(status, 401, body)
        status, text = d.api("GET", "/metrics")
        self.assertEqual(status, 200, text)
        self.assertIsInstance(text, str)
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        self.assertTrue(samples, text)
        for line in samples:
            self.assertRegex(line, r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+( \d+)?$",
                             "not Prometheus text format")
        mine = [line for line in samples if re.search(r'="metered"', line)]
        self.assertTrue(mine, "no sample labelled with the instance name:\n" + text)
        # The front proxy's counters come with them (the harness runs a proxy).
        for series in ("hostvisor_proxy_connections_total", "hostvisor_proxy_tunnels_open",
                       "hostvisor_proxy_upstream_errors_total"):
            self.assertRegex(text, r"(?m)^%s(\{[^}]*\})? \d+$" % series, text)

    def test_accounts_lists_default(self):
        status, accounts = self.d.api("GET", "/api/v1/accounts")
        self.assertEqual(status, 200, accounts)
        self.assertIsInstance(accounts, list)
        self.assertIn("default", [a.get("name") for a in accounts], accounts)

    def test_data_dir_from_environment(self):
        d = self.d
        self.create_server("envdir")
        cp = d.cli("ls", "--json", data_dir=False,
                   env_extra={"HOSTVISOR_DATA_DIR": d.data_dir})
        self.assertIn('"envdir"', cp.stdout)

    def test_shutdown_stop_instances(self):
        d = self.d
        obj, _ = self.create_server("bye")
        host = self.assertProgramIsInstance(d.get("bye"), ask(obj["port"]))
        d.cli("shutdown", "--stop-instances")
        self.assertEqual(d.proc.wait(20), 0, d.stderr_text())
        self.assertTrue(wait_pid_gone(host, 10), "the program outlived shutdown --stop-instances")
        self.assertTrue(port_is_free(obj["port"]))

    def test_api_shutdown_leaves_instances_for_readoption(self):
        d = self.d
        obj, event = self.create_server("stay")
        before = d.get("stay")
        status, _ = d.api("POST", "/api/v1/shutdown")
        self.assertEqual(status, 202)
        self.assertEqual(d.proc.wait(20), 0, d.stderr_text())
        self.assertEqual(ask(obj["port"])["nonce"], event["nonce"])
        d.start()
        now = d.get("stay")
        self.assertEqual((now["state"], now["pid"], now["port"]),
                         ("running", before["pid"], before["port"]))

    def test_shutdown_needs_token(self):
        self.assertApiError(self.d.api("POST", "/api/v1/shutdown", token=None),
                            401, "unauthorized")
        self.assertTrue(self.d.alive())


if __name__ == "__main__":
    unittest.main()
