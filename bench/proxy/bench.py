#!/usr/bin/python3
"""Proxy benchmark: hostvisor's front proxy against nginx and a direct connection,
side by side, in one run (issue 4). Driven by run.sh; stdlib only.

Sides, all on loopback, all in front of the same backend (echo_backend, run as a
hostvisor instance with route "/"):
  direct    the load generator talks to the backend itself: the limit
  hostvisor `hostvisor serve` with [proxy] listen + tls_listen, the instance route
  nginx     Debian's nginx, worker_processes 1, the same headers, the same certificate
Both proxies are pinned (taskset) to one CPU; the backend, loadgen and wrk to another.
Everything lives in a temp dir under $HOME (hostvisor only runs commands inside the
account's home); every process started here is killed on the way out, also after an
error, Ctrl-C or SIGTERM. See docs/benchmarks.md, section Proxy.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HOME = os.path.expanduser("~")
PREFIX = ".hv-bench-proxy-"        # temp dirs: $HOME/.hv-bench-proxy-<benchpid>-XXXX
DOCS = os.path.join(REPO, "docs", "benchmarks.md")
BEGIN, END = "<!-- proxy-results:begin -->", "<!-- proxy-results:end -->"
SNI = "bench.test"
CLK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def log(msg):
    print(f"[proxy-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes: start, observe, clean up

STARTED = []          # Popen objects, each the leader of its own session
ROOT = None           # this run's temp dir


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None


def link(path):
    try:
        return os.readlink(path)
    except OSError:
        return ""


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def touches(pid, needle):
    """Whether a process belongs to a run: its exe, cwd or an argument is in the run's
    dir `needle` (ending in "/"). nginx workers show no path in their arguments, but their
    cwd is the dir itself, hence the "/" added to links."""
    for what in ("exe", "cwd"):
        target = link(f"/proc/{pid}/{what}").removesuffix(" (deleted)")
        if target and needle in target + "/":
            return True
    return any(needle in a + "/" for a in cmdline(pid) or [])


def sweep(needle, what="leftover"):
    """SIGKILL everything that touches `needle` until nothing does (bounded)."""
    me = os.getpid()
    for _ in range(50):
        pids = [p for p in all_pids() if p != me and touches(p, needle)]
        if not pids:
            return
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
    log(f"warning: {what} processes of {needle} survived SIGKILL")


def sweep_stale():
    """Processes and dirs of earlier runs whose driver is gone (run.sh's EXIT trap)."""
    pat = re.compile(re.escape(PREFIX) + r"(\d+)-")
    for name in os.listdir(HOME):
        m = pat.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            d = os.path.join(HOME, name)
            sweep(d + "/", "stale")
            cg = os.path.join(d, "cgroup")
            try:
                with open(cg) as f:
                    remove_cgroup(f.read().strip())
            except OSError:
                pass
            shutil.rmtree(d, ignore_errors=True)
            log(f"removed the leftovers of an earlier run: {d}")


def remove_cgroup(path):
    """The empty cgroup tree hostvisor made for this run's data dir (best effort)."""
    if not path or not os.path.basename(path).startswith("hostvisor-") or not os.path.isdir(path):
        return
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def spawn(args, logname, env=None, cwd=None):
    logf = open(os.path.join(ROOT, logname), "ab")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, env=env,
                         cwd=cwd or ROOT, start_new_session=True)
    STARTED.append(p)
    return p


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def pin(pid, cpus):
    """All threads of `pid` onto `cpus` (a set)."""
    if not cpus:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass


def taskset(cpus):
    return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus))] if cpus else []


def threads_of(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def wait_http(port, deadline, tls=False, path="/"):
    """Until GET / on 127.0.0.1:port answers 200 (the route is live)."""
    import http.client
    import ssl
    last = None
    while time.monotonic() < deadline:
        try:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                c = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
            else:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path, headers={"Host": SNI})
            r = c.getresponse()
            r.read()
            c.close()
            if r.status == 200:
                return
            last = r.status
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise BenchError(f"127.0.0.1:{port} did not answer 200 in time (last: {last})")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# CPU accounting from /proc

def proc_cpu(pid):
    """(seconds on CPU from schedstat summed over threads, utime s, stime s)."""
    run = 0.0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    run += int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                pass
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return run, int(fields[11]) / CLK, int(fields[12]) / CLK
    except (OSError, IndexError):
        return run, 0.0, 0.0


def machine_cpu():
    """(busy s, total s) over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])
    return (total - v[3] - v[4]) / CLK, total / CLK


WAIT_LEFT = [0.0]     # seconds of waiting for quiet left in this run (--wait-budget)


def wait_quiet(max_wait, threshold):
    """Waits (up to max_wait s, within what is left of the run's budget) for a 1 s
    window in which the machine is nearly idle: other users of this shared machine
    distort every figure. Returns the busy cores seen in the last window."""
    started = time.monotonic()
    t_end = started + max(0.0, min(max_wait, WAIT_LEFT[0]))
    waited = False
    while True:
        b0, t0 = machine_cpu()
        time.sleep(1.0)
        b1, t1 = machine_cpu()
        busy = (b1 - b0) / max(1e-9, (t1 - t0)) * os.cpu_count()
        if busy <= threshold or time.monotonic() >= t_end:
            WAIT_LEFT[0] -= time.monotonic() - started
            if waited:
                log(f"  (waited for other load to settle: {busy:.2f} cores busy now)")
            return busy
        if not waited:
            log(f"  other load: {busy:.2f} cores busy; waiting up to {max_wait:.0f} s for quiet")
        waited = True


# ---------------------------------------------------------------------------
# the sides

def kworker_tids():
    """The kernel's per-CPU workqueue threads and softirq threads (kworker/N:M,
    ksoftirqd/N): with the tunnel offload (BPF sockmap) the psock backlog work that sends
    a redirected message runs in a kworker, not in the proxy process, and the loopback
    receive it triggers runs there or in ksoftirqd, so CPU per message counts them too
    (for every side alike; what other processes make them do counts as well)."""
    out = []
    for p in all_pids():
        try:
            with open(f"/proc/{p}/comm") as f:
                # Per-CPU bound workers only (kworker/N:M, where system_wq work
                # such as the psock backlog runs); not the unbound kworker/uN:M
                # pool, where other processes' writeback would show as noise.
                if re.match(r"kworker/\d+:\d+|ksoftirqd/\d+", f.read()):
                    out.append(p)
        except OSError:
            pass
    return out


class Hostvisor:
    def __init__(self, binary, cpus, loops, cert, key, offload="off", tls_takeover="default"):
        self.bin = binary
        self.cpus = cpus
        self.loops = loops
        self.offload = offload
        self.dir = os.path.join(ROOT, "hv")
        self.conf = os.path.join(ROOT, "hv.toml")
        lo = 42000 + (os.getpid() % 30) * 100
        self.port, self.tls_port = free_port(), free_port()   # fixed: the same across restarts
        with open(self.conf, "w") as f:
            f.write(f"""log_level = "info"
data_dir = "{self.dir}"
[api]
listen = ""
[ports]
range = "{lo}-{lo + 99}"
[proxy]
{"" if loops == "auto" else f"threads = {loops}"}
tunnel_offload = "{offload}"
{"" if tls_takeover == "default" else f'tls_takeover = "{tls_takeover}"'}
listen = "127.0.0.1:{self.port}"
tls_listen = "127.0.0.1:{self.tls_port}"
[[proxy.certificates]]
host = "{SNI}"
cert = "{cert}"
key = "{key}"
""")
        self.proc = None
        self.backend_pid = self.backend_port = None

    def cli(self, *args):
        r = subprocess.run([self.bin, "--data-dir", self.dir, *args], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"hostvisor {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[:500]}")
        return r.stdout

    def start(self):
        env = dict(os.environ)
        info = os.path.join(self.dir, "daemon.json")
        if os.path.exists(info):
            os.unlink(info)
        self.proc = spawn([*taskset(self.cpus), self.bin, "serve", "--config", self.conf], "hv-daemon.log", env=env)
        deadline = time.monotonic() + 60
        while True:
            try:
                with open(info) as f:
                    d = json.load(f)
                if d.get("pid") == self.proc.pid:
                    break
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"hostvisor exited with {self.proc.returncode}; see {ROOT}/hv-daemon.log")
            if time.monotonic() > deadline:
                raise BenchError("hostvisor did not write daemon.json in time")
            time.sleep(0.02)
        with open(os.path.join(ROOT, "cgroup"), "w") as f:
            f.write(d.get("cgroup", ""))
        self.cgroup = d.get("cgroup", "")
        if d.get("proxy") != f"127.0.0.1:{self.port}" or d.get("proxy_tls") != f"127.0.0.1:{self.tls_port}":
            raise BenchError(f"hostvisor's proxy is not on the configured ports: {d}")

    def create_backend(self, backend, load_cpus):
        out = self.cli("create", "echo", "--command", backend, "--arg", "{port}", "--route", "/",
                       "--restart", "always", "--json")
        inst = json.loads(out)
        if inst.get("state") != "running":
            raise BenchError(f"the echo instance is {inst.get('state')}: {inst.get('reason')}")
        self.backend_pid, self.backend_port = inst["pid"], inst["port"]
        pin(self.backend_pid, load_cpus)   # it inherited the daemon's CPU
        wait_http(self.port, time.monotonic() + 30)

    def pids(self):
        return [self.proc.pid]

    def loops_running(self):
        """From the daemon's own log line "proxy: listening on ... with N loops" (its last start):
        counting threads would also count the daemon's other threads."""
        found = 0
        with open(os.path.join(ROOT, "hv-daemon.log"), errors="replace") as f:
            for line in f:
                m = re.search(r"proxy: listening on .* with (\d+) loops", line)
                if m:
                    found = int(m.group(1))
        return found

    def restart(self):
        """A fresh daemon process (the instance keeps running and is re-adopted)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait(10)
        self.start()
        wait_http(self.port, time.monotonic() + 30)
        wait_http(self.tls_port, time.monotonic() + 30, tls=True)
        ls = json.loads(self.cli("status", "echo", "--json"))
        if ls.get("pid") != self.backend_pid:
            raise BenchError(f"the echo instance changed pid across a daemon restart: {ls.get('pid')}")

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            self.cli("shutdown", "--stop-instances")
            self.proc.wait(30)
        except Exception as e:  # noqa: BLE001 - the sweep follows
            log(f"hostvisor shutdown: {e}")
            kill_group(self.proc)


class Nginx:
    def __init__(self, cpus, backend_port, cert, key, nofile):
        self.cpus = cpus
        self.dir = os.path.join(ROOT, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port, self.tls_port = free_port(), free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(self.conf, "w") as f:
            f.write(f"""# The same job as hostvisor's proxy: one route to one upstream, WebSocket
# upgrade passed through, the same X-Forwarded-*/Forwarded fields, TLS terminated
# with the same certificate, 1 h tunnel idle time, 32 idle upstream connections
# kept (hostvisor: Limits::idleUpstreamsPerHost). Everything else: Debian defaults.
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {nofile - 64}; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  upstream echo {{ server 127.0.0.1:{backend_port}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{self.port};
    listen 127.0.0.1:{self.tls_port} ssl;
    server_name {SNI};
    ssl_protocols TLSv1.2 TLSv1.3;   # 1.22's default stops at TLSv1.2; hostvisor negotiates 1.3
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header Forwarded "for=$remote_addr;host=\\"$http_host\\";proto=$scheme";
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
    }}
  }}
}}
""")
        self.proc = None
        self.version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        r = subprocess.run(["nginx", "-t", "-q", "-p", d, "-e", f"{d}/error.log", "-c", self.conf],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BenchError(f"nginx -t: {r.stderr.strip()}")

    def start(self):
        d = self.dir
        self.proc = spawn([*taskset(self.cpus), "nginx", "-p", d, "-e", f"{d}/error.log", "-c", self.conf],
                          "nginx.log")
        deadline = time.monotonic() + 30
        while not self.workers():
            if self.proc.poll() is not None:
                raise BenchError(f"nginx exited with {self.proc.returncode}; see {d}/error.log")
            if time.monotonic() > deadline:
                raise BenchError("nginx started no worker in time")
            time.sleep(0.02)
        wait_http(self.port, deadline)
        wait_http(self.tls_port, deadline, tls=True)

    def workers(self):
        return children(self.proc.pid) if self.proc else []

    def pids(self):
        return [self.proc.pid, *self.workers()]

    def restart(self):
        self.stop()
        self.start()

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)   # fast shutdown: master and workers
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        kill_group(self.proc)                  # workers share the master's process group
        self.proc = None


# ---------------------------------------------------------------------------
# measurements

class Runner:
    def __init__(self, args, tools, load_cpus):
        self.a = args
        self.loadgen = tools["loadgen"]
        self.load_cpus = load_cpus
        self.backend_pid = self.backend_port = None
        self.proxy_cpus = set()

    def loadgen_run(self, mode, port, tls, pids, extra):
        cmd = [*taskset(self.load_cpus), self.loadgen, mode, "--target", f"127.0.0.1:{port}",
               "--host-header", SNI, "--path", "/echo"]
        if tls:
            cmd += ["--tls", "--sni", SNI]
        for p in pids:
            cmd += ["--pid", f"proxy:{p}"]
        if self.backend_pid:
            cmd += ["--pid", f"backend:{self.backend_pid}"]
        if mode == "echo":
            for t in kworker_tids():
                cmd += ["--pid", f"kworkers:{t}"]
        cmd += [str(x) for x in extra]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
        if r.returncode != 0:
            raise BenchError(f"loadgen {mode} on :{port}: {r.stderr.strip()[:500]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    @staticmethod
    def other_load(res, seconds, extra_ours=0.0):
        ours = res.get("client_cpu_s", 0) + extra_ours
        for g in res.get("cpu", {}).values():
            ours += g["run_s"]
        return max(0.0, (res["machine_busy_s"] - ours) / max(seconds, 1e-9))

    def attempt(self, what, fn):
        """Runs fn() after waiting for quiet; repeats (up to --retries more times) while
        other processes took more than --max-other cores during it; keeps the run with
        the least outside load."""
        best = None
        for i in range(1 + self.a.retries):
            wait_quiet(self.a.wait_quiet, self.a.quiet)
            t0 = time.monotonic()
            res = fn()
            if best is None or res["other_cores"] < best["other_cores"]:
                best = res
            if res["other_cores"] <= self.a.max_other or WAIT_LEFT[0] <= 0:
                break
            WAIT_LEFT[0] -= time.monotonic() - t0   # a repeat is paid from the same budget
            log(f"  {what}: {res['other_cores']:.2f} cores of outside load during the run; "
                f"{'again' if i < self.a.retries else 'keeping the least disturbed run'}")
        best["attempts"] = i + 1
        return best

    def echo(self, port, tls, pids):
        def fn():
            r = self.loadgen_run("echo", port, tls, pids, ["--conns", self.a.conns, "--seconds", self.a.seconds,
                                                            "--warmup", self.a.warmup, "--size", self.a.size,
                                                            "--rate", self.a.rate])
            r["other_cores"] = self.other_load(r, r["seconds"])
            p = r["cpu"].get("proxy")
            k = r["cpu"].get("kworkers")
            r["kworker_us_per_msg"] = (k["run_s"] / r["messages"] * 1e6) if k else 0.0
            if p:
                # The proxy process plus the kernel's workqueue threads (see kworker_tids).
                r["proxy_process_us_per_msg"] = p["run_s"] / r["messages"] * 1e6
                r["proxy_us_per_msg"] = r["proxy_process_us_per_msg"] + r["kworker_us_per_msg"]
                r["proxy_user_us_per_msg"] = p["user_s"] / r["messages"] * 1e6
                r["proxy_sys_us_per_msg"] = p["system_s"] / r["messages"] * 1e6
                r["proxy_core_busy"] = p["run_s"] / r["seconds"]
            b = r["cpu"].get("backend")
            r["load_core_busy"] = (r["client_cpu_s"] + (b["run_s"] if b else 0)) / r["seconds"]
            return r
        return self.attempt("echo", fn)

    def rtt(self, port, tls, pids, same_cpu=True):
        """One connection, one message at a time. same_cpu: the proxy is moved onto the
        load CPU for the run, so client, proxy and backend share one CPU: a round trip
        then has no cross-CPU wake-ups (in this VM each costs ~15-20 µs and would drown
        what the proxy itself adds). Otherwise the proxy stays on its own CPU."""
        if same_cpu and self.load_cpus:
            for p in pids:
                pin(p, self.load_cpus)
            try:
                return self.rtt(port, tls, pids, same_cpu=False)
            finally:
                for p in pids:
                    pin(p, self.proxy_cpus)

        def fn():
            r = self.loadgen_run("rtt", port, tls, pids, ["--count", self.a.rtt_count,
                                                           "--warmup-count", self.a.rtt_count // 10,
                                                           "--size", self.a.size])
            r["other_cores"] = self.other_load(r, r["seconds"])
            return r
        return self.attempt("rtt", fn)

    def idle(self, port, tls, pids):
        r = self.loadgen_run("idle", port, tls, pids, ["--conns", self.a.idle_conns, "--settle", self.a.settle,
                                                        "--size", self.a.size])
        if r["opened"] != self.a.idle_conns or r["alive"] != r["opened"]:
            raise BenchError(f"idle {'wss' if tls else 'ws'} on :{port}: {r['opened']} opened, {r['alive']} alive "
                             f"of {self.a.idle_conns} ({r['first_error']})")
        return r

    SYSCALLS = ("recvfrom", "sendto", "recvmsg", "sendmsg", "read", "write", "readv", "writev",
                "epoll_wait", "epoll_ctl", "connect", "accept4", "close")

    def syscalls(self, port, pids, http):
        """Syscalls the proxy makes per ws message (or per HTTP request): `perf stat` on the
        syscall tracepoints of its processes, around a separate 5 s run (not a measured one)."""
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for n in self.SYSCALLS]
        out = os.path.join(ROOT, f"perf-stat-{port}.csv")
        perf = ["perf", "stat", "-x,", "-o", out, "-e", ",".join(events), "-p", ",".join(map(str, pids)), "--"]
        if http:
            r = subprocess.run(perf + [*taskset(self.load_cpus), "wrk", "-t1", f"-c{self.a.conns}", "-d5s",
                                       "-H", f"Host: {SNI}", f"http://127.0.0.1:{port}/"],
                               capture_output=True, text=True, timeout=120, cwd=ROOT)
            m = re.search(r"(\d+) requests in", r.stdout)
            count = int(m.group(1)) if m else 0
        else:
            cmd = perf + [*taskset(self.load_cpus), self.loadgen, "echo", "--target", f"127.0.0.1:{port}",
                          "--host-header", SNI, "--path", "/echo", "--conns", str(self.a.conns), "--seconds", "5",
                          "--warmup", "0", "--size", str(self.a.size)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
            try:
                count = json.loads(r.stdout.strip().splitlines()[-1])["messages"]
            except (ValueError, IndexError, KeyError):
                count = 0
        counts = {}
        try:
            with open(out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) > 2 and parts[0].isdigit():
                        counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = int(parts[0])
        except OSError:
            pass
        if r.returncode != 0 or not count or "sys_enter" not in counts:
            log(f"  (syscall counts unavailable: {r.stderr.strip()[:200]})")
            return None
        per = {k: v / count for k, v in counts.items() if v}
        return {"count": count, "total": per.pop("sys_enter"), "by_name": per}

    def backend_accepts(self):
        """Connections the backend has accepted so far (it answers GET /__bench/accepts;
        this request's own connection is counted too)."""
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.backend_port, timeout=5)
        try:
            c.request("GET", "/__bench/accepts")
            return int(c.getresponse().read())
        finally:
            c.close()

    def wrk(self, port, pids):
        def fn():
            url = f"http://127.0.0.1:{port}/"
            cmd = [*taskset(self.load_cpus), "wrk", "-t1", f"-c{self.a.conns}", f"-d{self.a.seconds}s",
                   "--latency", "-H", f"Host: {SNI}", url]
            groups = {"proxy": pids, "backend": [self.backend_pid] if self.backend_pid else []}
            acc0 = self.backend_accepts()
            c0 = {g: [proc_cpu(p) for p in ps] for g, ps in groups.items()}
            m0 = machine_cpu()
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
            secs = time.monotonic() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            m1 = machine_cpu()
            c1 = {g: [proc_cpu(p) for p in ps] for g, ps in groups.items()}
            acc1 = self.backend_accepts()
            if out.returncode != 0:
                raise BenchError(f"wrk: {out.stderr.strip()[:300]}")
            text = out.stdout
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
            total = int(re.search(r"(\d+) requests in", text).group(1))
            lat = {}
            for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
                lat[p] = float(v) * {"us": 1, "ms": 1e3, "s": 1e6}[u]
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
            errs = re.search(r"Socket errors: (.*)", text)
            cpu = {}
            for g in groups:
                run = sum(b[0] - a[0] for a, b in zip(c0[g], c1[g]))
                user = sum(b[1] - a[1] for a, b in zip(c0[g], c1[g]))
                sys_ = sum(b[2] - a[2] for a, b in zip(c0[g], c1[g]))
                cpu[g] = {"run_s": run, "user_s": user, "system_s": sys_}
            wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
            r = {"rps": rps, "requests": total, "p50_us": lat.get("50"), "p99_us": lat.get("99"),
                 "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errs.group(1) if errs else "",
                 "upstream_connects": acc1 - acc0 - 1,   # minus the second query's own
                 "cpu": cpu, "client_cpu_s": wrk_cpu, "machine_busy_s": m1[0] - m0[0], "seconds": secs}
            r["other_cores"] = self.other_load(r, secs)
            if pids:
                r["proxy_us_per_req"] = cpu["proxy"]["run_s"] / max(1, total) * 1e6
                r["proxy_core_busy"] = cpu["proxy"]["run_s"] / secs
            if r["non_2xx"] or r["socket_errors"]:
                raise BenchError(f"wrk on :{port}: {r['non_2xx']} non-2xx, socket errors {r['socket_errors']}")
            return r
        return self.attempt("wrk", fn)


# ---------------------------------------------------------------------------
# report

def med(rounds, key, sub=None):
    vals = [(r[key][sub] if sub else r[key]) for r in rounds if r.get(key) is not None]
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt_num(v, unit="", digits=None):
    if v is None:
        return "—"
    if digits is None:
        digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    s = f"{v:,.{digits}f}"
    return f"{s} {unit}".strip()


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def build_report(res, meta, args):
    R = res["rounds"]

    def m(test, side, key):
        return med([r[test][side] for r in R if side in r.get(test, {})], key)

    def add(x, base):
        return None if x is None or base is None else x - base

    rows = []

    def row(label, d, h, n, unit="", digits=None):
        rows.append((label, fmt_num(d, unit, digits), fmt_num(h, unit, digits), fmt_num(n, unit, digits), ratio(h, n)))

    def text_row(label, d, h, n):
        rows.append((label, d, h, n, "—"))

    sides = ("direct", "hostvisor", "nginx")
    row(f"ws echo, {args.conns} conns, {args.size} B: messages/s ↑", *(m("echo_ws", s, "msgs_per_s") for s in sides))
    row("… proxy CPU per message ↓", None, m("echo_ws", "hostvisor", "proxy_us_per_msg"),
        m("echo_ws", "nginx", "proxy_us_per_msg"), "µs")
    text_row("… of which user + kernel + kernel threads", "—", *(
        f"{fmt_num(m('echo_ws', s, 'proxy_user_us_per_msg'))} + {fmt_num(m('echo_ws', s, 'proxy_sys_us_per_msg'))}"
        f" + {fmt_num(m('echo_ws', s, 'kworker_us_per_msg'))} µs"
        for s in ("hostvisor", "nginx")))
    sc = res.get("syscalls", {})

    def sys_per(side, kind):
        r = (sc.get(side) or {}).get(kind)
        return r["total"] if r else None
    row("… proxy syscalls per message ↓", None, sys_per("hostvisor", "ws"), sys_per("nginx", "ws"))
    row(f"wss echo, {args.conns} conns, {args.size} B: messages/s ↑", None,
        m("echo_wss", "hostvisor", "msgs_per_s"), m("echo_wss", "nginx", "msgs_per_s"))
    row("… proxy CPU per message ↓", None, m("echo_wss", "hostvisor", "proxy_us_per_msg"),
        m("echo_wss", "nginx", "proxy_us_per_msg"), "µs")
    d50, h50, n50 = (m("rtt_ws", s, "p50_us") for s in sides)
    d99, h99, n99 = (m("rtt_ws", s, "p99_us") for s in sides)
    row("ws round trip, 1 conn (all on one CPU): p50 ↓", d50, h50, n50, "µs")
    row("… p99 ↓", d99, h99, n99, "µs")
    row("… added p50 over direct ↓", None, add(h50, d50), add(n50, d50), "µs")
    row("… added p99 over direct ↓", None, add(h99, d99), add(n99, d99), "µs")
    hs50, ns50 = m("rtt_wss", "hostvisor", "p50_us"), m("rtt_wss", "nginx", "p50_us")
    sd50, sh50, sn50 = (m("rtt_split", s, "p50_us") for s in sides)
    sd99, sh99, sn99 = (m("rtt_split", s, "p99_us") for s in sides)
    rows.append(("wss round trip, 1 conn (one CPU): p50 (added over direct ws) ↓", "—",
                 f"{fmt_num(hs50, 'µs')} (+{fmt_num(add(hs50, d50))})",
                 f"{fmt_num(ns50, 'µs')} (+{fmt_num(add(ns50, d50))})", ratio(hs50, ns50)))
    if sd50 is not None:
        rows.append(("ws round trip, 1 conn, proxy on its own CPU: p50 / p99 (added p50) ↓",
                     f"{fmt_num(sd50)} / {fmt_num(sd99)} µs",
                     f"{fmt_num(sh50)} / {fmt_num(sh99)} µs (+{fmt_num(add(sh50, sd50))})",
                     f"{fmt_num(sn50)} / {fmt_num(sn99)} µs (+{fmt_num(add(sn50, sd50))})", ratio(sh50, sn50)))
    idle = res["idle"]

    def kb(side, kind):
        r = idle.get(side, {}).get(kind)
        return r["bytes_per_conn"] / 1024 if r else None
    row(f"RSS per idle ws tunnel, {args.idle_conns:,} conns ↓", None, kb("hostvisor", "ws"), kb("nginx", "ws"), "KB", 1)
    row(f"RSS per idle wss tunnel, {args.idle_conns:,} conns ↓", None, kb("hostvisor", "wss"), kb("nginx", "wss"),
        "KB", 1)
    row(f"HTTP keep-alive (wrk -t1 -c{args.conns}): requests/s ↑", *(m("wrk", s, "rps") for s in sides))
    row("… proxy CPU per request ↓", None, m("wrk", "hostvisor", "proxy_us_per_req"),
        m("wrk", "nginx", "proxy_us_per_req"), "µs")
    row("… proxy syscalls per request ↓", None, sys_per("hostvisor", "http"), sys_per("nginx", "http"))

    def per_k(side):
        v = [r["wrk"][side] for r in R if side in r.get("wrk", {})]
        v = [x["upstream_connects"] / x["requests"] * 1000 for x in v if x.get("upstream_connects") is not None]
        return statistics.median(v) if v else None
    row("… new upstream connections per 1,000 requests ↓", per_k("direct"), per_k("hostvisor"), per_k("nginx"))
    text_row("… wrk latency p50 / p99", *(f"{fmt_num(m('wrk', s, 'p50_us'))} / {fmt_num(m('wrk', s, 'p99_us'))} µs"
                                         for s in sides))

    def verdict(ok):
        return "—" if ok is None else ("**pass**" if ok else "**MISS**")
    hc, nc = m("echo_ws", "hostvisor", "proxy_us_per_msg"), m("echo_ws", "nginx", "proxy_us_per_msg")
    hr, nr = m("wrk", "hostvisor", "rps"), m("wrk", "nginx", "rps")
    hw, nw, hs, ns = kb("hostvisor", "ws"), kb("nginx", "ws"), kb("hostvisor", "wss"), kb("nginx", "wss")
    targets = [
        ("CPU per ws message ≤ 0.8× nginx's", f"{ratio(hc, nc)} ({fmt_num(hc)} vs {fmt_num(nc)} µs)",
         verdict(None if hc is None or nc is None else hc <= 0.8 * nc)),
        ("added p50 ≤ nginx's", f"+{fmt_num(add(h50, d50))} vs +{fmt_num(add(n50, d50))} µs",
         verdict(None if h50 is None or n50 is None else h50 <= n50)),
        ("≤ 4 KB per idle ws tunnel", f"{fmt_num(hw, 'KB', 1)} (nginx {fmt_num(nw, 'KB', 1)})",
         verdict(None if hw is None else hw <= 4)),
        ("≤ 12 KB per idle wss tunnel", f"{fmt_num(hs, 'KB', 1)} (nginx {fmt_num(ns, 'KB', 1)})",
         verdict(None if hs is None else hs <= 12)),
        ("HTTP requests/s ≥ nginx's", f"{ratio(hr, nr)} ({fmt_num(hr)} vs {fmt_num(nr)})",
         verdict(None if hr is None or nr is None else hr >= nr)),
    ]

    spread = []
    for test, key, label in (("echo_ws", "proxy_us_per_msg", "ws CPU µs/msg"), ("echo_ws", "msgs_per_s", "ws msgs/s"),
                             ("rtt_ws", "p50_us", "ws p50 µs"), ("wrk", "rps", "wrk req/s")):
        parts = []
        for s in sides:
            vals = [r[test][s][key] for r in R if s in r.get(test, {}) and r[test][s].get(key) is not None]
            if vals:
                parts.append(f"{s} " + ", ".join(fmt_num(v) for v in vals))
        if parts:
            spread.append(f"{label}: " + "; ".join(parts))
    paired = []
    for test, key, label in (("echo_ws", "proxy_us_per_msg", "ws CPU/msg"), ("echo_wss", "proxy_us_per_msg", "wss CPU/msg"),
                             ("wrk", "rps", "wrk req/s")):
        v = [r[test]["hostvisor"][key] / r[test]["nginx"][key] for r in R
             if "hostvisor" in r.get(test, {}) and "nginx" in r.get(test, {}) and r[test]["nginx"].get(key)]
        if v:
            paired.append(f"{label} " + ", ".join(f"{x:.2f}" for x in v))
    if paired:
        spread.append("hostvisor ÷ nginx per round: " + "; ".join(paired))
    others = [r[t][s]["other_cores"] for r in R for t in r for s in r[t]]
    busy = []
    for s in ("hostvisor", "nginx"):
        vals = [r["echo_ws"][s]["proxy_core_busy"] for r in R if s in r.get("echo_ws", {})]
        loadv = [r["echo_ws"][s]["load_core_busy"] for r in R if s in r.get("echo_ws", {})]
        if vals:
            busy.append(f"{s}'s CPU {statistics.median(vals):.0%} busy, backend + loadgen CPU "
                        f"{statistics.median(loadv):.0%}")
    syscall_notes = []
    for s in ("hostvisor", "nginx"):
        for kind, what in (("ws", "ws message"), ("http", "HTTP request")):
            r = (sc.get(s) or {}).get(kind)
            if r:
                top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["by_name"].items(), key=lambda kv: -kv[1])
                                if v >= 0.05)
                syscall_notes.append(f"{s} per {what}: {top}")

    lines = [f"### Proxy benchmark — {meta['date']}", "",
             "| metric | direct | hostvisor | nginx | hostvisor/nginx |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "↑ higher is better, ↓ lower is better; the ratio is hostvisor ÷ nginx. KB = 1,024 bytes. "
              f"Medians of {len(R)} round(s); idle RSS: one fresh proxy process per figure.", "",
              "| target (issue 4) | measured | |", "| --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in targets]
    lines += [""]
    if spread:
        lines += ["Spread over rounds — " + " · ".join(spread) + ".", ""]
    if busy:
        lines += ["During the ws echo runs: " + "; ".join(busy) + ".", ""]
    if syscall_notes:
        lines += ["Syscalls (perf stat on the syscall tracepoints, separate 5 s runs) — " + " · ".join(syscall_notes)
                  + ".", ""]
    if others:
        lines += [f"Outside load during the measured runs (the machine's busy time minus the benchmark's own "
                  f"processes, in cores of {os.cpu_count()}): median {statistics.median(others):.2f}, max "
                  f"{max(others):.2f}.", ""]
    lines += [f"Setup: {meta['setup']}", "", f"Machine: {meta['machine']}", "", f"Reproduce: `{meta['reproduce']}`"]
    return "\n".join(lines) + "\n", {"targets": targets, "rows": rows}


def update_docs(block):
    """Rewrites only the text between the proxy-results markers, re-reading the file
    right before writing (another benchmark may be editing its own section)."""
    with open(DOCS) as f:
        text = f.read()
    if BEGIN not in text or END not in text:
        raise BenchError(f"{DOCS} has no {BEGIN} … {END} block in its Proxy section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + block + END + tail
    tmp = DOCS + f".tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, DOCS)
    log(f"updated the proxy results block in {DOCS}")


def machine_facts(args, binary):
    try:
        with open("/proc/cpuinfo") as f:
            model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        model = "?"
    try:
        with open("/etc/os-release") as f:
            osname = re.search(r'PRETTY_NAME="(.*)"', f.read()).group(1)
    except (OSError, AttributeError):
        osname = "?"
    # `hostvisor serve` runs the daemon binary beside it (hostvisord): that is
    # the one measured, so its build is the one named.
    daemon = os.path.join(os.path.dirname(binary), "hostvisord")
    if os.path.exists(daemon):
        binary = daemon
    with open(binary, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()[:12]
    try:
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "src"], capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        rev, dirty = "?", ""
    built = datetime.datetime.fromtimestamp(os.path.getmtime(binary)).strftime("%Y-%m-%d %H:%M")
    return (f"{os.cpu_count()} CPUs ({model}), Debian: {osname}, kernel {platform.release()}; hostvisor binary "
            f"`{binary}` built {built} (sha256 {sha}; repo at {rev}{' + uncommitted changes in src/' if dirty else ''})")


# ---------------------------------------------------------------------------

def main():
    global ROOT
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "hostvisor"), help="hostvisor binary")
    ap.add_argument("--tools", default=os.path.join(REPO, "build", "bench-proxy"),
                    help="dir with loadgen and echo_backend (run.sh builds them)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the throughput/latency/wrk tests")
    ap.add_argument("--seconds", type=float, default=10, help="length of each throughput run")
    ap.add_argument("--warmup", type=float, default=2, help="warm-up before each throughput window")
    ap.add_argument("--conns", type=int, default=64, help="connections for ws echo and wrk")
    ap.add_argument("--size", type=int, default=64, help="WebSocket message size, bytes")
    ap.add_argument("--rate", type=float, default=0,
                    help="ws/wss echo: offered messages/s over all connections (0 = closed loop, as fast as it goes)")
    ap.add_argument("--rtt-count", type=int, default=10000, help="round trips at 1 connection")
    ap.add_argument("--idle-conns", type=int, default=8000, help="idle tunnels for the RSS figures")
    ap.add_argument("--settle", type=float, default=3, help="seconds before reading RSS")
    ap.add_argument("--proxy-cpu", type=int, default=1, help="CPU both proxies are pinned to")
    ap.add_argument("--load-cpus", default="0", help="CPUs of the backend, loadgen and wrk (comma list)")
    ap.add_argument("--hv-loops", default="1",
                    help="hostvisor proxy loops: N ([proxy] threads = N in its config) or 'auto' (no key: "
                         "the daemon's default, one per CPU of its affinity mask, i.e. of --proxy-cpu)")
    ap.add_argument("--hv-offload", default="auto", choices=("auto", "sockmap", "off"),
                    help="hostvisor's [proxy] tunnel_offload (BPF sockmap copy of plain ws tunnels)")
    ap.add_argument("--hv-tls-takeover", default="default", choices=("default", "auto", "off"),
                    help="hostvisor's [proxy] tls_takeover (wss on TLS 1.3 continues on the proxy's own "
                         "record layer, OpenSSL's SSL freed); default: no key (the binary's default: auto, "
                         "and what binaries without the key need)")
    ap.add_argument("--wait-quiet", type=float, default=60, help="max seconds to wait for an idle machine, each time")
    ap.add_argument("--wait-budget", type=float, default=900,
                    help="max seconds of waiting for quiet (and of repeating disturbed runs) in the whole run")
    ap.add_argument("--quiet", type=float, default=0.15, help="busy cores that count as idle")
    ap.add_argument("--max-other", type=float, default=0.10,
                    help="outside load (cores) above which a run is repeated")
    ap.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run")
    ap.add_argument("--skip", default="",
                    help="comma list of tests to skip: echo_ws,echo_wss,rtt_ws,rtt_wss,rtt_split,wrk,idle,syscalls")
    ap.add_argument("--perf", action="store_true", help="also record a perf profile of each proxy under ws echo")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 s, 1,000 idle tunnels")
    ap.add_argument("--update-docs", action="store_true", help="rewrite the results block in docs/benchmarks.md")
    ap.add_argument("--out", default=HERE, help="where results-DATE.md/.json go")
    ap.add_argument("--sweep-stale", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sweep_stale:
        sweep_stale()
        return 0
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.idle_conns, args.rtt_count = 1, 3, 1, 1000, 3000
        args.wait_quiet, args.retries = min(args.wait_quiet, 10), 0
    skip = set(filter(None, args.skip.split(",")))
    WAIT_LEFT[0] = args.wait_budget

    # file descriptors: the proxy holds two per tunnel, the client one
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = 2 * args.idle_conns + 200
    if hard < need:
        raise BenchError(f"RLIMIT_NOFILE hard limit {hard} < {need} needed by a proxy holding "
                         f"{args.idle_conns} tunnels; lower --idle-conns or raise the limit")

    ncpu = os.cpu_count()
    if ncpu >= 2:
        proxy_cpus = {args.proxy_cpu}
        load_cpus = {int(c) for c in args.load_cpus.split(",")}
        if proxy_cpus & load_cpus:
            raise BenchError("--proxy-cpu must not be among --load-cpus")
    else:
        proxy_cpus = load_cpus = set()
        log("warning: 1 CPU: nothing is pinned; the proxy shares the CPU with the load")

    tools = {k: os.path.join(args.tools, k) for k in ("loadgen", "echo_backend")}
    for k, p in tools.items():
        if not os.access(p, os.R_OK):
            raise BenchError(f"missing {p}: run bench/proxy/run.sh (it builds the tools)")
    binary = os.path.abspath(args.bin)

    sweep_stale()
    ROOT = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=HOME)
    os.chmod(ROOT, 0o755)
    backend = os.path.join(ROOT, "echo_backend")
    shutil.copy2(tools["echo_backend"], backend)
    os.chmod(backend, 0o755)
    cert, key = os.path.join(ROOT, "cert.pem"), os.path.join(ROOT, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", f"/CN={SNI}", "-addext", f"subjectAltName=DNS:{SNI}",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"openssl req: {r.stderr.strip()}")

    hv = Hostvisor(binary, proxy_cpus, args.hv_loops, cert, key, args.hv_offload, args.hv_tls_takeover)
    ng = None
    results = {"rounds": [], "idle": {}}
    try:
        log(f"temp dir {ROOT}; proxies on CPU {sorted(proxy_cpus)}, backend + load on CPU {sorted(load_cpus)}")
        hv.start()
        hv.create_backend(backend, load_cpus)
        loops = hv.loops_running()
        log(f"hostvisor pid {hv.proc.pid}: proxy :{hv.port} (TLS :{hv.tls_port}), {loops} proxy loop(s); "
            f"echo backend pid {hv.backend_pid} on :{hv.backend_port}")
        ng = Nginx(proxy_cpus, hv.backend_port, cert, key, hard)
        ng.start()
        log(f"{ng.version}: master {ng.proc.pid}, worker(s) {ng.workers()} on :{ng.port} (TLS :{ng.tls_port})")
        run = Runner(args, tools, load_cpus)
        run.backend_pid = hv.backend_pid
        run.backend_port = hv.backend_port
        run.proxy_cpus = proxy_cpus
        sides = {"direct": (hv.backend_port, None, lambda: []),
                 "hostvisor": (hv.port, hv.tls_port, hv.pids),
                 "nginx": (ng.port, ng.tls_port, ng.pids)}

        # Idle tunnels first, each on a fresh proxy process: memory a process freed
        # earlier (and malloc kept) would otherwise hide part of the cost.
        if "idle" not in skip:
            for name, proxy in (("hostvisor", hv), ("nginx", ng)):
                results["idle"][name] = {}
                for tls in (False, True):
                    proxy.restart()
                    port = sides[name][1] if tls else sides[name][0]
                    wait_quiet(args.wait_quiet, args.quiet)
                    res = run.idle(port, tls, sides[name][2]())
                    results["idle"][name]["wss" if tls else "ws"] = res
                    log(f"idle {'wss' if tls else 'ws '} {name:9}: {res['bytes_per_conn'] / 1024:6.1f} KB per tunnel "
                        f"(RSS {res['rss_before_kb'] / 1024:.1f} → {res['rss_after_kb'] / 1024:.1f} MiB, "
                        f"{res['alive']} alive)")
            if hv.loops_running() != loops:
                log(f"note: {hv.loops_running()} proxy loops after the restarts")

        order = ["direct", "hostvisor", "nginx"]
        ciphers = {}
        for rnd in range(args.rounds):
            log(f"round {rnd + 1}/{args.rounds}")
            rr = {"echo_ws": {}, "echo_wss": {}, "rtt_ws": {}, "rtt_wss": {}, "rtt_split": {}, "wrk": {}}
            # Each metric's sides run back to back (seconds apart, so slow drift of the
            # machine hits them alike); who goes first rotates every round.
            rot = order[rnd % 3:] + order[:rnd % 3]
            for s in rot:
                port, tls_port, pids = sides[s]
                if "echo_ws" not in skip:
                    e = rr["echo_ws"][s] = run.echo(port, False, pids())
                    log(f"  ws echo   {s:9}: {e['msgs_per_s']:9,.0f} msg/s"
                        + (f", proxy {e['proxy_us_per_msg']:.2f} µs/msg ({e['proxy_core_busy']:.0%} of its CPU; "
                           f"kworkers {e['kworker_us_per_msg']:.2f} of it)"
                           if "proxy_us_per_msg" in e else "") + f", outside load {e['other_cores']:.2f}")
            for s in rot:
                port, tls_port, pids = sides[s]
                if tls_port and "echo_wss" not in skip:
                    e = rr["echo_wss"][s] = run.echo(tls_port, True, pids())
                    log(f"  wss echo  {s:9}: {e['msgs_per_s']:9,.0f} msg/s, proxy {e['proxy_us_per_msg']:.2f} µs/msg "
                        f"({e['cipher']}), outside load {e['other_cores']:.2f}")
                    ciphers[s] = e["cipher"]
            for s in rot:
                port, tls_port, pids = sides[s]
                if "rtt_ws" not in skip:
                    e = rr["rtt_ws"][s] = run.rtt(port, False, pids())
                    log(f"  ws rtt    {s:9}: p50 {e['p50_us']:.1f} µs, p99 {e['p99_us']:.1f} µs")
                if tls_port and "rtt_wss" not in skip:
                    e = rr["rtt_wss"][s] = run.rtt(tls_port, True, pids())
                    log(f"  wss rtt   {s:9}: p50 {e['p50_us']:.1f} µs, p99 {e['p99_us']:.1f} µs")
            for s in rot:
                port, tls_port, pids = sides[s]
                if "rtt_split" not in skip and proxy_cpus:
                    e = rr["rtt_split"][s] = run.rtt(port, False, pids(), same_cpu=False)
                    log(f"  ws rtt, proxy on its own CPU {s:9}: p50 {e['p50_us']:.1f} µs, p99 {e['p99_us']:.1f} µs")
            for s in rot:
                port, tls_port, pids = sides[s]
                if "wrk" not in skip:
                    e = rr["wrk"][s] = run.wrk(port, pids())
                    log(f"  wrk       {s:9}: {e['rps']:9,.0f} req/s"
                        + (f", proxy {e['proxy_us_per_req']:.2f} µs/req" if "proxy_us_per_req" in e else "")
                        + f", {e['upstream_connects']} connections accepted by the backend")
            results["rounds"].append(rr)

        results["syscalls"] = {}
        if "syscalls" not in skip and shutil.which("perf"):
            for s in ("hostvisor", "nginx"):
                port, _, pids = sides[s]
                wait_quiet(args.wait_quiet, args.quiet)
                ws = run.syscalls(port, pids(), http=False)
                wait_quiet(args.wait_quiet, args.quiet)
                ht = run.syscalls(port, pids(), http=True)
                results["syscalls"][s] = {"ws": ws, "http": ht}
                for what, r in (("ws message", ws), ("HTTP request", ht)):
                    if r:
                        top = ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["by_name"].items(), key=lambda kv: -kv[1]))
                        log(f"  syscalls  {s:9}: {r['total']:.2f} per {what} ({top})")

        if args.perf:
            for s in ("hostvisor", "nginx"):
                port, _, pids = sides[s]
                data = os.path.join(ROOT, f"perf-{s}.data")
                rec = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-o", data,
                                        "-p", ",".join(str(p) for p in pids()), "--", "sleep",
                                        str(args.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                run.loadgen_run("echo", port, False, pids(), ["--conns", args.conns, "--seconds", args.seconds,
                                                              "--warmup", 0.5, "--size", args.size])
                rec.wait(60)
                rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "sym",
                                      "-g", "none", "--percent-limit", "0.7"], capture_output=True, text=True)
                inc = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children", "--sort", "sym",
                                      "-g", "none"], capture_output=True, text=True)
                entries = [ln for ln in inc.stdout.splitlines()
                           if re.search(r"\] (__x64_sys_\w+|do_epoll_wait|asio::|ngx_\w+)$", ln.strip())]
                out = os.path.join(args.out, f"perf-{s}-{datetime.date.today().isoformat()}.txt")
                with open(out, "w") as f:
                    f.write(f"# {s} under ws echo ({args.conns} connections), perf record -e cpu-clock -g\n"
                            "# Inclusive share (children) of each syscall entry point:\n")
                    f.write("\n".join(entries[:25]) + "\n\n# Self time by symbol:\n")
                    f.write(rep.stdout)
                log(f"perf profile of {s} under ws echo: {out}")
    finally:
        log("cleaning up")
        try:
            if ng:
                ng.stop()
        finally:
            hv.stop()
            for p in STARTED:
                kill_group(p)
            sweep(ROOT + "/")
            remove_cgroup(getattr(hv, "cgroup", ""))
            shutil.rmtree(ROOT, ignore_errors=True)

    date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmd = "bench/proxy/run.sh" + (" --quick" if args.quick else "") + f" --hv-offload {args.hv_offload}"
    if args.hv_tls_takeover != "default":
        cmd += f" --hv-tls-takeover {args.hv_tls_takeover}"
    loops_text = (f"{loops} proxy loop(s) (`[proxy] threads = {args.hv_loops}`)" if args.hv_loops != "auto" else
                  f"{loops} proxy loop(s) (no `threads` key: one per CPU of its affinity mask)")
    loops_text += f", `tunnel_offload = \"{args.hv_offload}\"`"
    if args.hv_tls_takeover != "default":
        loops_text += f", `tls_takeover = \"{args.hv_tls_takeover}\"`"
    meta = {"date": date, "reproduce": cmd, "machine": machine_facts(args, binary),
            "setup": (f"hostvisor: {loops_text}, pinned to CPU {sorted(proxy_cpus)}; {ng.version if ng else 'nginx'} with "
                      f"`worker_processes 1` on the same CPU; backend (echo_backend, a hostvisor instance with route "
                      f"`/`), loadgen and wrk on CPU {sorted(load_cpus)}. ws/wss echo: {args.conns} connections, "
                      f"{args.size} B binary frames, one in flight per connection"
                      f"{f', {args.rate:,.0f} msg/s offered' if args.rate else ''}, {args.seconds:g} s after "
                      f"{args.warmup:g} s warm-up; CPU = schedstat run time of the proxy's processes plus the "
                      f"kernel's per-CPU kworker and ksoftirqd threads (where offloaded tunnels' bytes are sent) "
                      f"over the window ÷ messages. Round trips: {args.rtt_count:,} at 1 connection, client, proxy and backend on CPU "
                      f"{sorted(load_cpus)} (the proxy is moved there for the run; one row leaves it on its own CPU). Idle: {args.idle_conns:,} "
                      f"tunnels, VmRSS of the proxy's processes after − before ÷ tunnels. TLS 1.3, P-256 "
                      f"self-signed certificate, same for both.")}
    report, summary = build_report(results, meta, args)
    print(report)
    day = datetime.date.today().isoformat()
    suffix = "-quick" if args.quick else ""
    md = os.path.join(args.out, f"results-{day}{suffix}.md")
    with open(md, "w") as f:
        f.write(report)
    with open(os.path.join(args.out, f"results-{day}{suffix}.json"), "w") as f:
        json.dump({"meta": meta, "args": vars(args), "results": results}, f, indent=1, default=str)
    log(f"wrote {md}")
    if args.update_docs:
        update_docs(report)
    return 0


def on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
