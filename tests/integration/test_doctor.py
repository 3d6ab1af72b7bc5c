"""`hostvisor doctor` and strict mode (issue 5): the daemon says, per sandbox
mechanism, whether it is enforced on this host or degraded and why; with
`strict = true` it refuses to start instances while anything is degraded."""

import json
import os
import tempfile
import unittest

from harness import Daemon, DaemonTestCase


class DoctorTest(DaemonTestCase):

    def start_daemon(self, config=""):
        conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        conf.write(config)
        conf.close()
        self.addCleanup(os.unlink, conf.name)
        self.d = Daemon(extra_args=["--config", conf.name])
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def test_doctor_lists_every_mechanism_with_its_state(self):
        self.start_daemon()
        cp = self.d.cli("doctor", "--json", check=False)
        rows = json.loads(cp.stdout)["mechanisms"]
        names = [r["name"] for r in rows]
        for expected in ("run as the account", "no_new_privs"):
            self.assertIn(expected, names)
        for r in rows:
            self.assertIsInstance(r["enforced"], bool, r)
            self.assertTrue(r["detail"], r)
        degraded = [r for r in rows if not r["enforced"]]
        self.assertEqual(cp.returncode, 4 if degraded else 0, cp.stderr)
        table = self.d.cli("doctor", check=False)
        for r in degraded:
            self.assertIn(r["name"], table.stdout)
        self.assertEqual("DEGRADED" in table.stdout, bool(degraded))
        # The same table is in the daemon's log at start.
        self.assertIn("sandbox mechanisms on this host", self.d.stderr_text())

    def test_strict_mode_refuses_to_start_when_something_is_degraded(self):
        self.start_daemon("strict = true\n")
        rows = json.loads(self.d.cli("doctor", "--json", check=False).stdout)["mechanisms"]
        degraded = [r for r in rows if not r["enforced"]]
        if not degraded:
            self.skipTest("every mechanism is enforced on this host: strict mode has nothing to refuse")
        cp = self.d.cli("create", "strictly", "--command", self.d.server_program(), "--json", check=False)
        obj = json.loads(cp.stdout) if cp.stdout else self.d.get("strictly")
        self.assertEqual(obj["state"], "fatal", obj)
        self.assertIn("strict mode", obj["reason"])
        self.assertIn(degraded[0]["name"], obj["reason"])
        self.assertIsNone(obj["pid"])


if __name__ == "__main__":
    unittest.main()
