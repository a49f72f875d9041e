#!/usr/bin/env bash
# Two hostscope binaries side by side in one run (e.g. before and after a refactoring): the churn benchmark
# alternates A, B, A, B... so both see the same machine, and prints one markdown row per run and the medians.
# Usage: scripts/bench-churn-ab.sh A_BIN B_BIN [connections|daemon] [pairs] [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1; b=$2; mode=${3:-connections}; pairs=${4:-3}; rounds=${5:-6}; seconds=${6:-2}
case "$mode" in
  connections) args="connections -o json" ;;
  daemon) args="agent --config tests/bench/agent-bench.yaml" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
[ -x build/hs_bench_churn ] || { echo "build/hs_bench_churn missing: build the tree first" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The summary row of hs_bench_churn's first table: the median of all round ratios (robust when no round was
# stable), the stable rounds and their median ratio, the agent CPU per event.
row() { awk -F'|' 'NR==3 {for (i = 2; i <= 16; i++) gsub(/[* ]/, "", $i); print $9 "|" $4 "|" $5 "|" $15}' "$1"; }
echo "| run | binary | median of all round ratios | stable rounds | their median ratio | agent CPU per event |"
echo "| --- | --- | --- | --- | --- | --- |"
for i in $(seq 1 "$pairs"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    ./build/hs_bench_churn --hostscope "$bin" --rounds "$rounds" --seconds "$seconds" --agent-args "$args" \
      --markdown "$tmp/$side$i.md" > /dev/null
    r=$(row "$tmp/$side$i.md")
    echo "$r" >> "$tmp/$side.all"
    echo "| $i | $side | ${r//|/ | } |"
  done
done
med() { cut -d'|' -f1 "$1" | tr -d '%' | sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2) "%"}'; }
echo
echo "median over runs of the median round ratio: A $(med "$tmp/A.all"), B $(med "$tmp/B.all") (A = $a, B = $b, mode $mode, $pairs pairs × $rounds rounds × ${seconds} s)"
