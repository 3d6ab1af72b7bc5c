#!/usr/bin/python3
"""Supervisor benchmark: hostvisor against supervisord, side by side, in one run.

Stdlib only. Everything lives in one temp dir under $HOME (hostvisor runs only commands
inside the account's home), every socket is a unix socket or loopback, every wait is
bounded, and every process started here (both daemons and all their children) is
killed on the way out, also after an error or Ctrl-C. See docs/benchmarks.md.
"""

import argparse
import datetime
import hashlib
import http.client
import json
import math
import os
import platform
import queue
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HOME = os.path.expanduser("~")
PREFIX = ".hv-bench-sup-"          # temp dirs: $HOME/.hv-bench-sup-<benchpid>-XXXX
TINY_ARG = "100000"                # the tiny program is a copy of sleep: `tiny 100000`
PORT_RANGE = "40000-41999"


class BenchError(Exception):
    pass


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# statistics

def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def summary(values):
    return {"n": len(values), "median": statistics.median(values) if values else float("nan"),
            "p95": pct(values, 95), "min": min(values) if values else float("nan"),
            "max": max(values) if values else float("nan"),
            "samples": [round(v, 7) for v in values]}


def aggregate(rounds):
    """One result from several rounds: sample sets pooled, other figures the median."""
    out = {}
    for key in rounds[0]:
        vals = [r[key] for r in rounds if r.get(key) is not None]
        if not vals:
            out[key] = None
        elif isinstance(vals[0], dict) and "samples" in vals[0]:
            out[key] = summary([x for v in vals for x in v["samples"]])
        elif isinstance(vals[0], dict):
            out[key] = {k: statistics.median(v[k] for v in vals) for k in vals[0]}
        elif isinstance(vals[0], (int, float)):
            out[key] = statistics.median(vals)
        else:
            out[key] = vals[0]
    return out


# ---------------------------------------------------------------------------
# processes: find, observe, clean up

def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pids_touching(prefix):
    """Processes with an argument inside `prefix` (daemons by their --data-dir/-c,
    the tiny program by its path)."""
    me = os.getpid()
    out = []
    for pid in all_pids():
        if pid == me:
            continue
        args = cmdline(pid)
        if args and any(a.startswith(prefix) for a in args):
            out.append(pid)
    return out


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def sweep(prefix, what="leftover"):
    """SIGKILL everything that touches `prefix` until nothing does (bounded)."""
    total = 0
    for _ in range(50):
        pids = pids_touching(prefix)
        if not pids:
            return total
        total += len(pids)
        kill_pids(pids)
        time.sleep(0.05)
    log(f"warning: {what} processes under {prefix} survived SIGKILL: {pids_touching(prefix)}")
    return total


def sweep_stale(bases=()):
    """Kill processes and remove dirs of earlier runs whose driver is gone."""
    pat = re.compile(r"/" + re.escape(PREFIX) + r"(\d+)-")
    owners = {}
    for pid in all_pids():
        for a in cmdline(pid) or []:
            m = pat.search(a)
            if m:
                owners.setdefault(int(m.group(1)), set()).add(pid)
    killed = 0
    for owner, pids in owners.items():
        if owner != os.getpid() and not os.path.exists(f"/proc/{owner}"):
            kill_pids(pids)
            killed += len(pids)
    for base in {HOME, *bases}:
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        for name in entries:
            m = re.match(re.escape(PREFIX) + r"(\d+)-", name)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                sweep(os.path.join(base, name) + "/", "stale")
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
    if killed:
        log(f"killed {killed} processes left by an earlier run")


def children(pid):
    out = set()
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.update(int(x) for x in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# The kernel's process-event connector (netlink NETLINK_CONNECTOR, cn_proc.h):
# one message per fork, exec and exit on the machine, to root only.
NETLINK_CONNECTOR, CN_IDX_PROC, PROC_CN_MCAST_LISTEN, PROC_EVENT_EXEC = 11, 1, 1, 2
SO_RCVBUFFORCE = 33


def open_exec_events():
    """A socket that receives every exec on the machine, or None (not root, no
    CONFIG_PROC_EVENTS)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
    except OSError:
        return None
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        sock.bind((0, CN_IDX_PROC))
        op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
        cn = struct.pack("=IIIIHH", CN_IDX_PROC, 1, 0, 0, len(op), 0) + op
        sock.sendto(struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn, (0, 0))  # NLMSG_DONE
        return sock
    except OSError:
        sock.close()
        return None


def exec_events(data):
    """(pid, CLOCK_MONOTONIC seconds) of each exec in one netlink datagram."""
    out, off = [], 0
    while off + 16 <= len(data):
        length = struct.unpack_from("=I", data, off)[0]
        if length < 16:
            break
        if length >= 16 + 20 + 24:
            what, _cpu, ts = struct.unpack_from("=IIQ", data, off + 36)
            if what == PROC_EVENT_EXEC:
                _pid, tgid = struct.unpack_from("=II", data, off + 52)
                out.append((tgid, ts / 1e9))
        off += (length + 3) & ~3
    return out


class ExecWatcher:
    """Counts the daemon's children that have exec'd the tiny program, from the
    kernel only (no RPC, so it does not load the daemon it watches). Made before
    the daemon starts, so that no exec goes unseen; attach() names the daemon.

    Event-driven where it can be: the process-event connector reports each exec
    (and when it happened), so watching a start costs a few syscalls per program.
    Polling /proc every 10 ms instead — the fallback without root — took ~5 % of
    the CPU of a cold start that needs all of it (perf -a, 2026-12-05: listing a
    thousand children is a walk of the kernel's child list per daemon thread),
    for both supervisors alike."""

    def __init__(self, tiny, daemon_pid=None):
        self.tiny = tiny
        self.daemon_pid = daemon_pid
        self.confirmed = set()
        self.events = open_exec_events()

    def attach(self, daemon_pid):
        self.daemon_pid = daemon_pid
        return self

    def close(self):
        if self.events is not None:
            self.events.close()
            self.events = None

    def poll(self):
        kids = children(self.daemon_pid)
        self.confirmed &= kids
        for k in kids - self.confirmed:
            if exe(k) == self.tiny:
                self.confirmed.add(k)
        return len(self.confirmed)

    def alive(self):
        try:
            with open(f"/proc/{self.daemon_pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except OSError:
            return False

    def wait_count(self, n, deadline, interval=0.01):
        """perf_counter() time at which the n-th program exec'd."""
        if self.events is None:
            return self._poll_count(n, deadline, interval)
        try:
            if self.poll() >= n:  # all before we looked (the events keep the rest)
                return time.perf_counter()
            while True:
                now = time.perf_counter()
                if now > deadline:
                    raise BenchError(f"only {len(self.confirmed)}/{n} programs exec'd before the deadline")
                # Every 10 ms, whatever arrived meanwhile: the events carry their
                # own times, and one wake-up per event (a fork, an exec and an exit
                # per program) cost more than the polling it replaces.
                ready, _, _ = select.select([self.events], [], [], min(1.0, deadline - now))
                if not ready:
                    if not self.alive():
                        raise BenchError(f"the daemon (pid {self.daemon_pid}) died; {len(self.confirmed)}/{n} exec'd")
                    continue
                while True:
                    try:
                        data = self.events.recv(1 << 16, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    except OSError as e:
                        if e.errno != 105:  # ENOBUFS: events were lost; count afresh from /proc
                            raise
                        if self.poll() >= n:
                            return time.perf_counter()
                        continue
                    for pid, at in exec_events(data):
                        if pid in self.confirmed or parent_of(pid) != self.daemon_pid or exe(pid) != self.tiny:
                            continue
                        self.confirmed.add(pid)
                        if len(self.confirmed) >= n:
                            return at  # CLOCK_MONOTONIC, as perf_counter() on Linux
                time.sleep(interval)
        finally:
            self.close()

    def _poll_count(self, n, deadline, interval):
        i = 0
        while True:
            if self.poll() >= n:
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise BenchError(f"only {len(self.confirmed)}/{n} programs exec'd before the deadline")
            i += 1
            if i % 100 == 0 and not self.alive():
                raise BenchError(f"the daemon (pid {self.daemon_pid}) died; {len(self.confirmed)}/{n} exec'd")
            time.sleep(interval)

    def wait_new(self, before, deadline):
        """First child not in `before` that has exec'd the tiny program."""
        while True:
            for k in children(self.daemon_pid) - before:
                if exe(k) == self.tiny:
                    return time.perf_counter(), k
            if time.perf_counter() > deadline:
                raise BenchError("no new process appeared before the deadline")
            time.sleep(0.0002)   # leave the CPUs to the daemon and its child


def rss(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0]) / 1024.0  # MiB
    return out


class FirstAnswer(threading.Thread):
    """Polls `call` every 5 ms from a thread until it succeeds: when a daemon's API
    first answers during a cold start."""

    def __init__(self, call, deadline):
        super().__init__(daemon=True)
        self.call, self.deadline, self.at = call, deadline, None

    def run(self):
        while time.perf_counter() < self.deadline:
            try:
                self.call()
                self.at = time.perf_counter()
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.005)


def fs_probe(directory, count=200):
    """Microseconds to create one empty file here (ext4 without a journal can be slow
    right after many deletions: see docs/benchmarks.md). The files stay until cleanup."""
    d = os.path.join(directory, "fsprobe")
    os.makedirs(d, exist_ok=True)
    t = time.perf_counter()
    for i in range(count):
        os.close(os.open(os.path.join(d, f"f{i}.log"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o640))
    return (time.perf_counter() - t) / count * 1e6


# ---------------------------------------------------------------------------
# HTTP over a unix socket

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def http_call(conn, method, path, body=None, headers=None):
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, data


# ---------------------------------------------------------------------------
# hostvisor

class Hostvisor:
    def __init__(self, binary, root, tiny, log_level):
        self.bin = binary
        self.dir = os.path.join(root, "hv")
        self.sock = os.path.join(self.dir, "api.sock")
        self.tiny = tiny
        self.log_level = log_level
        self.proc = None
        self.logfile = None
        self.log_path = os.path.join(root, "hv-daemon.log")

    def start(self, timeout):
        os.makedirs(self.dir, exist_ok=True)
        self.logfile = open(self.log_path, "ab")
        self.logfile.write(b"---- serve\n")
        self.logfile.flush()
        offset = self.logfile.tell()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.bin, "--data-dir", self.dir, "serve", "--api-listen", "127.0.0.1:0",
             "--proxy-listen", "127.0.0.1:0", "--port-range", PORT_RANGE,
             "--log-level", self.log_level],
            stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=self.logfile,
            start_new_session=True)
        DAEMONS.add(self.proc.pid)
        deadline = t0 + timeout
        while True:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                if b"ready:" in f.read():
                    break
            if self.proc.poll() is not None:
                raise BenchError(f"hostvisor exited with {self.proc.returncode}; see {self.log_path}")
            if time.perf_counter() > deadline:
                raise BenchError("hostvisor did not log ready: in time")
            time.sleep(0.002)
        return t0

    def conn(self):
        return UnixHTTPConnection(self.sock)

    def healthz(self):
        c = UnixHTTPConnection(self.sock, timeout=5)
        try:
            st, _ = http_call(c, "GET", "/healthz")
        finally:
            c.close()
        if st != 200:
            raise BenchError(f"/healthz: {st}")

    def list(self, conn=None):
        c = conn or self.conn()
        st, data = http_call(c, "GET", "/api/v1/instances")
        if conn is None:
            c.close()
        if st != 200:
            raise BenchError(f"GET /api/v1/instances: {st} {data[:200]!r}")
        return json.loads(data)

    def wait_all_running(self, n, deadline):
        """Returns the send time of the first poll that saw n running instances."""
        c = self.conn()
        try:
            while True:
                sent = time.perf_counter()
                items = self.list(c)
                up = sum(1 for i in items if i["state"] == "running" and i["pid"])
                if up >= n:
                    return sent, time.perf_counter()
                if time.perf_counter() > deadline:
                    states = {}
                    for i in items:
                        states[i["state"]] = states.get(i["state"], 0) + 1
                    raise BenchError(f"hostvisor: {up}/{n} running before the deadline: {states}")
                time.sleep(0.002)
        finally:
            c.close()

    def create_all(self, names, concurrency, deadline, memory=None):
        work = queue.Queue()
        for nm in names:
            work.put(nm)
        lat = []
        errors = []
        lock = threading.Lock()

        def worker():
            c = self.conn()
            mine = []
            try:
                while time.perf_counter() < deadline:
                    try:
                        nm = work.get_nowait()
                    except queue.Empty:
                        break
                    spec = {"name": nm, "command": self.tiny, "args": [TINY_ARG],
                            "restart": "always", "start_secs": 0}
                    if memory:
                        spec["memory"] = memory
                    body = json.dumps(spec)
                    t = time.perf_counter()
                    st, data = http_call(c, "POST", "/api/v1/instances", body)
                    mine.append(time.perf_counter() - t)
                    if st != 201:
                        with lock:
                            errors.append(f"{nm}: {st} {data[:300]!r}")
                        break
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))
            finally:
                c.close()
                with lock:
                    lat.extend(mine)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(1.0, deadline - time.perf_counter()))
        if errors:
            raise BenchError("create failed: " + "; ".join(errors[:3]))
        if len(lat) != len(names):
            raise BenchError(f"only {len(lat)}/{len(names)} creates finished in time")
        return lat

    def get(self, conn, name):
        st, data = http_call(conn, "GET", f"/api/v1/instances/{name}")
        if st != 200:
            raise BenchError(f"GET {name}: {st}")
        i = json.loads(data)
        return i["state"], i["pid"]

    def shutdown(self, timeout):
        """POST /api/v1/shutdown?stop_instances=1; returns seconds until the daemon exits."""
        if not self.proc or self.proc.poll() is not None:
            return None
        t0 = time.perf_counter()
        try:
            c = UnixHTTPConnection(self.sock, timeout=10)
            http_call(c, "POST", "/api/v1/shutdown?stop_instances=1")
            c.close()
        except Exception as e:  # noqa: BLE001
            log(f"hostvisor shutdown request failed: {e!r}")
        try:
            self.proc.wait(timeout)
            return time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            log("hostvisor did not exit in time; SIGKILL")
            self.kill()
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self.kill()
        if self.logfile:
            self.logfile.close()
            self.logfile = None


# ---------------------------------------------------------------------------
# supervisord

class Supervisord:
    def __init__(self, root, tiny, n):
        self.dir = os.path.join(root, "sv")
        self.sock = os.path.join(self.dir, "supervisor.sock")
        self.conf = os.path.join(self.dir, "supervisord.conf")
        self.progdir = os.path.join(self.dir, "programs")
        self.tiny = tiny
        self.n = n
        self.proc = None
        self.logfile = None
        self.log_path = os.path.join(root, "sv-daemon.log")

    def write_conf(self):
        os.makedirs(os.path.join(self.dir, "childlogs"), exist_ok=True)
        os.makedirs(self.progdir, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write(f"""[unix_http_server]
file={self.sock}
chmod=0700

[supervisord]
nodaemon=true
logfile={self.dir}/supervisord.log
pidfile={self.dir}/supervisord.pid
childlogdir={self.dir}/childlogs
loglevel=info
minfds={max(1024, 4 * self.n + 256)}
minprocs={max(200, 2 * self.n + 100)}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{self.sock}

[include]
files = {self.progdir}/*.conf
""")

    def write_programs(self, names):
        with open(os.path.join(self.progdir, "programs.conf"), "w") as f:
            for nm in names:
                f.write(f"[program:{nm}]\ncommand={self.tiny} {TINY_ARG}\nautostart=true\n"
                        f"autorestart=true\nstartsecs=0\n\n")

    def start(self, timeout):
        self.logfile = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            ["/usr/bin/supervisord", "-n", "-c", self.conf],
            stdin=subprocess.DEVNULL, stdout=self.logfile, stderr=self.logfile,
            start_new_session=True)
        DAEMONS.add(self.proc.pid)
        return t0

    def wait_socket(self, deadline):
        while True:
            try:
                self.rpc_raw("supervisor.getState")
                return
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"supervisord exited with {self.proc.returncode}; see {self.log_path}")
            if time.perf_counter() > deadline:
                raise BenchError("supervisord's socket did not answer in time")
            time.sleep(0.005)

    def rpc_raw(self, method, *params):
        """One XML-RPC call on a fresh unix-socket connection; returns the raw bytes."""
        body = xmlrpc.client.dumps(params, method)
        c = UnixHTTPConnection(self.sock)
        try:
            st, data = http_call(c, "POST", "/RPC2", body.encode(), {"Content-Type": "text/xml"})
        finally:
            c.close()
        if st != 200:
            raise BenchError(f"{method}: HTTP {st}")
        return data

    def rpc(self, method, *params):
        return xmlrpc.client.loads(self.rpc_raw(method, *params))[0][0]

    def wait_all_running(self, n, deadline):
        while True:
            sent = time.perf_counter()
            infos = self.rpc("supervisor.getAllProcessInfo")
            up = sum(1 for i in infos if i["statename"] == "RUNNING")
            if up >= n:
                return sent, time.perf_counter()
            if time.perf_counter() > deadline:
                raise BenchError(f"supervisord: {up}/{n} RUNNING before the deadline")
            time.sleep(0.002)

    def ctl(self, *args, timeout=600):
        return subprocess.run(["/usr/bin/supervisorctl", "-c", self.conf, *args],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def stop(self, timeout):
        """SIGTERM (supervisord stops every program, then exits); seconds until it has."""
        if not self.proc or self.proc.poll() is not None:
            return None
        t0 = time.perf_counter()
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
            return time.perf_counter() - t0
        except subprocess.TimeoutExpired:
            log("supervisord did not exit in time; SIGKILL")
            self.kill()
            return None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self.kill()
        if self.logfile:
            self.logfile.close()
            self.logfile = None


# ---------------------------------------------------------------------------
# the measurements

def time_runs(fn, runs):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def crash_samples(kill_and_wait, victims, settle):
    out = []
    for v in victims:
        out.append(kill_and_wait(v))
        time.sleep(settle)
    return out


def bench_hostvisor(args, root, tiny, names):
    hv = Hostvisor(args.bin, root, tiny, args.log_level)
    n = len(names)
    r = {}
    try:
        log(f"hostvisor: starting an empty daemon ({args.bin})")
        hv.start(30)
        r["daemon_pid"] = hv.proc.pid
        r["rss_empty"] = rss(hv.proc.pid)

        # -- create n at runtime, each started (start_secs 0), until all running
        log(f"hostvisor: creating {n} instances over {args.concurrency} connections")
        deadline = time.perf_counter() + args.timeout
        watcher = ExecWatcher(tiny, hv.proc.pid)
        if args.profile:
            prof = start_perf(hv.proc.pid, os.path.join(args.profile, "create.perf.data"))
        t0 = time.perf_counter()
        lat = hv.create_all(names, args.concurrency, deadline, args.memory)
        t_created = time.perf_counter()
        if args.profile:
            stop_perf(prof)
        t_exec = watcher.wait_count(n, deadline)
        t_api, _ = hv.wait_all_running(n, deadline)
        r["create_all_returned"] = t_created - t0
        r["create_exec_all"] = t_exec - t0
        r["create_running_all"] = max(t_api, t_created) - t0
        r["create_latency"] = summary(lat)
        r["rss_after_create"] = rss(hv.proc.pid)
        log(f"hostvisor: {n} running {r['create_running_all']:.3f}s after the first create")

        # -- ls latency: the CLI end to end, and the raw REST call
        env = dict(os.environ, HOSTVISOR_DATA_DIR=hv.dir)
        cli = [args.bin, "--data-dir", hv.dir, "ls", "--json"]
        out = subprocess.run(cli, env=env, capture_output=True, timeout=60)
        if out.returncode != 0 or len(json.loads(out.stdout)) != n:
            raise BenchError(f"hostvisor ls --json: rc={out.returncode} {out.stderr[:200]!r}")
        r["ls_cli"] = summary(time_runs(
            lambda: subprocess.run(cli, env=env, stdout=subprocess.DEVNULL, timeout=60, check=True),
            args.ls_runs))

        def raw_list():
            c = hv.conn()
            st, data = http_call(c, "GET", "/api/v1/instances")
            c.close()
            if st != 200:
                raise BenchError(f"GET /api/v1/instances: {st}")
            r["ls_api_bytes"] = len(data)
        r["ls_api"] = summary(time_runs(raw_list, args.ls_runs))
        r["rss"] = rss(hv.proc.pid)
        log(f"hostvisor: ls --json median {r['ls_cli']['median'] * 1000:.2f} ms, "
            f"RSS {r['rss']['VmRSS']:.1f} MiB")

        # -- crash-to-restart
        victims = spread(names, 2 * args.crash_samples)
        proc_victims, api_victims = victims[::2], victims[1::2]

        def kill_proc_observed(name):
            c = hv.conn()
            _, old = hv.get(c, name)
            before = children(hv.proc.pid)
            t = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            t1, new = watcher.wait_new(before, t + 10)
            # let the daemon settle it before the next sample
            end = time.perf_counter() + 10
            while hv.get(c, name) != ("running", new):
                if time.perf_counter() > end:
                    raise BenchError(f"{name}: not running with pid {new}")
                time.sleep(0.001)
            c.close()
            return t1 - t

        def kill_api_observed(name):
            c = hv.conn()
            _, old = hv.get(c, name)
            t = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            end = t + 10
            while True:
                st, pid = hv.get(c, name)
                if st == "running" and pid and pid != old:
                    d = time.perf_counter() - t
                    break
                if time.perf_counter() > end:
                    raise BenchError(f"{name}: no new running pid within 10 s")
                time.sleep(0.0002)
            c.close()
            return d

        log("hostvisor: crash-to-restart")
        r["crash_proc"] = summary(crash_samples(kill_proc_observed, proc_victims, 0.05))
        r["crash_api"] = summary(crash_samples(kill_api_observed, api_victims, 0.05))
        after = {i["name"]: i for i in hv.list()}
        r["restarts_seen"] = sum(i["restarts"] for i in after.values())
        if r["restarts_seen"] != len(victims):
            raise BenchError(f"expected {len(victims)} restarts, the daemon counted {r['restarts_seen']}")

        # -- stop everything with the daemon, then a cold start with n configured
        log("hostvisor: shutdown --stop-instances")
        r["shutdown_stop_all"] = hv.shutdown(120)
        hv.close()
        stray = pids_touching(tiny)
        if stray:
            raise BenchError(f"{len(stray)} instances still running after shutdown --stop-instances")

        log(f"hostvisor: cold start with {n} instances configured")
        deadline = time.perf_counter() + args.timeout
        first = FirstAnswer(hv.healthz, deadline)
        first.start()
        # The whole machine: the children's work before and after exec counts.
        prof = start_perf(None, os.path.join(args.profile, "cold.perf.data")) if args.profile else None
        watcher = ExecWatcher(tiny)
        t0 = hv.start(args.timeout)
        t_ready = time.perf_counter()
        t_exec = watcher.attach(hv.proc.pid).wait_count(n, deadline)
        stop_perf(prof)
        t_api, _ = hv.wait_all_running(n, deadline)
        first.join(max(0.1, deadline - time.perf_counter()))
        r["cold_ready"] = t_ready - t0
        r["cold_api_answers"] = first.at - t0 if first.at else None
        r["cold_exec_all"] = t_exec - t0
        r["cold_running_all"] = t_api - t0
        r["rss_cold"] = rss(hv.proc.pid)
        log(f"hostvisor: cold start: {n} running after {r['cold_running_all']:.3f}s")
        r["shutdown_stop_all_2"] = hv.shutdown(120)
    finally:
        if hv.proc and hv.proc.poll() is None:
            hv.shutdown(60)
        hv.close()
        sweep(tiny, "hostvisor instance")
        sweep(hv.dir + "/", "hostvisor")
    return r


# The launcher of the floor side: n × posix_spawn(3) of the program in one loop
# (glibc's vfork-style clone, as the daemons' own spawns), the environment
# hostvisor gives an instance, stdio on /dev/null; then it waits for stdin to
# close, kills and reaps its children. It prints CLOCK_MONOTONIC before the
# first spawn.
FLOOR_LAUNCHER = r"""
import os, signal, sys
tiny, n = sys.argv[1], int(sys.argv[2])
env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.path.expanduser("~"), "SHELL": "/bin/sh",
       "LANG": "C.UTF-8", "PORT": "40000"}
null = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
print(f"{__import__('time').monotonic():.9f}", flush=True)
kids = [os.posix_spawn(tiny, [tiny, "100000"], env, file_actions=null) for _ in range(n)]
sys.stdin.read()
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
"""


def bench_floor(args, root, tiny, names):
    """The same n programs started with nothing around them: no cgroups, no
    sandbox, no logs, no state, no RPC. What the machine itself needs to exec
    them, so what no supervisor can beat; a supervisor's cold start against it
    is its own overhead, supervisord's against it the best ratio this machine
    allows in this round."""
    n = len(names)
    watcher = ExecWatcher(tiny)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", FLOOR_LAUNCHER, tiny, str(n)], cwd=root,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    DAEMONS.add(proc.pid)
    try:
        line = proc.stdout.readline()
        if not line:
            raise BenchError(f"the floor's launcher exited with {proc.wait(10)} before its first spawn")
        first_spawn = float(line)
        t_exec = watcher.attach(proc.pid).wait_count(n, t0 + args.timeout)
        proc.stdin.close()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            kill_pids(children(proc.pid) | {proc.pid})
            proc.wait(10)
        watcher.close()
        sweep(tiny, "floor program")
    log(f"floor: {n} programs exec'd {t_exec - first_spawn:.3f}s after the first posix_spawn")
    return {"floor_exec_all": t_exec - first_spawn, "floor_from_exec": t_exec - t0}


def bench_supervisord(args, root, tiny, names):
    sv = Supervisord(root, tiny, len(names))
    n = len(names)
    r = {}
    try:
        sv.write_conf()
        # -- add n programs at runtime (the supervisord way: conf files + `supervisorctl update`)
        log("supervisord: starting with no programs")
        deadline = time.perf_counter() + args.timeout
        sv.start(30)
        sv.wait_socket(time.perf_counter() + 30)
        r["daemon_pid"] = sv.proc.pid
        r["rss_empty"] = rss(sv.proc.pid)
        sv.write_programs(names)
        watcher = ExecWatcher(tiny, sv.proc.pid)
        log(f"supervisord: supervisorctl update with {n} new programs")
        t0 = time.perf_counter()
        out = sv.ctl("update", timeout=args.timeout)
        t_updated = time.perf_counter()
        if out.returncode != 0:
            raise BenchError(f"supervisorctl update: rc={out.returncode} {out.stderr[:300]!r}")
        t_exec = watcher.wait_count(n, deadline)
        t_api, _ = sv.wait_all_running(n, deadline)
        r["create_all_returned"] = t_updated - t0
        r["create_exec_all"] = t_exec - t0
        r["create_running_all"] = max(t_api, t_updated) - t0
        r["rss_after_create"] = rss(sv.proc.pid)
        log(f"supervisord: {n} RUNNING {r['create_running_all']:.3f}s after update began")

        # -- status latency: supervisorctl end to end, and the raw XML-RPC call
        out = sv.ctl("status", timeout=120)
        running = sum(1 for line in out.stdout.decode().splitlines() if " RUNNING " in line)
        if running != n:
            raise BenchError(f"supervisorctl status shows {running}/{n} RUNNING")
        r["ls_cli"] = summary(time_runs(lambda: sv.ctl("status", timeout=120), args.sv_ls_runs))

        def raw_status():
            r["ls_api_bytes"] = len(sv.rpc_raw("supervisor.getAllProcessInfo"))
        r["ls_api"] = summary(time_runs(raw_status, args.sv_ls_runs))
        r["rss"] = rss(sv.proc.pid)
        log(f"supervisord: status median {r['ls_cli']['median']:.3f} s, RSS {r['rss']['VmRSS']:.1f} MiB")

        # -- crash-to-restart
        victims = spread(names, 2 * args.crash_samples)
        proc_victims, api_victims = victims[::2], victims[1::2]

        def info(name):
            i = sv.rpc("supervisor.getProcessInfo", name)
            return i["statename"], i["pid"]

        def kill_proc_observed(name):
            _, old = info(name)
            before = children(sv.proc.pid)
            t = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            t1, new = watcher.wait_new(before, t + 30)
            end = time.perf_counter() + 30
            while info(name) != ("RUNNING", new):
                if time.perf_counter() > end:
                    raise BenchError(f"{name}: not RUNNING with pid {new}")
                time.sleep(0.005)
            return t1 - t

        def kill_api_observed(name):
            _, old = info(name)
            t = time.perf_counter()
            os.kill(old, signal.SIGKILL)
            end = t + 30
            while True:
                st, pid = info(name)
                if st == "RUNNING" and pid and pid != old:
                    return time.perf_counter() - t
                if time.perf_counter() > end:
                    raise BenchError(f"{name}: no new RUNNING pid within 30 s")
                time.sleep(0.0002)

        log("supervisord: crash-to-restart")
        r["crash_proc"] = summary(crash_samples(kill_proc_observed, proc_victims, 0.05))
        r["crash_api"] = summary(crash_samples(kill_api_observed, api_victims, 0.05))

        log("supervisord: SIGTERM (stops every program)")
        r["shutdown_stop_all"] = sv.stop(300)
        sv.close()
        stray = pids_touching(tiny)
        if stray:
            raise BenchError(f"{len(stray)} programs still running after supervisord stopped")

        # -- cold start with n programs configured
        log(f"supervisord: cold start with {n} programs configured")
        deadline = time.perf_counter() + args.timeout
        first = FirstAnswer(lambda: sv.rpc_raw("supervisor.getState"), deadline)
        watcher = ExecWatcher(tiny)
        t0 = sv.start(30)
        first.start()
        t_exec = watcher.attach(sv.proc.pid).wait_count(n, deadline, interval=0.002)
        sv.wait_socket(deadline)
        t_api, _ = sv.wait_all_running(n, deadline)
        first.join(max(0.1, deadline - time.perf_counter()))
        r["cold_api_answers"] = first.at - t0 if first.at else None
        r["cold_exec_all"] = t_exec - t0
        r["cold_running_all"] = t_api - t0
        r["rss_cold"] = rss(sv.proc.pid)
        log(f"supervisord: cold start: {n} RUNNING after {r['cold_running_all']:.3f}s")
        r["shutdown_stop_all_2"] = sv.stop(300)
    finally:
        if sv.proc and sv.proc.poll() is None:
            sv.stop(120)
        sv.close()
        sweep(tiny, "supervisord program")
        sweep(sv.dir + "/", "supervisord")
    return r


def spread(names, k):
    k = min(k, len(names))
    step = len(names) / k
    return [names[int(i * step)] for i in range(k)]


# ---------------------------------------------------------------------------
# optional profile of the create path

def start_perf(pid, out):
    perf = shutil.which("perf")
    if not perf:
        log("perf not found; no profile")
        return None
    target = ["-a"] if pid is None else ["-p", str(pid)]
    return subprocess.Popen([perf, "record", "-F", "4999", "-g", *target, "-o", out],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop_perf(p):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()


# ---------------------------------------------------------------------------
# report

def machine_facts(args):
    facts = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
             "nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            facts["cpu"] = m.group(1).strip() if m else "?"
        with open("/proc/meminfo") as f:
            facts["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'PRETTY_NAME="(.*)"', f.read())
            facts["os"] = m.group(1) if m else "?"
    except OSError:
        facts["os"] = "?"

    def run(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, timeout=20).stdout.decode().strip()
        except Exception:  # noqa: BLE001
            return "?"
    facts["supervisord"] = run(["/usr/bin/supervisord", "--version"])
    facts["python"] = platform.python_version()
    rev = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = run(["git", "-C", REPO, "status", "--porcelain", "--", "src"])
    facts["hostvisor_commit"] = rev + (" (+ uncommitted changes in src/)" if dirty else "")
    with open(args.bin, "rb") as f:
        facts["hostvisor_sha256"] = hashlib.sha256(f.read()).hexdigest()[:12]
    facts["hostvisor_bin"] = args.bin
    facts["hostvisor_bin_mtime"] = datetime.datetime.fromtimestamp(
        os.stat(args.bin).st_mtime).strftime("%Y-%m-%d %H:%M")
    return facts


CLK_TCK = os.sysconf("SC_CLK_TCK")
DAEMONS = set()   # pids of the daemons started here, for the CPU accounting below


def proc_cpu(pid):
    """CPU seconds of a process and of its children it has reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK   # utime stime cutime cstime
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_snapshot():
    """(wall, CPU seconds busy on the whole machine, CPU seconds of this benchmark)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK_TCK  # user nice system irq softirq steal
    ours = proc_cpu(os.getpid()) + sum(proc_cpu(p) for p in list(DAEMONS))
    return time.perf_counter(), busy, ours


def foreign_load(before, after):
    """Share of the machine's CPU capacity used by anything but this benchmark (other
    processes, or the hypervisor's steal) between two snapshots."""
    wall = after[0] - before[0]
    other = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, other) / max(1e-9, wall * (os.cpu_count() or 1))


def cpu_busy(interval=1.0):
    """Fraction of all CPUs busy over `interval` (from /proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle + iowait
    t1, i1 = read()
    time.sleep(interval)
    t2, i2 = read()
    return 1.0 - (i2 - i1) / max(1, t2 - t1)


def wait_quiet(limit, threshold=0.15):
    """Waits (at most `limit` s) until other work leaves the CPUs mostly idle; the
    figures are only comparable on a quiet machine. Returns the last busy fraction."""
    end = time.perf_counter() + limit
    busy = cpu_busy()
    while busy > threshold and time.perf_counter() < end:
        log(f"machine busy ({busy:.0%} of the CPUs); waiting for it to calm down")
        time.sleep(5)
        busy = cpu_busy(2.0)
    if busy > threshold:
        log(f"warning: measuring on a busy machine ({busy:.0%} of the CPUs busy)")
    return busy


def fs_type(path):
    """The file system type of the mount that holds `path`."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        pass
    return kind


def fmt_time(s):
    if s is None or s != s:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 0.001:
        return f"{s * 1000:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def ratio(sv, hv):
    if not sv or not hv or sv != sv or hv != hv:
        return "n/a"
    x = sv / hv
    return f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×"


def render(res, facts, n, args):
    hv, sv = res["hv"], res["sv"]
    rows = []

    def row(metric, h, s, unit="time"):
        if unit == "time":
            rows.append(f"| {metric} | {fmt_time(h)} | {fmt_time(s)} | {ratio(s, h)} |")
        else:
            rows.append(f"| {metric} | {h:.1f} MiB | {s:.1f} MiB | {ratio(s, h)} |")

    row(f"cold start with {n} configured → all running (API)", hv["cold_running_all"], sv["cold_running_all"])
    row(f"cold start with {n} configured → all {n} exec'd (/proc)", hv["cold_exec_all"], sv["cold_exec_all"])
    row("cold start → the API first answers", hv.get("cold_api_answers"), sv.get("cold_api_answers"))
    row(f"add {n} at runtime → all running (API)¹", hv["create_running_all"], sv["create_running_all"])
    row("`ls --json` / `supervisorctl status`, median", hv["ls_cli"]["median"], sv["ls_cli"]["median"])
    row("`ls --json` / `supervisorctl status`, p95", hv["ls_cli"]["p95"], sv["ls_cli"]["p95"])
    row("list RPC (GET /api/v1/instances / getAllProcessInfo), median", hv["ls_api"]["median"], sv["ls_api"]["median"])
    row("list RPC, p95", hv["ls_api"]["p95"], sv["ls_api"]["p95"])
    row(f"daemon RSS with {n} running (VmRSS)", hv["rss"]["VmRSS"], sv["rss"]["VmRSS"], "mem")
    row("… of which anonymous (RssAnon)", hv["rss"]["RssAnon"], sv["rss"]["RssAnon"], "mem")
    row("daemon peak RSS (VmHWM)", hv["rss"]["VmHWM"], sv["rss"]["VmHWM"], "mem")
    row(f"daemon RSS after a cold start with {n}", hv["rss_cold"]["VmRSS"], sv["rss_cold"]["VmRSS"], "mem")
    row("crash → new process exec'd (/proc), median", hv["crash_proc"]["median"], sv["crash_proc"]["median"])
    row("crash → new process exec'd (/proc), p95", hv["crash_proc"]["p95"], sv["crash_proc"]["p95"])
    row("crash → API shows a new running pid, median", hv["crash_api"]["median"], sv["crash_api"]["median"])
    row("crash → API shows a new running pid, p95", hv["crash_api"]["p95"], sv["crash_api"]["p95"])
    row(f"stop all {n} and exit (informational)", hv["shutdown_stop_all"], sv["shutdown_stop_all"])

    floor = res["floor"]["floor_exec_all"]
    ceiling = sv["cold_running_all"] / floor
    rows.append(f"| floor: the same {n} programs from a bare `posix_spawn` loop → all exec'd (/proc)² "
                f"| {fmt_time(floor)} | | |")

    start_ratio = sv["cold_running_all"] / hv["cold_running_all"]
    add_ratio = sv["create_running_all"] / hv["create_running_all"]
    ls_ratio = sv["ls_cli"]["median"] / hv["ls_cli"]["median"]
    rpc_ratio = sv["ls_api"]["median"] / hv["ls_api"]["median"]
    rss_mib = hv["rss"]["VmRSS"]
    crash = hv["crash_proc"]["median"]
    crash_api = hv["crash_api"]["median"]

    def pf(ok):
        return "**pass**" if ok else "**MISS**"
    targets = [
        f"| start {n} ≥ 10× faster (cold start) | {start_ratio:.1f}× (the machine's ceiling in this run: "
        f"{ceiling:.1f}×²) | {pf(start_ratio >= 10)} |",
        f"| start {n} ≥ 10× faster (add at runtime) | {add_ratio:.1f}× | {pf(add_ratio >= 10)} |",
        f"| `ls` ≥ 100× faster (CLI vs supervisorctl status) | {ls_ratio:,.0f}× | {pf(ls_ratio >= 100)} |",
        f"| `ls` ≥ 100× faster (list RPC vs getAllProcessInfo) | {rpc_ratio:,.0f}× | {pf(rpc_ratio >= 100)} |",
        f"| daemon RSS ≤ 15 MiB with {n} | {rss_mib:.1f} MiB | {pf(rss_mib <= 15)} |",
        f"| first restart after a crash ≤ 5 ms (median, /proc) | {fmt_time(crash)} "
        f"(p95 {fmt_time(hv['crash_proc']['p95'])}) | {pf(crash <= 0.005)} |",
        f"| first restart after a crash ≤ 5 ms (median, API) | {fmt_time(crash_api)} "
        f"(p95 {fmt_time(hv['crash_api']['p95'])}) | {pf(crash_api <= 0.005)} |",
    ]
    if n != 1000:
        targets.append(f"\n(The targets are for 1,000 instances; this run used {n}.)")

    per_round = []
    for i, (f, h, s) in enumerate(zip(res["rounds"]["floor"], res["rounds"]["hv"], res["rounds"]["sv"])):
        per_round.append(
            f"round {i + 1}: cold start {fmt_time(h['cold_running_all'])} vs {fmt_time(s['cold_running_all'])} "
            f"({ratio(s['cold_running_all'], h['cold_running_all'])}; floor {fmt_time(f['floor_exec_all'])}), "
            f"ls {fmt_time(h['ls_cli']['median'])} vs "
            f"{fmt_time(s['ls_cli']['median'])} ({ratio(s['ls_cli']['median'], h['ls_cli']['median'])})")

    extra = (f"hostvisor create API: {n} POSTs over {args.concurrency} connections returned after "
             f"{fmt_time(hv['create_all_returned'])}; per-request latency median "
             f"{fmt_time(hv['create_latency']['median'])}, p95 {fmt_time(hv['create_latency']['p95'])}. "
             f"`supervisorctl update` returned after {fmt_time(sv['create_all_returned'])}. "
             f"List payload: hostvisor {int(hv['ls_api_bytes']):,} B JSON, supervisord "
             f"{int(sv['ls_api_bytes']):,} B XML. Daemon RSS with no instances: hostvisor "
             f"{hv['rss_empty']['VmRSS']:.1f} MiB, supervisord {sv['rss_empty']['VmRSS']:.1f} MiB. "
             f"Samples per round: {args.ls_runs} hostvisor `ls`, {args.sv_ls_runs} supervisord `status`, "
             f"{args.crash_samples} crashes per method per supervisor; {args.rounds} round(s): "
             f"medians and p95 over the pooled samples, other figures the median of the rounds.")

    md = []
    md.append(f"### Supervisor benchmark, {n} instances — {facts['date']}\n")
    md.append("| metric | hostvisor | supervisord | ratio |")
    md.append("| --- | ---: | ---: | ---: |")
    md.extend(rows)
    md.append("")
    md.append("Ratio = supervisord ÷ hostvisor (how many times faster or smaller hostvisor is).  ")
    md.append("¹ hostvisor: `POST /api/v1/instances` ×n (start_secs 0); supervisord: n `[program:x]` "
              "in an included file, then `supervisorctl update`.  ")
    md.append(f"² The machine's own cost of starting the programs, measured in each round right before "
              f"hostvisor: one process `posix_spawn`s the same {n} programs (hostvisor's environment, stdio "
              f"on /dev/null) with nothing else: no cgroups, sandbox, logs, state or RPC; the clock from its "
              f"first spawn to the {n}-th exec. hostvisor's cold start (all exec'd) is "
              f"{hv['cold_exec_all'] / floor:.2f}× the floor; supervisord's cold start (all running) ÷ the "
              f"floor is the best ratio any supervisor could reach against it here.")
    md.append("")
    md.append(extra)
    md.append("")
    if len(per_round) > 1:
        md.append("Spread: " + "; ".join(per_round) + ".")
        md.append("")
    md.append("| target | measured | |")
    md.append("| --- | --- | --- |")
    md.extend(targets)
    md.append("")
    md.append(f"Machine: {facts['nproc']} CPUs ({facts.get('cpu', '?')}), {facts.get('mem_gib', '?')} GiB, "
              f"{facts['os']}, kernel {facts['kernel']}; state and logs on {facts['data_dir_fs']} "
              f"({facts['file_create_us']} µs to create a file); other load before each side: "
              f"{max(facts['busy_before']):.0%} of the CPUs at most, during the kept rounds "
              f"{max(r['foreign_load'] for rs in res['rounds'].values() for r in rs):.0%} at most "
              f"({facts['discarded_rounds']} round(s) discarded for outside load); "
              f"hostvisor binary `{facts['hostvisor_bin']}` built {facts['hostvisor_bin_mtime']} "
              f"(sha256 {facts['hostvisor_sha256']}; repo HEAD at run time {facts['hostvisor_commit']}), "
              f"supervisord {facts['supervisord']} on "
              f"Python {facts['python']}. Reproduce: `bench/supervisor/run.sh"
              f"{'' if n == 1000 else ' --n ' + str(n)}`.")
    return "\n".join(md) + "\n"


def update_docs(table_md):
    path = os.path.join(REPO, "docs", "benchmarks.md")
    begin, end = "<!-- supervisor-results:begin -->", "<!-- supervisor-results:end -->"
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        raise BenchError(f"{path} lacks the {begin} … {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    table_md = re.sub(r"^### ", "#### ", table_md, flags=re.M)   # under "### Latest results"
    with open(path + ".tmp", "w") as f:
        f.write(head + begin + "\n" + table_md + end + tail)
    os.replace(path + ".tmp", path)
    log(f"updated {path}")


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="instances (default 1000)")
    ap.add_argument("--quick", action="store_true", help="smoke run: n=100")
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "hostvisor"), help="hostvisor binary")
    ap.add_argument("--concurrency", type=int, default=8, help="API connections for the creates")
    ap.add_argument("--rounds", type=int, default=None,
                    help="repeat both sides this many times (default 3; 1 with --quick)")
    ap.add_argument("--max-foreign", type=float, default=0.10, metavar="F",
                    help="discard a side's round when other work used more than this share of "
                         "the CPUs during it (default 0.10)")
    ap.add_argument("--retries", type=int, default=3, help="re-measurements of a discarded round")
    ap.add_argument("--ls-runs", type=int, default=20)
    ap.add_argument("--sv-ls-runs", type=int, default=10)
    ap.add_argument("--crash-samples", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=600, help="bound on each start phase, seconds")
    ap.add_argument("--deadline", type=float, default=5400,
                    help="bound on the whole run, seconds (then it cleans up and stops)")
    ap.add_argument("--log-level", default="info", help="hostvisor's --log-level")
    ap.add_argument("--memory", metavar="SIZE",
                    help="give each hostvisor instance this memory limit (e.g. 64M): its starts join the "
                         "memory cgroup, a v1 migration on hybrid hosts (supervisord has no equivalent)")
    ap.add_argument("--wait-quiet", type=float, default=300, metavar="S",
                    help="wait up to S seconds for other load to settle before each side")
    ap.add_argument("--data-base", metavar="DIR",
                    help="where both daemons keep state and logs (default: the temp dir under $HOME)")
    ap.add_argument("--only", choices=["hostvisor", "supervisord"], help="run one side only (debugging)")
    ap.add_argument("--profile", metavar="DIR", help="perf record the hostvisor daemon during the creates, and the whole machine during the cold start")
    ap.add_argument("--out-dir", default=HERE, help="where results-<date>-<HHMM>.md goes")
    ap.add_argument("--update-docs", action="store_true", help="put the table in docs/benchmarks.md")
    ap.add_argument("--sweep-stale", action="store_true", help="only kill leftovers of dead runs")
    args = ap.parse_args()
    if args.sweep_stale:
        sweep_stale()
        return 0
    if args.quick:
        args.n = 100
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    n = args.n
    if n < 2 or n > 2000:
        ap.error("--n must be 2..2000 (the port range holds 2,000 ports)")
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        ap.error(f"no hostvisor binary at {args.bin} (make build, or --bin)")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
        args.profile = os.path.abspath(args.profile)

    # Ctrl-C, SIGTERM, SIGHUP and an overall alarm all unwind through the finally below.
    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_signal)
    signal.alarm(int(args.deadline))

    if args.data_base:
        args.data_base = os.path.abspath(args.data_base)
    sweep_stale([args.data_base] if args.data_base else [])
    root = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=HOME)
    os.chmod(root, 0o700)
    data = root
    res = {}
    rc = 1
    try:
        if args.data_base:
            data = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=args.data_base)
        tiny = os.path.join(root, "tiny")
        shutil.copy2("/bin/sleep", tiny)   # a real, tiny program; the same file for both
        os.chmod(tiny, 0o755)
        names = [f"b{i:04d}" for i in range(n)]
        facts = machine_facts(args)
        facts["data_dir_fs"] = fs_type(data)
        facts["file_create_us"] = round(fs_probe(data))
        log(f"n={n}, temp dir {root}, data in {data} ({facts['data_dir_fs']}, "
            f"{facts['file_create_us']} µs to create a file)")
        facts["busy_before"] = []
        rounds = {"floor": [], "hv": [], "sv": []}
        # The floor goes right before hostvisor in each round: the same machine phase.
        sides = [("floor", bench_floor), ("hv", bench_hostvisor), ("sv", bench_supervisord)]
        skip = {"hostvisor": {"sv"}, "supervisord": {"floor", "hv"}}.get(args.only, set())
        sides = [x for x in sides if x[0] not in skip]
        discarded = 0
        for k in range(args.rounds):
            if args.rounds > 1:
                log(f"round {k + 1} of {args.rounds}")
            for side, run in sides:
                for attempt in range(1, args.retries + 2):
                    rdir = os.path.join(data, f"r{k + 1}-{side}-{attempt}")
                    os.makedirs(rdir)
                    facts["busy_before"].append(round(wait_quiet(args.wait_quiet), 3))
                    before = cpu_snapshot()
                    r = run(args, rdir, tiny, names)
                    r["foreign_load"] = round(foreign_load(before, cpu_snapshot()), 4)
                    if r["foreign_load"] <= args.max_foreign or attempt > args.retries:
                        if r["foreign_load"] > args.max_foreign:
                            log(f"warning: kept a {side} round measured while other work used "
                                f"{r['foreign_load']:.0%} of the CPUs")
                        rounds[side].append(r)
                        break
                    discarded += 1
                    log(f"{side}: other work used {r['foreign_load']:.0%} of the CPUs during this "
                        f"round; discarding it and measuring again")
        facts["discarded_rounds"] = discarded
        facts["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        res = {side: aggregate(rs) for side, rs in rounds.items() if rs}
        res["rounds"] = rounds
        if args.only:
            print(json.dumps({k: v for k, v in res.items() if k != "rounds"}, indent=1, default=str))
            rc = 0
            return rc
        md = render(res, facts, n, args)
        os.makedirs(args.out_dir, exist_ok=True)
        print(md)
        day = datetime.datetime.now().strftime("%Y-%m-%d-%H%M")  # one file per run, never overwritten
        suffix = "" if n == 1000 else f"-n{n}"
        out = os.path.join(args.out_dir, f"results-{day}{suffix}.md")
        with open(out, "w") as f:
            f.write(md)
        with open(os.path.join(args.out_dir, f"results-{day}{suffix}.json"), "w") as f:
            json.dump({"facts": facts, "n": n, "results": res}, f, indent=1, default=str)
        log(f"wrote {out}")
        if args.update_docs:
            update_docs(md)
        rc = 0
    except BenchError as e:
        log(f"FAILED: {e}")
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        rc = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.alarm(0)
        killed = sweep(root + "/", "benchmark")
        if data != root:
            killed += sweep(data + "/", "benchmark")
        if killed:
            log(f"cleanup: killed {killed} leftover processes")
        if os.environ.get("HV_BENCH_KEEP"):
            log(f"kept {root} {data}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            if data != root:
                shutil.rmtree(data, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
