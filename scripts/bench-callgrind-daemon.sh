#!/usr/bin/env bash
# Instructions per event in the daemon's TCP reader thread, counted by callgrind: independent of the machine's load,
# so two binaries can be compared exactly (docs/benchmarks.md, issue 16). Needs root (BPF) and valgrind.
# Usage: scripts/bench-callgrind-daemon.sh HOSTSCOPE_BIN [connections (default 5000)]
# The agent runs under callgrind with tests/bench/agent-bench.yaml; once it runs, the counters are zeroed, N loopback
# connections are made (connect, 16 bytes each way, close), the counters are dumped and the agent stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(readlink -f "$1"); n=${2:-5000}
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$bin" -v agent --config tests/bench/agent-bench.yaml 2> "$tmp/err" &
pid=$!
for _ in $(seq 1 600); do grep -q ' running' "$tmp/err" && break; sleep 0.5; done
grep -q ' running' "$tmp/err" || { tail "$tmp/err" >&2; kill "$pid"; exit 1; }
sleep 2
callgrind_control -z "$pid" > /dev/null 2>&1
python3 - "$n" <<'PY'
import socket, sys, threading
n = int(sys.argv[1])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(128); port = srv.getsockname()[1]
def serve():
    for _ in range(n):
        c, _ = srv.accept(); c.recv(16); c.sendall(b"x" * 16); c.close()
t = threading.Thread(target=serve); t.start()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(b"y" * 16); s.recv(16); s.close()
t.join()
PY
sleep 3
callgrind_control -d "$pid" > /dev/null 2>&1
sleep 1
kill -INT "$pid"; wait "$pid" || true
events=$(grep -o '[0-9]* received' "$tmp/err" | awk '{print $1}')
ann=$(callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg.1" 2>/dev/null)
per() { echo "$ann" | grep -m1 "$1" | awk -v n="$events" '{gsub(",", "", $1); printf "%d", $1 / n}'; }
echo "$bin: $events events; instructions per event: TCP reader thread $(per 'TcpReader::loop()'), on_batch $(per 'Pipeline::on_batch('), topology ingest $(per 'Topology::ingest_locked(')"
