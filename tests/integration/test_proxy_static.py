"""Static upstream lists ([[proxy.upstreams]] in the config) through the whole
daemon, in front of real backends no one here wrote (python3 -m http.server):
requests share round-robin across two servers, a dead server is ejected (its
requests go to the live one, none fails), a prefix is stripped, access rules
apply, and a config with a bad or duplicate upstream is refused naming the
file and line.
"""

import os
import socket
import subprocess
import sys
import time
import unittest

from harness import BIN, Daemon, DaemonTestCase, HarnessError, pick_port_range, port_is_free
from test_proxy import request, write_config


def free_port():
    """A loopback port free right now, away from the daemon's instance ranges."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port_is_free(port):
            return port
    raise HarnessError("no free port")


def wait_listening(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise HarnessError("nothing listens on %d after %.0f s" % (port, timeout))


class StaticUpstreams(DaemonTestCase):
    def setUp(self):
        # The daemon starts first (it owns the temp home); the routes come
        # from the config, so the servers' ports are chosen before it starts.
        self.ports = [free_port(), free_port()]
        # One loop: balancing state is per loop (as nginx's is per worker), so
        # strict alternation is only observable through one.
        config = write_config(self, """[proxy]
threads = 1
max_client_connections = 1000

[[proxy.upstreams]]
name = "pair"
route = "/"
servers = ["127.0.0.1:%d", "127.0.0.1:%d"]
balance = "round-robin"

[[proxy.upstreams]]
route = "stripped.test/api/"
servers = ["127.0.0.1:%d"]
strip_prefix = true

[[proxy.upstreams]]
route = "private.test/"
servers = ["127.0.0.1:%d"]
access = ["deny 127.0.0.0/8"]
""" % (self.ports[0], self.ports[1], self.ports[0], self.ports[0]))
        self.d = Daemon(extra_args=["--config", config])
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def serve(self, name, port):
        root = os.path.join(self.d.home, "www-" + name)
        os.makedirs(root)
        with open(os.path.join(root, "who"), "w") as f:
            f.write(name)
        proc = self.d.spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", root, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port)
        return proc

    def who(self, host="app.test", path="/who"):
        status, _, body = request(self.d, "GET", path, headers={"Host": host})
        return status, body.decode(errors="replace")

    def test_round_robin_across_two_servers_then_a_dead_one_is_ejected(self):
        self.serve("a", self.ports[0])
        b = self.serve("b", self.ports[1])
        answers = [self.who() for _ in range(10)]
        self.assertEqual({s for s, _ in answers}, {200}, answers)
        names = [n for _, n in answers]
        self.assertEqual(names.count("a"), 5, names)
        self.assertEqual(names.count("b"), 5, names)
        self.assertTrue(all(names[i] != names[i + 1] for i in range(9)), names)

        b.kill()
        b.wait(10)
        # Every request still succeeds: a refused connect ejects "b" and the
        # request goes to "a"; while ejected, "b" is not tried at all.
        answers = [self.who() for _ in range(10)]
        self.assertEqual(answers, [(200, "a")] * 10)

    def test_prefix_strip_and_access_rules(self):
        self.serve("a", self.ports[0])
        self.assertEqual(self.who("stripped.test", "/api/who"), (200, "a"))
        status, body = self.who("private.test", "/who")
        self.assertEqual(status, 403, body)

    def test_a_dead_pair_is_a_502_naming_the_upstream(self):
        status, body = self.who()
        self.assertEqual(status, 502, body)
        self.assertIn("upstream pair", body)

    def test_an_instance_cannot_take_a_static_route(self):
        d = self.d
        body = {"name": "squat", "command": d.server_program(), "route": "stripped.test/api/", "start": False}
        status, answer = d.api("POST", "/api/v1/instances", body)
        self.assertEqual(status, 409, answer)
        self.assertIn("stripped.test/api/", answer["error"]["message"])
        # A route nested below it is another route: fine.
        body.update(name="nested", route="stripped.test/api/v2/")
        status, answer = d.api("POST", "/api/v1/instances", body)
        self.assertEqual(status, 201, answer)
        # Moving an instance onto it is refused the same way.
        status, answer = d.api("PATCH", "/api/v1/instances/nested", {"route": "stripped.test/api/"})
        self.assertEqual(status, 409, answer)


class BadStaticConfig(unittest.TestCase):
    def refused(self, text):
        path = write_config(self, text)
        lo, hi = pick_port_range(2)
        data = os.path.join(os.path.dirname(path), "data")
        r = subprocess.run([BIN, "serve", "--config", path, "--data-dir", data,
                            "--api-listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
                            "--port-range", "%d-%d" % (lo, hi)],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        return path, r.stderr

    def test_duplicate_route_names_both_places(self):
        path, err = self.refused('[[proxy.upstreams]]\nroute = "/x/"\nservers = ["127.0.0.1:9"]\n'
                                 '[[proxy.upstreams]]\nroute = "/x/"\nservers = ["127.0.0.1:10"]\n')
        self.assertIn("%s:4:1" % path, err)
        self.assertIn("%s:1:1" % path, err)

    def test_a_name_instead_of_an_address(self):
        path, err = self.refused('[[proxy.upstreams]]\nroute = "/x/"\nservers = ["localhost:9000"]\n')
        self.assertIn("%s:1:1" % path, err)
        self.assertIn("localhost:9000", err)


if __name__ == "__main__":
    unittest.main()
