"""The instance list: `hostvisor ls --json` prints the daemon's body as it
came (a JSON array equal in content to GET /api/v1/instances), strings with
quotes, controls and UTF-8 survive the daemon's own JSON writer, and each
instance's entry follows its changes (stop, patch, restart)."""

import json
import unittest

from harness import INSTANCE_FIELDS, Daemon, DaemonTestCase

# Change by themselves from one call to the next.
LIVE = ("uptime", "cpu_seconds", "rss_bytes")


def settled(items):
    return [{k: v for k, v in it.items() if k not in LIVE} for it in items]


class ListTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def by_name(self):
        return {it["name"]: it for it in self.d.ls()}

    def test_ls_json_is_the_api_list(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        odd = 'quote" back\\slash\ttab\nnewline \x01 é ☃'
        d.cli("create", "alpha", "--command", srv, "--env", "HV_EVENTS=" + ev.path,
              "--env", "ODD=" + odd, "--arg", odd, "--route", "/alpha/")
        ev.next()
        d.cli("create", "beta", "--command", srv, "--no-start")

        cp = d.cli("ls", "--json")
        self.assertTrue(cp.stdout.startswith("[") and cp.stdout.endswith("]\n"), cp.stdout[:80])
        listing = json.loads(cp.stdout)
        status, api = d.api("GET", "/api/v1/instances")
        self.assertEqual(status, 200, api)
        self.assertEqual([it["name"] for it in listing], ["alpha", "beta"])
        self.assertEqual(settled(listing), settled(api))
        for it in listing:
            self.assertEqual(INSTANCE_FIELDS - set(it), set(), it)
        alpha, beta = listing
        self.assertEqual(alpha["env"]["ODD"], odd)
        self.assertEqual(alpha["args"], [odd])
        self.assertEqual(alpha["state"], "running")
        self.assertIsInstance(alpha["pid"], int)
        self.assertIsInstance(alpha["uptime"], int)
        self.assertEqual(beta["state"], "stopped")
        self.assertIsNone(beta["pid"])
        self.assertIsNone(beta["started_at"])
        # The single-instance answer is the same object as the list's entry.
        self.assertEqual(settled([d.get("alpha")]), settled([alpha]))

        # The table is made from the same list.
        table = d.cli("ls").stdout.splitlines()
        self.assertEqual([line.split()[0] for line in table[1:]], ["alpha", "beta"], table)

    def test_entries_follow_changes(self):
        d = self.d
        ev = d.events()
        srv = d.server_program()
        d.cli("create", "gamma", "--command", srv, "--env", "HV_EVENTS=" + ev.path)
        first = ev.next()
        before = self.by_name()["gamma"]
        self.assertEqual(before["state"], "running")

        d.cli("stop", "gamma")
        stopped = self.by_name()["gamma"]
        self.assertEqual(stopped["state"], "stopped")
        self.assertIsNone(stopped["pid"])
        self.assertIsNone(stopped["started_at"])

        status, _ = d.api("PATCH", "/api/v1/instances/gamma",
                          {"env": {"HV_EVENTS": ev.path, "HV_COLOR": "blue"}, "cpu": 50})
        self.assertEqual(status, 200)
        patched = self.by_name()["gamma"]
        self.assertEqual(patched["env"], {"HV_EVENTS": ev.path, "HV_COLOR": "blue"})
        self.assertEqual(patched["cpu"], 50)

        d.cli("start", "gamma")
        ev.next_matching(lambda e: e["nonce"] != first["nonce"])
        running = self.by_name()["gamma"]
        self.assertEqual(running["state"], "running")
        self.assertNotEqual(running["pid"], before["pid"])
        self.assertEqual(running["env"].get("HV_COLOR"), "blue")

        d.cli("rm", "gamma")
        self.assertEqual(d.ls(), [])


if __name__ == "__main__":
    unittest.main()
