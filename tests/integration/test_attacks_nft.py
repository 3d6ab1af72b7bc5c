"""The network attack tests of test_attacks.py again, with the daemon forced
onto the nftables fallback (`[sandbox] network = "nftables"`), as on a host
where the cgroup-v2 BPF hooks cannot load. What differs, and is asserted:
- a TCP connect to an unlisted peer is reset at once (ECONNREFUSED; a hang
  would show as "timeout" and fail), a UDP send fails with EPERM; over IPv4,
  IPv6 and v4-mapped IPv6; the blocked counters rise (a refused UDP
  connect+send counts as a send: nft sees the datagram, not the connect);
- a listener on an unassigned port (listen() without bind()) is reset;
- bind() itself cannot be refused by nftables: the doctor reports
  "net bind4/6" DEGRADED, and the bind tests skip saying so;
- host names in the allowlist work the same.
Non-network attacks are not repeated here (test_attacks.py covers them)."""

import os
import tempfile
import unittest

import test_attacks as base

NETWORK_TESTS = {
    "test_bind_to_another_port_is_refused",
    "test_listen_without_bind_is_not_reachable",
    "test_stealing_another_instances_port_before_it_starts",
    "test_connect_outside_the_allowlist_is_refused",
    "test_allowlisted_egress_connects",
    "test_allowlisted_host_name_connects",
    "test_doctor_names_nftables",
}


class NftAttackTest(base.AttackTest):
    REFUSED = ("ECONNREFUSED", "EPERM")
    # python's timeout sockets are non-blocking: the reset of a Fast Open SYN
    # arrives after sendto() returned EINPROGRESS; nothing is delivered.
    FASTOPEN_REFUSED = ("ECONNREFUSED", "EINPROGRESS", "EPERM")
    UDP_CONNECT_COUNTED_AS = "sendmsg"

    def daemon_args(self):
        fd, path = tempfile.mkstemp(prefix="hv-nft-", suffix=".toml")
        with os.fdopen(fd, "w") as f:
            f.write('[sandbox]\nnetwork = "nftables"\n')
        self.addCleanup(os.unlink, path)
        return ("--config", path)

    def setUp(self):
        if self._testMethodName not in NETWORK_TESTS:
            self.skipTest("not a network attack: test_attacks.py runs it")
        super().setUp()

    def test_doctor_names_nftables(self):
        self.require("net connect4")
        rows = {r["name"]: r for r in self.d.cli_json("doctor", "--json", check=False)["mechanisms"]}
        self.assertTrue(rows["network policy"]["enforced"], rows["network policy"])
        self.assertIn("nftables", rows["network policy"]["detail"])
        for name in ("net bind4", "net bind6"):
            self.assertFalse(rows[name]["enforced"], rows[name])
            self.assertIn("not bind()", rows[name]["detail"])


if __name__ == "__main__":
    unittest.main()
