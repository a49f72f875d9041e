#!/usr/bin/env bash
# `topology --cluster` at scale (no root needed): synthetic series of NODES nodes x EDGES series per node
# (scripts/cluster-openmetrics.py) written into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, a real
# Prometheus (Debian's) serving them on a free loopback port, and `hostscope topology --cluster -o json` timed end to
# end with its peak RSS. Writes the result into docs/benchmarks.md between the cluster-view markers.
# Usage: [COMPARE="label=/path/to/hostscope ..."] scripts/bench-cluster.sh [nodes] [edges-per-node] [rounds]
# Each round also replays the queries with a client that only reads the replies: Prometheus' own time, the floor.
set -euo pipefail
cd "$(dirname "$0")/.."
nodes=${1:-100}; per_node=${2:-1000}; rounds=${3:-5}; pods=10
build=${BUILD_DIR:-build}
[ -x "$build/hostscope" ] || cmake --build "$build" --target hostscope
work=$(mktemp -d /var/tmp/hs-bench-cluster.XXXXXX)
prom_pid=
cleanup() { [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

now=$(date +%s)
t0=$(date +%s.%N)
python3 scripts/cluster-openmetrics.py "$nodes" "$per_node" "$pods" "$now" > "$work/series.om"
promtool tsdb create-blocks-from openmetrics -q "$work/series.om" "$work/tsdb" > "$work/promtool.log" 2>&1
rm -f "$work/series.om"
t1=$(date +%s.%N)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 1h\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" > "$work/prometheus.log" 2>&1 &
prom_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 120); do curl -sf "$url/-/ready" > /dev/null && break; sleep 0.5; done
curl -sf "$url/-/ready" > /dev/null || { cat "$work/prometheus.log"; exit 1; }

md=$(mktemp); trap 'cleanup; rm -f "$md"' EXIT
# Every run evaluates at the series' own "now" (--at): their start sample is found by `offset 1h` only within
# Prometheus' 5-minute lookback, so a run at the wall clock would find no start a few minutes after the setup.
at=$(date -u -d "@$now" +%Y-%m-%dT%H:%M:%SZ)
python3 - "$build/hostscope" "$url" "$rounds" "$nodes" "$per_node" "$(python3 -c "print($t1 - $t0)")" "$at" "$now" \
  "$prom_pid" ${COMPARE:-} > "$md" <<'PY'
import json, os, re, statistics, subprocess, sys, threading, time, urllib.parse, urllib.request
exe, url, rounds, nodes, per_node, load_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
at, at_s, prom_pid = sys.argv[7], float(sys.argv[8]), int(sys.argv[9])
builds = [("this build", exe)] + [tuple(a.split("=", 1)) for a in sys.argv[10:]]  # COMPARE="label=/path/hostscope ..."
stats = {label: {"walls": [], "rss": [], "queries": [], "joins": [], "cpu": [], "prom_cpu": []} for label, _ in builds}
replay_cpu = []
tick = os.sysconf("SC_CLK_TCK")


def prom_cpu_s():
    # Prometheus' user + system time so far (fields 14 and 15 of /proc/PID/stat, after the command name).
    with open(f"/proc/{prom_pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick
edges, observed, replay, issued = 0, 0, [], []


def measured(label, path):
    # /usr/bin/time gives the child's own peak RSS (getrusage of all children would mix the builds).
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "maxrss_kib=%M cpu_s=%U+%S", path, "-vv", "topology", "--cluster", "--prometheus",
                        url, "--at", at, "-o", "json"], capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"{label}: topology --cluster failed: " + p.stderr[-2000:])
    rss = int(re.findall(r"maxrss_kib=(\d+)", p.stderr)[-1])
    cpu = sum(float(x) for x in re.findall(r"cpu_s=([\d.]+)\+([\d.]+)", p.stderr)[-1])
    return wall, rss, cpu, p.stdout, p.stderr


def prometheus_alone(queries, at):
    # The same queries, grouped as hostscope sends them (a family's start and end at once), each reply read whole
    # and dropped: what Prometheus itself takes to evaluate, encode and send them, the floor for any client.
    groups, by_family = [], {}
    for q in queries:
        m = re.match(r"^(?:last_over_time\()?(hostscope_\w+_total)(?:\[| offset)", q)
        if m and m.group(1) in by_family:
            by_family[m.group(1)].append(q)
            continue
        g = [q]
        groups.append(g)
        if m:
            by_family[m.group(1)] = g
    def get(q):
        u = url + "/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{at:.3f}"})
        with urllib.request.urlopen(u) as r:
            while r.read(1 << 20):
                pass
    t = time.monotonic()
    for g in groups:
        threads = [threading.Thread(target=get, args=(q,)) for q in g]
        for th in threads: th.start()
        for th in threads: th.join()
    return time.monotonic() - t


for i in range(rounds + 1):  # the first round warms Prometheus' caches and is not counted
    for label, path in builds:
        c0 = prom_cpu_s()
        wall, rss, cpu, out, err = measured(label, path)
        prom_cpu = prom_cpu_s() - c0
        if label == "this build":
            snap = json.loads(out)
            edges = len(snap["edges"])
            observed = sum(len(e.get("observed_by", [])) for e in snap["edges"])
            issued = re.findall(r"cluster: \d+ series in \d+ ms: (.*)", err)
            counts = [int(c) for c in re.findall(r"cluster: (\d+) series in \d+ ms: hostscope_connections_opened_total offset", err)]
            if counts != [int(nodes) * int(per_node)]:
                sys.exit(f"the window's start query found {counts} series, expected {int(nodes) * int(per_node)}")
        if i:
            s = stats[label]
            s["walls"].append(wall)
            s["rss"].append(rss)
            s["cpu"].append(cpu)
            s["prom_cpu"].append(prom_cpu)
            # -vv logs each query's time (request, Prometheus' evaluation, reading and checking the reply) and the join's.
            s["queries"].append(sum(int(m) for m in re.findall(r"cluster: \d+ series in (\d+) ms", err)))
            s["joins"].append(sum(int(m) for m in re.findall(r"joined into \d+ edges in (\d+) ms", err)))
    c0 = prom_cpu_s()
    alone = prometheus_alone(issued, at_s)
    if i:
        replay.append(alone)
        replay_cpu.append(prom_cpu_s() - c0)
print("| figure | value |")
print("| --- | --- |")
print(f"| nodes x series per node | {nodes} x {per_node} |")
print(f"| joined edges out / node observations merged | {edges:,} / {observed:,} |")
print(f"| queries per run / of them with {int(nodes) * int(per_node):,} series | {len(issued)} / "
      f"{sum(1 for q in issued if 'endpoint_info' not in q and 'build_info' not in q and 'failed' not in q)} |")
print(f"| **Prometheus alone**: the same queries by a client that only reads the replies, median of {rounds} | "
      f"{statistics.median(replay) * 1000:.0f} ms |")
print(f"| Prometheus' CPU time (user + system) for those queries, median | {statistics.median(replay_cpu):.1f} s |")
for label, _ in builds:
    s = stats[label]
    print(f"| `topology --cluster -o json` ({label}), end to end, median of {rounds} / slowest | "
          f"{statistics.median(s['walls']) * 1000:.0f} ms / {max(s['walls']) * 1000:.0f} ms |")
    print(f"| ({label}) the queries (evaluation, transfer, parsing the reply), each timed and summed: a family's two "
          f"run at once, so more than their wall time; median | {statistics.median(s['queries']):.0f} ms |")
    print(f"| ({label}) of which the join, median | {statistics.median(s['joins']):.0f} ms |")
    print(f"| ({label}) peak RSS | {max(s['rss']) / 1024:.0f} MiB |")
    print(f"| ({label}) CPU time (user + system) of hostscope / of Prometheus meanwhile, median | "
          f"{statistics.median(s['cpu']):.1f} s / {statistics.median(s['prom_cpu']):.1f} s |")
print(f"| series generated + TSDB blocks written (setup, not timed by the goal) | {load_s:.0f} s |")
PY
cat "$md"
cmd="${COMPARE:+COMPARE=\"$COMPARE\" }scripts/bench-cluster.sh $nodes $per_node $rounds"
stamp="$(date -u +%Y-%m-%d), $(git describe --always --dirty 2>/dev/null || echo unknown), $(prometheus --version 2>&1 | head -1 | cut -d' ' -f1-3), $(nproc) cores"
{ printf '## The cluster view at scale (`topology --cluster`)\n\nGoal: 100 nodes x 1,000 edges in at most 2 s end to end, with bounded memory.\n\n'
  printf 'Command: `%s` (%s)\n\n' "$cmd" "$stamp"; cat "$md"
  echo
  echo 'Each node has 10 pods (one service each, named by `hostscope_endpoint_info`); every cross-node edge is exported' \
    "twice, by the client's node (\`svc -> cluster-pods@address\`) and by the server's (\`cluster-pods@address -> svc\`)," \
    'as agents with `topology.network_ends: address` do, and the join names both ends and merges the two into one' \
    'edge. End to end is the whole command: its Prometheus queries (counts over a 1h window), the join and the JSON' \
    'output, with Prometheus on the same 2 cores.'
} | python3 scripts/bench-section.py cluster-view
