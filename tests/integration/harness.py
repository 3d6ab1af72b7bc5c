"""Black-box harness for hostvisor's integration tests.

Starts the real binary (env HOSTVISOR_BIN, set by ctest) on loopback with a
temp data dir, drives it through its CLI and its TCP API, and cleans up every
process a test created, whatever happened.

Waiting is done on events wherever there is one: the daemon's `ready:` line on
stderr, a FIFO the test programs write to, a socket connect. Where there is no
event (an instance's state inside the daemon) a bounded loop of short polls
with a deadline is used.

Python 3 standard library only.
"""

import atexit
import faulthandler
import http.client
import json
import os
import pwd
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.environ.get("HOSTVISOR_BIN") or os.path.normpath(
    os.path.join(HERE, "..", "..", "build", "hostvisor"))

READY_TIMEOUT = 15.0
CLI_TIMEOUT = 30.0
API_TIMEOUT = 35.0       # ?wait=1 may hold an answer for up to 30 s
STOP_TIMEOUT = 20.0

# Every documented field of an instance object (docs/api.md, "Instance object").
INSTANCE_FIELDS = {
    "name", "account", "command", "args", "env", "cwd", "route", "restart",
    "autostart", "port", "state", "pid", "restarts", "uptime", "started_at",
    "exit_code", "exit_signal", "reason", "last_output", "start_secs", "ready", "stop_signal",
    "stop_grace_ms", "memory", "cpu", "procs", "created_at",
}
STATES = {"stopped", "starting", "running", "backoff", "stopping", "exited", "fatal"}


class HarnessError(AssertionError):
    """A wait or a daemon start that did not happen in time (a test failure)."""


# --------------------------------------------------------------------------
# Watchdog: every wait is bounded, but should a test still hang, clean up
# before ctest's TIMEOUT (240 s) kills this process and orphans a daemon and
# its instances. SIGTERM/SIGINT clean up too.
# --------------------------------------------------------------------------

_LIVE = set()            # Daemons not yet cleaned up
_LIVE_LOCK = threading.Lock()
_DYING = threading.Event()   # set by the watchdog: no new temp dir or daemon
BUDGET = float(os.environ.get("HV_TEST_BUDGET", "225"))


def _guard():
    """Called with _LIVE_LOCK held before making a temp dir or a process:
    once the watchdog fires, the test thread stops here for good."""
    if _DYING.is_set():
        _LIVE_LOCK.release()
        threading.Event().wait()


def _cleanup_all():
    with _LIVE_LOCK:
        _DYING.set()
        live = list(_LIVE)
    for d in live:
        try:
            d.cleanup()
        except Exception as e:  # keep cleaning the others
            sys.stderr.write("harness: cleanup failed: %r\n" % (e,))


def _watchdog():
    sys.stderr.write("harness: the file ran over its %.0f s budget; tracebacks:\n" % BUDGET)
    faulthandler.dump_traceback(all_threads=True)
    _cleanup_all()
    os._exit(1)


def _on_signal(signum, _frame):
    # Cleanup runs in a thread: this handler may have interrupted the test
    # thread while it held _LIVE_LOCK.
    cleaner = threading.Thread(target=_cleanup_all, daemon=True)
    cleaner.start()
    cleaner.join(60)
    os._exit(128 + signum)


_timer = threading.Timer(BUDGET, _watchdog)
_timer.daemon = True
_timer.start()
atexit.register(_cleanup_all)
if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

def port_is_free(port, host="127.0.0.1"):
    """True when nothing listens on host:port (SO_REUSEADDR, so a TIME_WAIT
    left by an earlier connection does not count as "in use")."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _candidate_base_ports(size):
    """Bases of port ranges inside 30000-59999, outside the kernel's ephemeral
    range when possible (so the daemon's own port-0 listeners and our client
    sockets never land in a test's range). The order starts at a point derived
    from the pid, so parallel ctest runs pick different ranges."""
    lo, hi = 30000, 59999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo, _ = (int(x) for x in f.read().split())
        if eph_lo - 1 - lo >= 500:
            hi = eph_lo - 1
    except (OSError, ValueError):
        pass
    step = max(size, 10)
    slots = (hi - lo + 1) // step
    start = (os.getpid() * 7919 + int(time.monotonic_ns() // 1000) % 997) % slots
    for i in range(slots):
        yield lo + ((start + i) % slots) * step


def pick_port_range(size=10):
    """A range of `size` ports, all free right now."""
    for base in _candidate_base_ports(size):
        if all(port_is_free(p) for p in range(base, base + size)):
            return base, base + size - 1
    raise HarnessError("no free port range of %d ports in 30000-59999" % size)


def connect(port, timeout=10.0):
    """Connects to 127.0.0.1:port; the instance's port must already accept
    (callers wait for the program's `listening` event first)."""
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def ask(port, line="info", timeout=10.0):
    """Sends one command line to a test program (see SERVER_PY) and returns
    its one-line answer, parsed as JSON."""
    with connect(port, timeout) as s:
        s.sendall(line.encode() + b"\n")
        f = s.makefile("rb")
        answer = f.readline()
    if not answer:
        raise HarnessError("no answer from port %d to %r" % (port, line))
    return json.loads(answer)


# --------------------------------------------------------------------------
# /proc helpers (the instances' processes, seen from the host)
# --------------------------------------------------------------------------

def _read(path, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def pid_alive(pid):
    stat_ = _read("/proc/%d/stat" % pid, "r")
    if stat_ is None:
        return False
    state = stat_.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def proc_session(pid):
    stat_ = _read("/proc/%d/stat" % pid, "r")
    if stat_ is None:
        return None
    return int(stat_.rsplit(")", 1)[1].split()[3])


def proc_pgid(pid):
    stat_ = _read("/proc/%d/stat" % pid, "r")
    if stat_ is None:
        return None
    return int(stat_.rsplit(")", 1)[1].split()[2])


def proc_cmdline(pid):
    raw = _read("/proc/%d/cmdline" % pid)
    return [] if not raw else [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def ns_pid(pid):
    """The pid as the process sees itself (last NSpid field; equal to pid
    when the process is not in its own pid namespace)."""
    status = _read("/proc/%d/status" % pid, "r") or ""
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    return pid


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def session_pids(sid):
    return [p for p in all_pids() if proc_session(p) == sid and pid_alive(p)]


def host_pid_of(api_pid, reported_pid):
    """The host pid of the process that reported `reported_pid` (its own
    getpid()) and lives in the session of `api_pid`, the pid the API shows.
    None if no such process: the answering program is not that instance."""
    sid = proc_session(api_pid)
    if sid is None:
        return None
    for p in session_pids(sid):
        if ns_pid(p) == reported_pid or p == reported_pid:
            return p
    return None


def pids_matching(needle):
    """Live pids whose command line contains `needle`."""
    out = []
    for p in all_pids():
        if p == os.getpid():
            continue
        if any(needle in a for a in proc_cmdline(p)) and pid_alive(p):
            out.append(p)
    return out


def wait_pid_gone(pid, timeout):
    """Waits until the process has exited (gone or a zombie): blocks on a
    pidfd (readable when the process exits), else polls /proc briefly."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        fd = None
    if fd is not None:
        try:
            ready, _, _ = select.select([fd], [], [], timeout)
            return bool(ready) or not pid_alive(pid)
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return not pid_alive(pid)


# --------------------------------------------------------------------------
# Event FIFO the test programs write JSON lines to
# --------------------------------------------------------------------------

class EventFifo:
    """A FIFO in the test home. Opened O_RDWR by the test so a program's
    open-for-write never blocks and reads never see a spurious EOF; `next()`
    blocks in select() until a line arrives or the deadline passes."""

    def __init__(self, directory, name="events.fifo"):
        self.path = os.path.join(directory, name)
        os.mkfifo(self.path, 0o600)
        self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self.buf = b""
        self.seen = []

    def next(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("no event on %s within %.0f s (seen so far: %r)"
                                   % (self.path, timeout, self.seen))
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        event = json.loads(line)
        self.seen.append(event)
        return event

    def next_matching(self, pred, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if pred(event):
                return event

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# --------------------------------------------------------------------------
# Test programs
# --------------------------------------------------------------------------

# A tiny TCP server: listens on 127.0.0.1:$PORT, then writes a `listening`
# event (its own pid, a random nonce, argv, PORT, HV_* env, cwd, the file
# descriptors it inherited) to the FIFO
# named by $HV_EVENTS. Each connection sends one command line and gets one
# JSON line back:
#   info        -> the same facts as the event
#   out TEXT    -> prints TEXT on stdout          -> {"ok": true}
#   err TEXT    -> prints TEXT on stderr          -> {"ok": true}
#   exit N      -> answers, then exits with code N
SERVER_PY = r'''#!/usr/bin/python3
import json, os, secrets, socket, sys

def open_fds():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass   # the directory listdir itself had open
    return out

inherited = open_fds()
port = int(os.environ["PORT"])
nonce = secrets.token_hex(8)
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
info = {"event": "listening", "nonce": nonce, "pid": os.getpid(),
        "port_env": os.environ.get("PORT"), "argv": sys.argv[1:],
        "env": {k: v for k, v in os.environ.items() if k.startswith("HV_")},
        "cwd": os.getcwd(), "fds": inherited}

def emit(obj):
    path = os.environ.get("HV_EVENTS")
    if path:
        with open(path, "w") as f:
            f.write(json.dumps(obj) + "\n")

emit(info)
while True:
    conn, _ = srv.accept()
    with conn:
        line = conn.makefile("rb").readline().decode().rstrip("\n")
        cmd, _, arg = line.partition(" ")
        reply, code = {"ok": True}, None
        if cmd in ("", "info"):
            reply = info
        elif cmd == "out":
            print(arg, flush=True)
        elif cmd == "err":
            print(arg, file=sys.stderr, flush=True)
        elif cmd == "exit":
            code = int(arg)
        else:
            reply = {"ok": False, "error": "unknown command " + cmd}
        conn.sendall((json.dumps(reply) + "\n").encode())
    if code is not None:
        os._exit(code)
'''

# Writes one `spawned` event (with its pid), says goodbye on stderr and exits
# with status 1 at once.
CRASHER_SH = '''#!/bin/sh
[ -n "$HV_EVENTS" ] && echo "{\\"event\\": \\"spawned\\", \\"pid\\": $$}" > "$HV_EVENTS"
echo "crasher-goodbye-line" >&2
exit 1
'''


def real_home():
    return pwd.getpwuid(os.getuid()).pw_dir


# --------------------------------------------------------------------------
# The daemon
# --------------------------------------------------------------------------

class Daemon:
    """One hostvisor daemon on loopback with its own temp data dir and its own
    temp home for test programs. A context manager: on exit it ALWAYS shuts
    the daemon down with its instances, kills whatever process of the test is
    left, and removes the temp dirs.

    `stop()`/`start()` (or `restart()`) run a new daemon process on the same
    data dir (persistence tests)."""

    def __init__(self, port_count=10, extra_args=()):
        self.port_range = pick_port_range(port_count)
        self.extra_args = list(extra_args)
        with _LIVE_LOCK:
            _guard()
            self.data_dir = tempfile.mkdtemp(prefix="hv-it-data-")
            # The account's home must contain the commands; the embedded
            # default account's home is the daemon user's home, so the test
            # home is made inside the real home and also given as $HOME.
            self.home = tempfile.mkdtemp(prefix="hv-it-home-", dir=real_home())
            os.chmod(self.home, 0o755)
            _LIVE.add(self)
        self.proc = None
        self.stderr_lines = []
        self._stderr_lock = threading.Lock()
        self._ready_seen = False
        self._stderr_thread = None
        self.api_addr = None
        self.info = None
        self.token = None
        self.seen_pids = set()
        self.fifos = []
        self.extra_procs = []

    # ---- lifecycle -------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def serve_argv(self):
        lo, hi = self.port_range
        return [BIN, "serve", "--data-dir", self.data_dir,
                "--api-listen", "127.0.0.1:0", "--proxy-listen", "127.0.0.1:0",
                "--port-range", "%d-%d" % (lo, hi)] + self.extra_args

    def child_env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("HOSTVISOR_")}
        env["HOME"] = self.home
        return env

    def start(self):
        """Starts the daemon and returns once it has logged `ready:` and
        daemon.json names its API address (deadline READY_TIMEOUT)."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("daemon already running")
        if self.proc is not None:
            self._close_stderr()
        # A daemon.json left by an earlier run on this data dir is replaced
        # before the new daemon logs `ready:`; its pid is checked below.
        daemon_json = os.path.join(self.data_dir, "daemon.json")
        ready = threading.Event()
        self._ready_seen = False
        with _LIVE_LOCK:
            _guard()
            self.proc = subprocess.Popen(
                self.serve_argv(), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env=self.child_env(), cwd=self.home)
        log = open(os.path.join(self.data_dir, "daemon.stderr"), "ab")
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, args=(self.proc, log, ready), daemon=True)
        self._stderr_thread.start()
        if not ready.wait(READY_TIMEOUT):
            raise HarnessError("daemon did not log 'ready:' within %.0f s; stderr:\n%s"
                               % (READY_TIMEOUT, self.stderr_text()))
        if not self._ready_seen:
            self.proc.wait(5)
            raise HarnessError("daemon exited (status %s) before 'ready:'; stderr:\n%s"
                               % (self.proc.returncode, self.stderr_text()))
        with open(daemon_json) as f:
            self.info = json.load(f)
        if self.info.get("pid") != self.proc.pid:
            raise HarnessError("daemon.json pid %r is not the daemon's pid %d"
                               % (self.info.get("pid"), self.proc.pid))
        host, _, port = self.info["api"].rpartition(":")
        self.api_addr = (host, int(port))
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            self.token = f.read().strip()
        return self

    def _drain_stderr(self, proc, log, ready):
        with log:
            for raw in proc.stderr:
                line = raw.decode(errors="replace").rstrip("\n")
                with self._stderr_lock:
                    self.stderr_lines.append(line)
                log.write(raw)
                log.flush()
                if "ready:" in line and not ready.is_set():
                    self._ready_seen = True
                    ready.set()
        ready.set()  # EOF: the daemon exited (or closed stderr)

    def stderr_text(self):
        with self._stderr_lock:
            return "\n".join(self.stderr_lines)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals the daemon and waits for it to exit; returns its status."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError("daemon did not exit within %.0f s of signal %d; stderr:\n%s"
                               % (timeout, sig, self.stderr_text()))
        self._close_stderr()
        return code

    def _close_stderr(self):
        """After the daemon exited: let the drain thread finish, close the pipe."""
        if self._stderr_thread:
            self._stderr_thread.join(5)
        if self.proc and self.proc.stderr and not self._stderr_thread.is_alive():
            self.proc.stderr.close()

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        """Always runs: shutdown with instances, then kill leftovers, then rm."""
        _LIVE.discard(self)
        try:
            if self.alive():
                try:
                    self.cli("shutdown", "--stop-instances", check=False, timeout=15)
                    self.proc.wait(STOP_TIMEOUT)
                except (subprocess.TimeoutExpired, OSError, HarnessError):
                    pass
            if self.alive():
                self.proc.kill()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc and not self.alive():
                self._close_stderr()
            for p in self.extra_procs:
                if p.poll() is None:
                    p.kill()
                    try:
                        p.wait(5)
                    except subprocess.TimeoutExpired:
                        pass
            self.kill_leftovers()
            self.remove_cgroups()
        finally:
            for fifo in self.fifos:
                fifo.close()
            shutil.rmtree(self.data_dir, ignore_errors=True)
            shutil.rmtree(self.home, ignore_errors=True)

    def remove_cgroups(self):
        """The daemon removes its cgroup subtree when it stops its instances;
        a daemon that died (or was killed by a test) leaves it: kill what is
        in it and remove it, deepest first, in every hierarchy."""
        root = os.path.basename((self.info or {}).get("cgroup", ""))
        if not root.startswith("hostvisor-"):
            return
        # The network policy's BPF pins (links and maps) of this daemon, and
        # its nftables table (the fallback), of the same name.
        shutil.rmtree("/sys/fs/bpf/" + root, ignore_errors=True)
        if shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin"):
            subprocess.run([shutil.which("nft", path="/usr/sbin:/sbin:/usr/bin:/bin"), "delete", "table", "inet", root],
                           capture_output=True, timeout=10)
        dirs = []
        for base, subdirs, _ in os.walk("/sys/fs/cgroup"):
            if root in base.split("/"):
                dirs.append(base)
            elif os.path.basename(base) != root:
                subdirs[:] = [d for d in subdirs if d == root or not d.startswith("hostvisor-")]
        for d in sorted(dirs, key=len, reverse=True):
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            except OSError:
                pass
        for d in sorted(dirs, key=len, reverse=True):
            for _ in range(100):  # bounded: killed processes leave within ms
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)

    def kill_leftovers(self):
        """Last resort: SIGKILL the process groups of every pid the API
        reported, and every process whose command line names a path inside
        this test's home or data dir."""
        victims = set()
        for pid in self.seen_pids:
            if pid_alive(pid):
                victims.add(pid)
        victims.update(pids_matching(self.home))
        victims.update(pids_matching(self.data_dir))
        victims.discard(os.getpid())
        for pid in victims:
            pgid = proc_pgid(pid)
            try:
                if pgid and pgid != os.getpgid(0) and pgid > 1:
                    os.killpg(pgid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in victims:
            wait_pid_gone(pid, 5)

    # ---- CLI -------------------------------------------------------------

    def cli(self, *args, env_extra=None, check=True, timeout=CLI_TIMEOUT, data_dir=True):
        """Runs `hostvisor --data-dir D ARGS...`; returns CompletedProcess with
        text stdout/stderr. check=True fails the test on a non-zero exit."""
        argv = [BIN] + (["--data-dir", self.data_dir] if data_dir else []) + list(args)
        env = self.child_env()
        if env_extra:
            env.update(env_extra)
        try:
            cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, env=env, timeout=timeout, cwd=self.home)
        except subprocess.TimeoutExpired as e:
            raise HarnessError("CLI %r timed out after %.0f s (stdout %r, stderr %r)"
                               % (args, timeout, e.stdout, e.stderr))
        if check and cp.returncode != 0:
            raise HarnessError("CLI %r exited %d\nstdout: %s\nstderr: %s"
                               % (args, cp.returncode, cp.stdout, cp.stderr))
        return cp

    def cli_json(self, *args, **kw):
        cp = self.cli(*args, **kw)
        try:
            obj = json.loads(cp.stdout)
        except ValueError:
            raise HarnessError("CLI %r did not print JSON: %r" % (args, cp.stdout))
        self._note_pids(obj)
        return obj

    def ls(self):
        return self.cli_json("ls", "--json")

    # ---- API -------------------------------------------------------------

    def api(self, method, path, body=None, token=..., raw=None, headers=None,
            timeout=API_TIMEOUT):
        """One request on the TCP API. token=... means the admin token,
        None means no Authorization header. `raw` (bytes/str) is sent as the
        body as is. Returns (status, parsed JSON or text)."""
        conn = http.client.HTTPConnection(*self.api_addr, timeout=timeout)
        hdrs = dict(headers or {})
        if token is ...:
            token = self.token
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        data = None
        if raw is not None:
            data = raw.encode() if isinstance(raw, str) else raw
            hdrs.setdefault("Content-Type", "application/json")
        elif body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
        finally:
            conn.close()
        text = payload.decode(errors="replace")
        parsed = text
        if "json" in ctype or text[:1] in ("{", "["):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
        self._note_pids(parsed)
        return resp.status, parsed

    def get(self, name):
        status, obj = self.api("GET", "/api/v1/instances/" + name)
        if status != 200:
            raise HarnessError("GET %s: %d %r" % (name, status, obj))
        return obj

    def _note_pids(self, obj):
        items = obj if isinstance(obj, list) else [obj]
        for it in items:
            if isinstance(it, dict) and isinstance(it.get("pid"), int) and it["pid"] > 1:
                self.seen_pids.add(it["pid"])

    def wait_state(self, name, states, timeout=30.0, pred=None, interval=0.05):
        """Polls GET until the instance's state is in `states` (and pred(obj),
        if given), with a deadline. Returns (object, states seen on the way)."""
        if isinstance(states, str):
            states = {states}
        deadline = time.monotonic() + timeout
        seen = []
        obj = None
        while True:
            obj = self.get(name)
            if not seen or seen[-1] != obj.get("state"):
                seen.append(obj.get("state"))
            if obj.get("state") in states and (pred is None or pred(obj)):
                return obj, seen
            if time.monotonic() >= deadline:
                raise HarnessError("%s did not reach %s within %.0f s; states seen %r; last %r"
                                   % (name, sorted(states), timeout, seen, obj))
            time.sleep(interval)

    # ---- test programs ---------------------------------------------------

    def write_program(self, name, text, mode=0o755):
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def server_program(self, name="srv.py"):
        path = os.path.join(self.home, name)
        if not os.path.exists(path):
            self.write_program(name, SERVER_PY)
        return path

    def events(self, name="events.fifo"):
        fifo = EventFifo(self.home, name)
        self.fifos.append(fifo)
        return fifo

    def spawn(self, argv, **kw):
        """Popen whose process is killed at cleanup."""
        with _LIVE_LOCK:
            _guard()
            p = subprocess.Popen(argv, env=self.child_env(), cwd=self.home, **kw)
            self.extra_procs.append(p)
        return p


def stable_view(instances):
    """What must not change when a request is rejected: the set of instances
    and their stored and running identity (volatile counters left out)."""
    keys = ("name", "account", "command", "args", "env", "cwd", "route", "restart",
            "autostart", "port", "state", "pid", "restarts")
    return sorted(([it.get(k) for k in keys] for it in instances), key=lambda r: r[0])


class DaemonTestCase(unittest.TestCase):
    """Common assertions."""

    maxDiff = None

    def assertApiError(self, result, status, code, mentions=(), any_of=()):
        got_status, body = result
        self.assertEqual(got_status, status, "body: %r" % (body,))
        self.assertIsInstance(body, dict, "error body is not a JSON object: %r" % (body,))
        self.assertIn("error", body, body)
        err = body["error"]
        self.assertEqual(err.get("code"), code, body)
        msg = err.get("message")
        self.assertIsInstance(msg, str, body)
        self.assertTrue(msg.strip(), "empty error message: %r" % (body,))
        for word in mentions:
            self.assertIn(word.lower(), msg.lower(),
                          "error message does not name %r: %r" % (word, msg))
        self.assertMentionsAny(msg, any_of)
        return err

    def assertMentionsAny(self, text, words):
        """`text` names at least one of `words` (case-insensitive)."""
        if words:
            self.assertTrue(any(w.lower() in text.lower() for w in words),
                            "%r names none of %r" % (text, list(words)))

    def assertCliError(self, cp, mentions=(), codes=(1,), any_of=()):
        """A CLI failure: exit status in `codes`, `hostvisor: error:` on
        stderr naming every word of `mentions` and one of `any_of`."""
        self.assertIn(cp.returncode, codes,
                      "exit %d; stdout %r; stderr %r" % (cp.returncode, cp.stdout, cp.stderr))
        self.assertTrue(cp.stderr.strip(), "no error on stderr (stdout %r)" % cp.stdout)
        if cp.returncode == 1:
            self.assertIn("hostvisor: error:", cp.stderr)
        for word in mentions:
            self.assertIn(word.lower(), cp.stderr.lower(),
                          "stderr does not name %r: %r" % (word, cp.stderr))
        self.assertMentionsAny(cp.stderr, any_of)

    def assertProgramIsInstance(self, obj, answer):
        """The program that answered (its own getpid() in `answer`) is the
        process the API reports for the instance (or runs in its session,
        e.g. under a tiny init in a pid namespace)."""
        self.assertIsInstance(obj.get("pid"), int, obj)
        self.assertTrue(pid_alive(obj["pid"]), "API pid %r is not alive" % obj["pid"])
        host = host_pid_of(obj["pid"], answer["pid"])
        self.assertIsNotNone(host, "the program on port %s (pid %s as it sees itself) is not "
                             "in the session of the API's pid %s"
                             % (obj.get("port"), answer["pid"], obj["pid"]))
        return host
