"""Accounts (issue 5): an account is a Unix user with a token and quotas; its
programs run as that user; one account can neither see nor touch another's
instances or logs — through the API, the CLI with a token, or the unix socket
as its own uid; every change is in the audit log. Creates and removes its own
Unix users (root only)."""

import json
import os
import pwd
import shutil
import subprocess
import unittest

from harness import Daemon, DaemonTestCase


def make_user(name):
    home = "/home/" + name
    subprocess.run(["useradd", "--create-home", "--home-dir", home, "--shell", "/bin/sh", name],
                   check=True, capture_output=True)
    return pwd.getpwnam(name)


def remove_user(name):
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    shutil.rmtree("/home/" + name, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("useradd"), "needs root and useradd")
class AccountsTest(DaemonTestCase):

    def setUp(self):
        tag = "%x" % (os.getpid() & 0xfffff)
        self.ann_user, self.bob_user = "hvt-ann-" + tag, "hvt-bob-" + tag
        for u in (self.ann_user, self.bob_user):
            remove_user(u)
            self.addCleanup(remove_user, u)
        self.ann, self.bob = make_user(self.ann_user), make_user(self.bob_user)
        self.d = Daemon()
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)
        self.ann_token = self.add_account("ann", self.ann_user)
        self.bob_token = self.add_account("bob", self.bob_user, "--max-instances", "1")

    def add_account(self, name, user, *extra):
        out = self.d.cli_json("account", "add", name, "--user", user, "--json", *extra)
        self.assertEqual(out["account"]["home"], "/home/" + user)
        return out["token"]

    def program_in(self, user, name="srv.py"):
        path = os.path.join(user.pw_dir, name)
        with open(self.d.server_program()) as src, open(path, "w") as f:
            f.write(src.read())
        os.chmod(path, 0o755)
        os.chown(path, user.pw_uid, user.pw_gid)
        return path

    def cli_as_token(self, token, *args):
        return self.d.cli(*args, env_extra={"HOSTVISOR_TOKEN": token}, check=False)

    def test_program_runs_as_the_account_user(self):
        obj = self.d.cli_json("create", "ann-web", "--account", "ann", "--command", self.program_in(self.ann),
                              "--json")
        self.assertEqual(obj["state"], "running", obj)
        with open("/proc/%d/status" % obj["pid"]) as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        self.assertEqual(int(uid_line.split()[1]), self.ann.pw_uid, uid_line)

    def test_one_account_cannot_see_or_touch_anothers_instance(self):
        self.d.cli("create", "ann-web", "--account", "ann", "--command", self.program_in(self.ann))
        for method, path in [("GET", "/api/v1/instances/ann-web"), ("POST", "/api/v1/instances/ann-web/stop"),
                             ("POST", "/api/v1/instances/ann-web/restart"), ("DELETE", "/api/v1/instances/ann-web"),
                             ("GET", "/api/v1/instances/ann-web/logs"), ("PATCH", "/api/v1/instances/ann-web")]:
            status, body = self.d.api(method, path, {} if method == "PATCH" else None, token=self.bob_token)
            self.assertEqual(status, 404, (method, path, body))
        status, listed = self.d.api("GET", "/api/v1/instances", token=self.bob_token)
        self.assertEqual((status, listed), (200, []))
        # The instance is untouched.
        self.assertEqual(self.d.get("ann-web")["state"], "running")
        # Through the CLI with bob's token.
        for args in (["status", "ann-web"], ["stop", "ann-web"], ["logs", "ann-web"], ["rm", "ann-web"],
                     ["logs", "ann-web", "-f"]):
            cp = self.cli_as_token(self.bob_token, *args)
            self.assertNotEqual(cp.returncode, 0, args)
            self.assertIn("no instance named 'ann-web'", cp.stderr, args)
        # Nor can bob create in ann's account, or manage accounts.
        status, body = self.d.api("POST", "/api/v1/instances", {"name": "x", "command": "/bin/true",
                                                                 "account": "ann"}, token=self.bob_token)
        self.assertEqual(status, 403, body)
        status, body = self.d.api("GET", "/api/v1/accounts", token=self.bob_token)
        self.assertEqual(status, 403, body)
        self.assertEqual(self.d.get("ann-web")["state"], "running")

    def test_unix_socket_caller_is_its_uid(self):
        self.d.cli("create", "ann-web", "--account", "ann", "--command", self.program_in(self.ann))
        bin_path = self.d.serve_argv()[0]

        def as_user(user, *args):
            return subprocess.run(["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
                                   "--clear-groups", bin_path, "--data-dir", self.d.data_dir] + list(args),
                                  capture_output=True, text=True, timeout=30,
                                  env={"PATH": "/usr/bin:/bin", "HOME": user.pw_dir})
        ann_ls = as_user(self.ann, "ls", "--json")
        self.assertEqual(ann_ls.returncode, 0, ann_ls.stderr)
        self.assertEqual([i["name"] for i in json.loads(ann_ls.stdout)], ["ann-web"])
        bob_ls = as_user(self.bob, "ls", "--json")
        self.assertEqual((bob_ls.returncode, json.loads(bob_ls.stdout)), (0, []), bob_ls.stderr)
        bob_stop = as_user(self.bob, "stop", "ann-web")
        self.assertNotEqual(bob_stop.returncode, 0)
        self.assertIn("no instance named 'ann-web'", bob_stop.stderr)

    def test_quotas_and_refusals(self):
        status, body = self.d.api("POST", "/api/v1/accounts", {"name": "rooty", "user": "root"})
        self.assertEqual(status, 400, body)
        self.assertIn("never run as root", body["error"]["message"])
        status, body = self.d.api("POST", "/api/v1/accounts", {"name": "ghost", "user": "no-such-user-hv"})
        self.assertEqual(status, 404, body)
        status, body = self.d.api("POST", "/api/v1/accounts", {"name": "ann", "user": self.ann_user})
        self.assertEqual(status, 409, body)
        # Egress entries are checked by the parser the network policy applies.
        # Host names are fine (resolved by the daemon); a malformed one is not.
        for entry in ("db_example.com:5432", "db.example.com", "[::1]/128:80", "10.0.0.0/33:1"):
            cp = self.d.cli("account", "set", "bob", "--egress", entry, check=False)
            self.assertNotEqual(cp.returncode, 0, entry)
            self.assertIn("egress entry '%s'" % entry, cp.stderr)
        self.d.cli("account", "set", "bob", "--egress", "db.example.com:5432")
        self.d.cli("account", "set", "bob", "--egress", "127.0.0.1/32:5432", "--egress", "[::1]:5432")
        # bob may have one instance.
        prog = self.program_in(self.bob)
        first = self.cli_as_token(self.bob_token, "create", "bob-1", "--command", prog)
        self.assertEqual(first.returncode, 0, first.stderr)
        second = self.cli_as_token(self.bob_token, "create", "bob-2", "--command", self.program_in(self.bob, "b.py"))
        self.assertNotEqual(second.returncode, 0)
        self.assertIn("limit of 1 instances", second.stderr)
        # Under a memory quota an instance without a limit gets 256M (or what
        # is left, if less), and the sum must fit.
        self.d.cli("account", "set", "ann", "--max-memory", "384M")
        too_big = self.d.api("POST", "/api/v1/instances", {"name": "ann-0", "account": "ann", "memory": "512M",
                                                           "command": self.program_in(self.ann)})
        self.assertEqual(too_big[0], 409, too_big)
        first = self.d.api("POST", "/api/v1/instances", {"name": "ann-1", "account": "ann", "start": False,
                                                         "command": self.program_in(self.ann)})
        self.assertEqual(first[0], 201, first)
        self.assertEqual(first[1]["memory"], 256 << 20)
        rest = self.d.api("POST", "/api/v1/instances", {"name": "ann-2", "account": "ann", "start": False,
                                                        "command": self.program_in(self.ann)})
        self.assertEqual(rest[0], 201, rest)
        self.assertEqual(rest[1]["memory"], 128 << 20)  # what was left
        none_left = self.d.api("POST", "/api/v1/instances", {"name": "ann-3", "account": "ann", "start": False,
                                                             "command": self.program_in(self.ann)})
        self.assertEqual(none_left[0], 409, none_left)
        self.assertIn("none of it is left", none_left[1]["error"]["message"])

    def test_tokens_rotate_and_changes_are_audited(self):
        new_token = self.d.cli("account", "token", "bob").stdout.strip()
        self.assertEqual(len(new_token), 64)
        status, _ = self.d.api("GET", "/api/v1/instances", token=self.bob_token)
        self.assertEqual(status, 401, "the old token still works")
        status, _ = self.d.api("GET", "/api/v1/instances", token=new_token)
        self.assertEqual(status, 200)
        self.d.api("POST", "/api/v1/instances/nope/stop", token=new_token)
        with open(os.path.join(self.d.data_dir, "audit.log")) as f:
            lines = [json.loads(line) for line in f]
        actions = [(e["action"], e["target"], e["ok"]) for e in lines]
        self.assertIn(("account.create", "ann", True), actions)
        self.assertIn(("account.token", "bob", True), actions)
        self.assertEqual(os.stat(os.path.join(self.d.data_dir, "audit.log")).st_mode & 0o777, 0o600)
        # Deleting an account with instances is refused; without, it works.
        self.d.cli("create", "ann-web", "--account", "ann", "--command", self.program_in(self.ann))
        cp = self.d.cli("account", "rm", "ann", check=False)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("still has 1 instance", cp.stderr)
        self.d.cli("rm", "ann-web")
        self.d.cli("account", "rm", "ann")
        names = [a["name"] for a in self.d.cli_json("account", "ls", "--json")]
        self.assertNotIn("ann", names)


if __name__ == "__main__":
    unittest.main()
