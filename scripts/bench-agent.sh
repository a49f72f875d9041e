#!/usr/bin/env bash
# The daemon's visibility latency and memory (hs_bench_agent), written into docs/benchmarks.md.
# Usage: scripts/bench-agent.sh [latency_n] [churn_n] [edges]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}; churn=${2:-1000000}; edges=${3:-10000}
[ -x build/hs_bench_agent ] || bash scripts/setup.sh
out=$(mktemp)
./build/hs_bench_agent --hostscope ./build/hostscope --config tests/bench/agent-bench.yaml \
  --latency-n "$n" --churn-n "$churn" --edges "$edges" --markdown "$out"
cmd="scripts/bench-agent.sh $n $churn $edges"
printf 'Command: `%s` (%s, %s, kernel %s, %s cores)\n\n%s\n' "$cmd" "$(date -u +%Y-%m-%d)" \
  "$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(uname -r)" "$(nproc)" "$(cat "$out")" |
  python3 scripts/bench-section.py agent
rm -f "$out"
