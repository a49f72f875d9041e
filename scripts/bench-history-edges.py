#!/usr/bin/env python3
"""The daemon's CPU with and without topology history while it holds E edges, side by side in one run.

Usage (root): scripts/bench-history-edges.py [--hostscope build/hostscope] [--edges 10000] [--minutes 2] [--pairs 2]

Alternates without, with, without, with...: each run starts `hostscope agent` (tests/bench/agent-bench.yaml, or
tests/bench/agent-bench-history.yaml with its file in a fresh /var/tmp/hs-bench-hist.XXXXXX removed at the end),
opens one loopback connection to each of E listening ports (10000 and up, 16 bytes each way) and keeps them open,
so every edge has an open connection and gets a history row every minute (docs/topology.md, "History"). Once the
first minute boundary after the set-up has passed, it reads the agent's CPU time (user + system, /proc/PID/stat)
over `minutes` whole minutes: each such window holds exactly `minutes` history writes of E rows (snapshot, delta,
write, maintenance). Nothing else happens on the edges, so the difference between the two is the history's own
cost at E edges; the churn benchmark's event rate is measured separately (scripts/bench-churn-ab.sh ...
daemon-history).
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def rows_written(hostscope, path):
    if not os.path.exists(path):
        return 0
    out = subprocess.run([hostscope, "history", "status", "--path", path, "-o", "json"], capture_output=True,
                         text=True, check=False).stdout
    return json.loads(out)["counters"].get("rows_written", 0)


def open_edges(n, first_port, last_port):
    """n listeners on 127.0.0.1 in [first_port, last_port), one open connection to each (listener closed after)."""
    socks, made, port = [], 0, first_port
    while made < n and port < last_port:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            ls.bind(("127.0.0.1", port))
        except OSError:
            ls.close()
            port += 1
            continue
        port += 1
        ls.listen(1)
        c = socket.create_connection(ls.getsockname())
        s, _ = ls.accept()
        ls.close()
        c.sendall(b"x" * 16)
        s.recv(16)
        s.sendall(b"y" * 16)
        c.recv(16)
        socks += [c, s]
        made += 1
    return socks, made


def hold_edges(n):
    """Children holding n edges between them (two descriptors an edge; the hard RLIMIT_NOFILE may be low), on ports
    10000 and up, below the ephemeral range. Returns (edges made, a function that closes them all)."""
    per, kids, made, port = 5000, [], 0, 10000
    for k in range((n + per - 1) // per):
        want = min(per, n - k * per)
        ready_r, ready_w = os.pipe()
        stop_r, stop_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(stop_w)
            socks, got = open_edges(want, port, min(port + 2 * per, 32768))
            os.write(ready_w, str(got).encode())
            os.read(stop_r, 1)
            for s in socks:
                s.close()
            os._exit(0)
        os.close(ready_w)
        os.close(stop_r)
        made += int(os.read(ready_r, 32) or b"0")
        os.close(ready_r)
        kids.append((pid, stop_w))
        port += 2 * per

    def close():
        for pid, stop_w in kids:
            os.write(stop_w, b"x")
            os.close(stop_w)
            os.waitpid(pid, 0)

    return made, close


def run(o, history, workdir, i):
    cfg = os.path.join(ROOT, "tests/bench/agent-bench.yaml")
    db = ""
    if history:
        d = tempfile.mkdtemp(prefix="hs-bench-hist.", dir="/var/tmp")
        workdir.append(d)
        db = os.path.join(d, "history.db")
        with open(os.path.join(ROOT, "tests/bench/agent-bench-history.yaml")) as f:
            text = f.read().replace("HISTORY_DIR", d)
        cfg = os.path.join(d, "agent-bench-history.yaml")
        with open(cfg, "w") as f:
            f.write(text)
    err = tempfile.NamedTemporaryFile(prefix="hs-bench-edges-", dir="/tmp", delete=False)
    close_edges = None
    agent = subprocess.Popen([o.hostscope, "-v", "agent", "--config", cfg], stdout=subprocess.DEVNULL, stderr=err)
    try:
        for _ in range(600):
            with open(err.name) as f:
                if " running" in f.read():
                    break
            if agent.poll() is not None:
                sys.exit(f"agent exited: {open(err.name).read()}")
            time.sleep(0.05)
        made, close_edges = hold_edges(o.edges)
        # Start on a minute boundary plus 5 s: the interval holding the set-up is written, the window holds whole minutes.
        now = time.time()
        time.sleep(60 - now % 60 + 5)
        r0, c0, t0 = rows_written(o.hostscope, db) if history else 0, cpu_s(agent.pid), time.monotonic()
        time.sleep(60 * o.minutes)
        c1, t1 = cpu_s(agent.pid), time.monotonic()
        r1 = rows_written(o.hostscope, db) if history else 0
    finally:
        if close_edges:
            close_edges()
        agent.send_signal(signal.SIGINT)
        agent.wait()
        os.unlink(err.name)
    return {"run": i, "side": "with history" if history else "without", "edges": made, "cpu": c1 - c0,
            "core_pct": 100 * (c1 - c0) / (t1 - t0), "rows": r1 - r0}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hostscope", default=os.path.join(ROOT, "build/hostscope"))
    p.add_argument("--edges", type=int, default=10000)
    p.add_argument("--minutes", type=int, default=2)
    p.add_argument("--pairs", type=int, default=2)
    o = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (the agent loads BPF programs)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * 5000 + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workdir, results = [], []
    try:
        print(f"| run | agent | edges (open connections) | history rows written in the window | agent CPU over "
              f"{o.minutes} min | share of one core |")
        print("| --- | --- | --- | --- | --- | --- |")
        for i in range(1, o.pairs + 1):
            for history in (False, True):
                r = run(o, history, workdir, i)
                results.append(r)
                print(f"| {r['run']} | {r['side']} | {r['edges']} | {r['rows']} | {r['cpu']:.2f} s | "
                      f"{r['core_pct']:.3f}% |", flush=True)
    finally:
        for d in workdir:
            shutil.rmtree(d, ignore_errors=True)
    a = statistics.median(r["core_pct"] for r in results if r["side"] == "without")
    b = statistics.median(r["core_pct"] for r in results if r["side"] != "without")
    print(f"\nmedian share of one core: without {a:.3f}%, with history {b:.3f}%, difference {b - a:+.3f} points "
          f"({o.pairs} pairs, {o.edges} edges, {o.minutes} min windows)")


if __name__ == "__main__":
    main()
