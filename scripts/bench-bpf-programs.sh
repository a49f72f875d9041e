#!/usr/bin/env bash
# The kernel-side cost per connection, program by program, of one or more hostscope builds side by side: each
# round runs the loopback churn once per build (in turn) with that build's daemon running and BPF statistics on
# (hs_bench_churn --programs), and reports per program its runs per connection, run time per run and per
# connection (medians over rounds). Statistics add two clock reads to every run, so absolute figures are inflated
# by about the same amount for every build; compare the builds within one run.
# Usage: scripts/bench-bpf-programs.sh ROUNDS SECONDS LABEL=BINARY[,CONFIG] [LABEL=BINARY[,CONFIG]...] [-- MARKER]
#   CONFIG (optional): the daemon's configuration for that build (default tests/bench/agent-bench.yaml), so one
#   binary can run as several variants.
#   MARKER (optional): write the table into docs/benchmarks.md between <!-- MARKER --> markers.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=$1; seconds=$2; shift 2
builds=(); marker=""
while (($#)); do
  if [ "$1" = "--" ]; then marker=$2; shift 2; continue; fi
  builds+=("$1"); shift
done
((${#builds[@]})) || { echo "usage: $0 ROUNDS SECONDS LABEL=BINARY... [-- MARKER]" >&2; exit 2; }
[ -x build/hs_bench_churn ] || bash scripts/setup.sh
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for b in "${builds[@]}"; do
    label=${b%%=*}; bin=${b#*=}; config=tests/bench/agent-bench.yaml
    if [[ $bin == *,* ]]; then config=${bin#*,}; bin=${bin%%,*}; fi
    ./build/hs_bench_churn --hostscope "$bin" --programs --seconds "$seconds" \
      --agent-args "agent --config $config" > "$out/$label.$r"
    echo "round $r $label: $(tail -1 "$out/$label.$r")" >&2
  done
done
table=$(python3 - "$out" "$rounds" "${builds[@]}" <<'PY'
import statistics, sys
out, rounds, builds = sys.argv[1], int(sys.argv[2]), [b.split('=', 1)[0] for b in sys.argv[3:]]
rows = {}  # (label, program) -> list of (runs/conn, ns/run, us/conn)
totals = {}
for label in builds:
    for r in range(1, rounds + 1):
        progs, conns = {}, 0.0
        for line in open('%s/%s.%d' % (out, label, r)):
            f = line.split()
            if f[0] == 'program': progs[f[1]] = (int(f[2]), int(f[3]))
            elif f[0] == 'connections': conns = float(f[1])
        if conns <= 0: continue
        total = 0.0
        for name, (runs, ns) in progs.items():
            if runs == 0: continue
            rows.setdefault((label, name), []).append((runs / conns, ns / runs, ns / conns / 1e3))
            total += ns / conns / 1e3
        totals.setdefault(label, []).append(total)
med = lambda xs: statistics.median(xs)
print('| build | program | runs per connection | ns per run | µs per connection |')
print('| --- | --- | --- | --- | --- |')
for label in builds:
    for (l, name), v in sorted(rows.items()):
        if l != label or med([x[2] for x in v]) < 0.005: continue
        print('| %s | `%s` | %.2f | %.0f | %.2f |' % (label, name, med([x[0] for x in v]), med([x[1] for x in v]),
                                                  med([x[2] for x in v])))
    t = totals.get(label, [])
    print('| %s | **all** | | | **%.2f** (rounds: %s) |' % (label, med(t) if t else 0, ', '.join('%.2f' % x for x in t)))
PY
)
echo "$table"
if [ -n "$marker" ]; then
  printf 'Command: `%s` (%s, %s, kernel %s, %s cores)\n\n%s\n' \
    "scripts/bench-bpf-programs.sh $rounds $seconds ${builds[*]} -- $marker" "$(date -u +%Y-%m-%d)" \
    "$(git describe --always --dirty 2>/dev/null || echo unknown)" "$(uname -r)" "$(nproc)" "$table" |
    python3 scripts/bench-section.py "$marker"
fi
