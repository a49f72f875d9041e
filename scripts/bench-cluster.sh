#!/usr/bin/env bash
# `topology --cluster` at scale (no root needed): synthetic series of NODES nodes x EDGES series per node
# (scripts/cluster-openmetrics.py) written into TSDB blocks by `promtool tsdb create-blocks-from openmetrics`, a real
# Prometheus (Debian's) serving them on a free loopback port, and `hostscope topology --cluster -o json` timed end to
# end with its peak RSS. Writes the result into docs/benchmarks.md between the cluster-view markers.
# Usage: scripts/bench-cluster.sh [nodes] [edges-per-node] [rounds]
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
python3 - "$build/hostscope" "$url" "$rounds" "$nodes" "$per_node" "$(python3 -c "print($t1 - $t0)")" > "$md" <<'PY'
import json, re, resource, statistics, subprocess, sys, time
exe, url, rounds, nodes, per_node, load_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
walls, rss, edges, observed, queries, joins = [], [], 0, 0, [], []
for i in range(rounds + 1):  # the first run warms Prometheus' caches and is not counted
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    p = subprocess.run([exe, "-vv", "topology", "--cluster", "--prometheus", url, "-o", "json"], capture_output=True,
                       text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit("topology --cluster failed: " + p.stderr)
    snap = json.loads(p.stdout)
    edges = len(snap["edges"])
    observed = sum(len(e.get("observed_by", [])) for e in snap["edges"])
    if i:
        walls.append(wall)
        # -vv logs each query's time (request, Prometheus' evaluation, reading and checking the reply) and the join's.
        queries.append(sum(int(m) for m in re.findall(r"cluster: \d+ series in (\d+) ms", p.stderr)))
        joins.append(sum(int(m) for m in re.findall(r"joined into \d+ edges in (\d+) ms", p.stderr)))
        rss.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # peak over the runs so far (KiB)
print("| figure | value |")
print("| --- | --- |")
print(f"| nodes x series per node | {nodes} x {per_node} |")
print(f"| joined edges out / node observations merged | {edges:,} / {observed:,} |")
print(f"| `topology --cluster -o json`, end to end, median of {rounds} | {statistics.median(walls) * 1000:.0f} ms |")
print(f"| the same, slowest | {max(walls) * 1000:.0f} ms |")
print(f"| the Prometheus queries (evaluation, transfer, parsing the reply), each timed and summed: a family's two run at once, so more than their wall time; median | {statistics.median(queries):.0f} ms |")
print(f"| of which the join, median | {statistics.median(joins):.0f} ms |")
print(f"| hostscope peak RSS | {max(rss) / 1024:.0f} MiB |")
print(f"| series generated + TSDB blocks written (setup, not timed by the goal) | {load_s:.0f} s |")
PY
cat "$md"
cmd="scripts/bench-cluster.sh $nodes $per_node $rounds"
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
