#!/usr/bin/python3
"""What one cgroup migration costs on this host: a forked child writes itself into a
fresh cgroup's cgroup.procs (as hostvisor's spawn child does for v1 hierarchies) and
times that write. Without favordynmods each such write waits for an RCU grace period
(cgroup_threadgroup_rwsem: percpu_down_write -> rcu_sync_enter) unless another
migration ran just before, hence the gap between samples. Needs root; removes its
cgroup on the way out.

usage: cgroup_migration.py HIERARCHY_DIR [SAMPLES [GAP_SECONDS]]
  e.g. cgroup_migration.py /sys/fs/cgroup/memory 15 0.1
"""
import os
import statistics
import sys
import time


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    base = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    gap = float(sys.argv[3]) if len(sys.argv) > 3 else 0.1
    d = os.path.join(base, "hv-migration-probe-%d" % os.getpid())
    os.mkdir(d)
    out = []
    try:
        for _ in range(n):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                fd = os.open(d + "/cgroup.procs", os.O_WRONLY)
                t = time.perf_counter()
                os.write(fd, b"0")
                os.write(w, repr(time.perf_counter() - t).encode())
                os._exit(0)
            os.close(w)
            dt = float(os.read(r, 100) or "nan")
            os.close(r)
            os.waitpid(pid, 0)
            out.append(dt * 1000)
            time.sleep(gap)
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(d)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
    print("%s: median %.2f ms, min %.2f, max %.2f (%d samples, %.0f ms apart)"
          % (base, statistics.median(out), min(out), max(out), n, gap * 1000))


if __name__ == "__main__":
    main()
