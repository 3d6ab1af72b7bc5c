"""Attack tests on the API's own resources (issue 23): each test is an abuse
tried the way an attacker would, with a hosting account's own token (a real
Unix user made with useradd) or as an anonymous TCP client on loopback, and
asserts that it fails: quotas an account cannot lift, requests that cannot
make the daemon hold bodies or connections, log follows that are capped and
bound to the instance followed, an audit log a request cannot bloat, program
output that cannot break the listing or drive the admin's terminal, and
token guesses that are slowed down and then refused.

Each test runs its own daemon (the sign-in throttle and the connection caps
are per daemon). Creates and removes its own Unix users (root only)."""

import http.client
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import time
import unittest

from harness import BIN, CLI_TIMEOUT, Daemon, DaemonTestCase, HarnessError
from test_attacks import TAG, make_user, remove_user

SLEEPER_PY = """#!/usr/bin/python3
import sys, time
print(sys.argv[1], flush=True)
time.sleep(3600)
"""

# Not UTF-8, and a terminal escape sequence that would fake a status line.
NASTY = b"\xff\xfe boom \x1b[31mstate: running\x1b[0m\n"
NASTY_PY = """#!/usr/bin/python3
import os, sys
sys.stdout.buffer.write(%r)
sys.stdout.flush()
os._exit(1)
""" % NASTY


# --------------------------------------------------------------------------
# Raw HTTP / WebSocket on the TCP API
# --------------------------------------------------------------------------

def upgrade_head(path, token):
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Authorization: Bearer %s\r\n\r\n" % (path, token)).encode()


def read_head(sock, timeout=10.0):
    """Reads an HTTP answer's head: (status, head bytes, bytes after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise HarnessError("no HTTP answer, got %r" % data[:200])
    return int(head.split(b" ", 2)[1]), head, rest


def ws_open(d, path, token):
    """A WebSocket upgrade for `path`, kept open: (status, socket, bytes after the head)."""
    s = socket.create_connection(d.api_addr, timeout=10)
    s.sendall(upgrade_head(path, token))
    status, _, rest = read_head(s)
    return status, s, rest


class WsReader:
    """The server's frames on an open log follow (unmasked, as a server sends)."""

    def __init__(self, sock, rest=b""):
        self.sock, self.buf, self.raw = sock, rest, rest
        self.data, self.closed = b"", None   # payload so far; "close frame" / "eof"

    def _frames(self):
        while len(self.buf) >= 2:
            op, n, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
            if n == 126:
                n, at = int.from_bytes(self.buf[2:4], "big"), 4
            elif n == 127:
                n, at = int.from_bytes(self.buf[2:10], "big"), 10
            if self.buf[1] & 0x80:
                at += 4   # a masked frame: servers do not send them, the raw bytes are checked anyway
            if len(self.buf) < at + n:
                return
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            if op == 0x8:
                self.closed = "close frame"
                return
            if op in (0x0, 0x1, 0x2):
                self.data += payload

    def read_until(self, pred, timeout):
        """Reads until pred(self) or the stream ends; False if the deadline passed first."""
        deadline = time.monotonic() + timeout
        while not pred(self) and self.closed is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return False
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = "eof"
                break
            self.raw += chunk
            self.buf += chunk
            self._frames()
        return pred(self) or self.closed is not None


def closed_by_server(sock, timeout):
    """True when the server closes `sock` (EOF or reset) within `timeout`, without answering."""
    if not select.select([sock], [], [], timeout)[0]:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def raw_get(d, path, token):
    """GET on the TCP API: (status, body bytes as sent, not decoded)."""
    conn = http.client.HTTPConnection(*d.api_addr, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def cli_bytes(d, *args):
    """The CLI with its stdout as bytes (harness cli() decodes strictly)."""
    return subprocess.run([BIN, "--data-dir", d.data_dir] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, env=d.child_env(), cwd=d.home, timeout=CLI_TIMEOUT)


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("useradd"),
                     "needs root and useradd to make the accounts' Unix users")
class ApiAttackTest(DaemonTestCase):

    def setUp(self):
        self.d = Daemon(port_count=24)   # 21 instances in test_instance_count_cap
        self.d.__enter__()
        self.addCleanup(self.d.__exit__, None, None, None)

    def account(self, short):
        """A new account (its own Unix user, no quotas named): (user, token)."""
        name = "hvy-%s-%s" % (short, TAG)
        remove_user(name)
        self.addCleanup(remove_user, name)   # runs after the daemon's cleanup (LIFO)
        user = make_user(name)
        out = self.d.cli_json("account", "add", short, "--user", name, "--json")
        return user, out["token"]

    def put_program(self, user, name, text):
        path = os.path.join(user.pw_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        os.chown(path, user.pw_uid, user.pw_gid)
        return path

    def create(self, token, body, wait=True):
        status, obj = self.d.api("POST", "/api/v1/instances" + ("?wait=1" if wait else ""), body, token=token)
        self.assertEqual(status, 201, obj)
        return obj

    def sleeper(self, user, token, name, word):
        """A running instance of the account that prints `word` and sleeps."""
        prog = self.put_program(user, name + ".py", SLEEPER_PY)
        obj = self.create(token, {"name": name, "command": prog, "args": [word], "ready": "start_secs",
                                  "start_secs": 0, "restart": "never"})
        self.assertEqual(obj["state"], "running", obj)
        return obj

    def wait_log_has(self, name, text, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            out = self.d.cli("logs", name, check=False).stdout
            if text in out:
                return out
            if time.monotonic() >= deadline:
                raise HarnessError("%r not in the log of %s within %.0f s: %r" % (text, name, timeout, out))
            time.sleep(0.05)

    # ---- quotas ------------------------------------------------------------

    def test_instance_caps_cannot_be_edited_to_unlimited(self):
        """issue 23 item 2: an account added without limits gets default
        quotas, and an instance edited to procs 0 / cpu 0 ("no limit") gets
        the account's caps back, never unlimited; no memory named = 256M."""
        user, token = self.account("quota")
        status, acct = self.d.api("GET", "/api/v1/accounts/quota")
        self.assertEqual(status, 200, acct)
        self.assertEqual({k: acct.get(k) for k in ("max_instances", "max_memory", "max_cpu", "max_procs",
                                                     "max_open_files")},
                         {"max_instances": 20, "max_memory": 4294967296, "max_cpu": 100, "max_procs": 128,
                          "max_open_files": 4096}, acct)
        status, acct = self.d.api("PATCH", "/api/v1/accounts/quota",
                                  {"max_procs": 50, "max_cpu": 50, "max_memory": "512M"})
        self.assertEqual(status, 200, acct)
        prog = self.put_program(user, "idle.py", SLEEPER_PY)
        obj = self.create(token, {"name": "capped", "command": prog, "start": False, "procs": 10, "cpu": 10})
        self.assertEqual((obj["procs"], obj["cpu"], obj["memory"]), (10, 10, 268435456), obj)
        status, obj = self.d.api("PATCH", "/api/v1/instances/capped", {"procs": 0, "cpu": 0}, token=token)
        self.assertEqual(status, 200, obj)
        self.assertEqual((obj["procs"], obj["cpu"]), (50, 50), obj)
        self.assertEqual((self.d.get("capped")["procs"], self.d.get("capped")["cpu"]), (50, 50))

    def test_tiny_memory_and_instance_count_cap(self):
        """issue 23 item 8: a token memory limit (1K) is refused as too
        small, and a 21st instance of a default-limited account is refused
        (409 exhausted) rather than holding another port."""
        user, token = self.account("many")
        prog = self.put_program(user, "idle.py", SLEEPER_PY)
        self.assertApiError(self.d.api("POST", "/api/v1/instances", {"name": "tiny", "command": prog,
                                                                      "memory": "1K", "start": False},
                                       token=token), 400, "invalid_argument", mentions=["too small"])
        for i in range(20):
            self.create(token, {"name": "n%d" % i, "command": prog, "memory": "16M", "start": False}, wait=False)
        self.assertApiError(self.d.api("POST", "/api/v1/instances", {"name": "n20", "command": prog,
                                                                      "memory": "16M", "start": False},
                                       token=token), 409, "exhausted")
        self.assertEqual(len(self.d.ls()), 20)

    # ---- connections and requests ---------------------------------------------

    def test_anonymous_big_body_is_refused_on_the_head(self):
        """issue 23 item 4 (a): an anonymous client announcing a 900 KB body
        gets 401 before it sends a byte of it, and the connection is closed."""
        with socket.create_connection(self.d.api_addr, timeout=5) as s:
            s.sendall(b"POST /api/v1/instances HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 900000\r\n\r\n")
            status, head, rest = read_head(s, timeout=5)
            self.assertEqual(status, 401, head)
            got = rest
            try:
                while True:   # the rest of the answer, then EOF
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except TimeoutError:
                self.fail("the connection was still open 5 s after the 401: %r" % (head + got))
            self.assertIn(b"unauthorized", got)

    def test_idle_connections_are_capped_per_client(self):
        """issue 23 item 4 (b): 40 idle TCP connections from one address hold
        at most 32 slots (the rest are closed unanswered), and the admin CLI
        on the unix socket keeps working; closing them frees the slots."""
        socks = [socket.create_connection(self.d.api_addr, timeout=5) for _ in range(40)]
        try:
            deadline, closed = time.monotonic() + 2.0, set()
            while time.monotonic() < deadline and len(closed) < len(socks):
                ready, _, _ = select.select([s for s in socks if s not in closed], [], [],
                                            max(0.0, deadline - time.monotonic()))
                for s in ready:
                    if closed_by_server(s, 0):
                        closed.add(s)
            self.assertGreaterEqual(len(closed), 8, "%d of 40 idle connections were held open"
                                    % (40 - len(closed)))
            self.assertEqual(self.d.cli("ls").returncode, 0)
            with socket.create_connection(self.d.api_addr, timeout=5) as s:   # answered or refused, never hung
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                try:
                    s.recv(4096)
                except ConnectionResetError:
                    pass
        finally:
            for s in socks:
                s.close()
        deadline = time.monotonic() + 5.0
        while True:
            try:
                if self.d.api("GET", "/api/v1/instances", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, "the API stayed refused after the idle connections closed")
            time.sleep(0.05)

    def test_silent_connection_is_dropped(self):
        """issue 23 item 4 (c): a connection that never sends a request is
        closed by the server (first-request timeout 30 s)."""
        with socket.create_connection(self.d.api_addr, timeout=5) as s:
            t0 = time.monotonic()
            self.assertTrue(closed_by_server(s, 35.0), "a silent connection was still open after 35 s")
            self.assertLess(time.monotonic() - t0, 35.0)

    # ---- log follows --------------------------------------------------------

    def test_log_follows_are_capped_per_account(self):
        """issue 23 item 5: an account holds at most 8 log-follow WebSockets;
        the 9th upgrade is answered 429, and a freed slot can be used again."""
        user, token = self.account("follow")
        self.sleeper(user, token, "tailed", "hello")
        path = "/api/v1/instances/tailed/logs"
        held = []
        try:
            for i in range(8):
                status, s, _ = ws_open(self.d, path, token)
                held.append(s)
                self.assertEqual(status, 101, "follow %d" % (i + 1))
            status, s, _ = ws_open(self.d, path, token)
            s.close()
            self.assertEqual(status, 429, "the 9th follow of one account")
            held.pop().close()
            deadline = time.monotonic() + 5.0
            while True:
                status, s, _ = ws_open(self.d, path, token)
                held.append(s)
                if status == 101:
                    break
                held.pop().close()
                self.assertLess(time.monotonic(), deadline, "a closed follow's slot was not freed (%d)" % status)
                time.sleep(0.05)
        finally:
            for s in held:
                s.close()

    def test_follow_ends_with_the_deleted_instance(self):
        """issue 23 item 9: A follows its instance race1, deletes it, and B at
        once creates its own race1 printing B-SECRET: A's stream ends within
        10 s of the delete and never carries B's output."""
        a_user, a_token = self.account("racea")
        b_user, b_token = self.account("raceb")
        self.sleeper(a_user, a_token, "race1", "A-HELLO")
        b_prog = self.put_program(b_user, "race1.py", SLEEPER_PY)
        status, s, rest = ws_open(self.d, "/api/v1/instances/race1/logs", a_token)
        self.addCleanup(s.close)
        self.assertEqual(status, 101)
        ws = WsReader(s, rest)
        ws.read_until(lambda w: b"A-HELLO" in w.data, 10.0)
        self.assertIn(b"A-HELLO", ws.data, "A's follow did not show A's output (ended: %s)" % ws.closed)
        status, body = self.d.api("DELETE", "/api/v1/instances/race1", token=a_token)
        self.assertEqual(status, 200, body)
        t0 = time.monotonic()
        self.create(b_token, {"name": "race1", "command": b_prog, "args": ["B-SECRET"], "ready": "start_secs",
                              "start_secs": 0, "restart": "never"}, wait=False)
        self.wait_log_has("race1", "B-SECRET")
        ended = ws.read_until(lambda w: False, max(0.5, 10.0 - (time.monotonic() - t0)))
        self.assertTrue(ended, "A's follow of the deleted race1 was still open 10 s after the delete")
        self.assertNotIn(b"B-SECRET", ws.raw, "A's follow carried the output of B's new race1")
        self.assertEqual(self.d.get("race1")["account"], "raceb")

    # ---- audit log ------------------------------------------------------------

    def test_audit_log_line_is_bounded(self):
        """issue 23 item 6: a refused create with a 900 KB command path adds
        a bounded line (< 8 KB) to DATA_DIR/audit.log, not the whole path."""
        audit = os.path.join(self.d.data_dir, "audit.log")

        def size():
            return os.path.getsize(audit) if os.path.exists(audit) else 0

        before = size()
        status, body = self.d.api("POST", "/api/v1/instances", {"name": "huge", "command": "/" + "a" * 900_000})
        self.assertIn(status, (400, 413), str(body)[:300])
        grown = size() - before
        self.assertLess(grown, 8192, "the audit log grew by %d bytes for one refused create" % grown)
        self.assertGreater(grown, 0, "the refused create was not recorded in the audit log")
        with open(audit, "rb") as f:
            last = json.loads(f.read().splitlines()[-1])
        self.assertIs(last.get("ok"), False, last)

    # ---- program output -------------------------------------------------------

    def test_non_utf8_output_cannot_break_listing_or_terminal(self):
        """issue 23 item 7: a program writing bytes that are not UTF-8 and an
        escape sequence faking "state: running": `ls --json` and GET
        /api/v1/instances stay valid JSON (U+FFFD), and `status` shows the
        escape as text, never as an ESC byte."""
        prog = self.d.write_program("nasty.py", NASTY_PY)
        cp = cli_bytes(self.d, "create", "nasty", "--command", prog, "--restart", "never", "--no-wait")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.d.wait_state("nasty", "exited", timeout=15, pred=lambda o: o["last_output"])
        cp = cli_bytes(self.d, "ls", "--json")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual([i["name"] for i in json.loads(cp.stdout)], ["nasty"])
        status, body = raw_get(self.d, "/api/v1/instances", self.d.token)
        self.assertEqual(status, 200, body[:300])
        last = json.loads(body)[0]["last_output"]   # bytes: a strict UTF-8 parse
        self.assertIn("\ufffd", last)
        self.assertIn("boom", last)
        cp = cli_bytes(self.d, "status", "nasty")
        self.assertEqual(cp.returncode, 0, cp.stderr)
        out = cp.stdout.decode("utf-8")   # strict: no raw 0xff
        self.assertNotIn("\x1b", out)
        self.assertIn("\\x1b", out)
        states = [l.split(None, 1)[1] for l in out.splitlines() if l.startswith("state:")]
        self.assertEqual(states, ["exited"], out)

    # ---- sign-in ----------------------------------------------------------------

    def test_token_guessing_is_slowed_then_refused(self):
        """issue 23 item 13: wrong Bearer tokens from one address are each
        answered 401 after a pause, logged as failed sign-ins, and by the
        21st guess refused with 429; the admin CLI (unix socket) still works."""
        answers = []
        for _ in range(25):
            t0 = time.monotonic()
            status, _ = self.d.api("GET", "/api/v1/instances", token=secrets.token_hex(32), timeout=10)
            answers.append((status, time.monotonic() - t0))
        statuses = [a[0] for a in answers]
        self.assertEqual(statuses[0], 401, statuses)
        self.assertGreaterEqual(answers[0][1], 0.3, "a wrong token was answered at once")
        self.assertIn(429, statuses[:21], statuses)
        first = statuses.index(429)
        self.assertEqual(statuses[:first], [401] * first, statuses)
        self.assertEqual(statuses[first:], [429] * (25 - first), statuses)
        self.assertIn("failed sign-in", self.d.stderr_text())
        self.assertEqual(self.d.cli("ls").returncode, 0)


if __name__ == "__main__":
    unittest.main()
