#!/usr/bin/env bash
# Loopback connection churn with and without hostscope, side by side; writes the result into docs/benchmarks.md
# between the markers for the given agent mode.
# Usage: scripts/bench-churn.sh [connections|no-identity|daemon|daemon-edges|syscall-tracepoint|tcplife] [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-connections}; rounds=${2:-5}; seconds=${3:-5}
agent=./build/hostscope
case "$mode" in
  connections) args="connections -o json" ;;
  no-identity) args="connections -o json --no-identity" ;;
  daemon) args="agent --config tests/bench/agent-bench.yaml" ;;
  daemon-edges) args="agent --config tests/bench/agent-bench-edges.yaml" ;;  # the kernel edge table on
  syscall-tracepoint) agent=tests/bench/syscall-tracepoint-only.sh; args="" ;;  # control: no hostscope at all
  tcplife) agent=tests/bench/tcplife.sh; args="" ;;  # reference: libbpf-tools' tcplife
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
[ -x build/hs_bench_churn ] || bash scripts/setup.sh
if [ "$mode" = tcplife ] && ! command -v tcplife > /dev/null && [ ! -x /usr/sbin/tcplife ]; then
  apt-get install -y -q libbpf-tools > /dev/null
fi
out=$(mktemp)
./build/hs_bench_churn --hostscope "$agent" --rounds "$rounds" --seconds "$seconds" --agent-args "$args" --markdown "$out"
cmd="scripts/bench-churn.sh $mode $rounds $seconds"
printf 'Command: `%s` (%s, %s, kernel %s, %s cores)\n\n%s\n' "$cmd" "$(date -u +%Y-%m-%d)" \
  "$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(uname -r)" "$(nproc)" "$(cat "$out")" |
  python3 scripts/bench-section.py "churn:$mode"
rm -f "$out"
