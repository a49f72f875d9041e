#!/usr/bin/env bash
# Two hostscope binaries, or one binary with two sets of arguments, side by side in one run (e.g. before and after a
# refactoring, or the daemon with and without history): the churn benchmark alternates A, B, A, B... so both see the
# same machine, and prints one markdown row per run and the medians.
# Usage: scripts/bench-churn-ab.sh A_BIN B_BIN [connections|daemon|daemon-history] [pairs] [rounds] [seconds]
#   daemon-history: A runs the daemon with tests/bench/agent-bench.yaml, B with tests/bench/agent-bench-history.yaml
#   (the same with history on, its file in a fresh /var/tmp/hs-bench-hist.XXXXXX removed at exit); give the same
#   binary twice. After every B run the rows it added to the history file are shown, and the file's status at the end.
# Env A_ARGS / B_ARGS: the hostscope arguments of A / B instead of the mode's (e.g. B_ARGS="agent --config X").
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1; b=$2; mode=${3:-connections}; pairs=${4:-3}; rounds=${5:-6}; seconds=${6:-2}
[ -x build/hs_bench_churn ] || { echo "build/hs_bench_churn missing: build the tree first" >&2; exit 2; }
tmp=$(mktemp -d); hist=""
trap 'rm -rf "$tmp"; [ -z "$hist" ] || rm -rf "$hist"' EXIT
case "$mode" in
  connections) args="connections -o json" ;;
  daemon) args="agent --config tests/bench/agent-bench.yaml" ;;
  daemon-history)
    args="agent --config tests/bench/agent-bench.yaml"
    hist=$(mktemp -d /var/tmp/hs-bench-hist.XXXXXX)
    sed "s|HISTORY_DIR|$hist|" tests/bench/agent-bench-history.yaml > "$hist/agent-bench-history.yaml"
    B_ARGS=${B_ARGS:-"agent --config $hist/agent-bench-history.yaml"} ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
args_a=${A_ARGS:-$args}; args_b=${B_ARGS:-$args}
# rows_written of the history file (0 while it does not exist).
hist_rows() {
  [ -f "$hist/history.db" ] || { echo 0; return; }
  "$b" history status --path "$hist/history.db" -o json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["counters"].get("rows_written", 0))'
}
# The summary row of hs_bench_churn's first table: the median of all round ratios (robust when no round was
# stable), the stable rounds and their median ratio, the agent CPU per event, the agent CPU in % of one core, the
# events received.
row() { awk -F'|' 'NR==3 {for (i = 2; i <= 17; i++) gsub(/[* ]/, "", $i); print $9 "|" $4 "|" $5 "|" $15 "|" $16 "|" $11}' "$1"; }
echo "| run | binary | median of all round ratios | stable rounds | their median ratio | agent CPU per event | agent CPU (one core) | events received |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for i in $(seq 1 "$pairs"); do
  for side in A B; do
    bin=$a; run_args=$args_a
    [ "$side" = B ] && { bin=$b; run_args=$args_b; }
    if [ -n "$hist" ] && [ "$side" = B ]; then rows_before=$(hist_rows); fi
    ./build/hs_bench_churn --hostscope "$bin" --rounds "$rounds" --seconds "$seconds" --agent-args "$run_args" \
      --markdown "$tmp/$side$i.md" > /dev/null
    r=$(row "$tmp/$side$i.md")
    echo "$r" >> "$tmp/$side.all"
    echo "| $i | $side | ${r//|/ | } |"
    if [ -n "$hist" ] && [ "$side" = B ]; then echo "$(($(hist_rows) - rows_before))" >> "$tmp/hist.rows"; fi
  done
done
# Median of field $2 (1-based, of row()'s fields) over the runs in file $1, with its unit kept.
med() {
  cut -d'|' -f"$2" "$1" | sed 's/[^0-9.]*$//' | sort -n |
    awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
echo
echo "median over runs of the median round ratio: A $(med "$tmp/A.all" 1)%, B $(med "$tmp/B.all" 1)% (A = $a $args_a, B = $b $args_b, mode $mode, $pairs pairs × $rounds rounds × ${seconds} s)"
echo "median over runs of the agent CPU per event: A $(med "$tmp/A.all" 4) µs, B $(med "$tmp/B.all" 4) µs; of the agent CPU (one core): A $(med "$tmp/A.all" 5)%, B $(med "$tmp/B.all" 5)%"
if [ -n "$hist" ]; then
  echo "history rows written by each B run: $(paste -sd' ' "$tmp/hist.rows")"
  echo
  "$b" history status --path "$hist/history.db"
  [ "$(hist_rows)" -gt 0 ] || { echo "the daemon wrote no history rows: B did not measure history" >&2; exit 1; }
fi
