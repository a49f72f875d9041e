#!/usr/bin/env bash
# `policy plan --impact` benchmark (no root needed): judging time of 10k observed edges against the set in force and
# a planned set, at 102 services / ~417 rules and at 10k rules. Writes the result into docs/benchmarks.md between the
# policy-impact markers. Usage: scripts/bench-impact.sh [rounds] [edges]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}; edges=${2:-10000}
build=${BUILD_DIR:-build}
[ -x "$build/hs_bench_policy_impact" ] || cmake --build "$build" --target hs_bench_policy_impact
md=$(mktemp); trap 'rm -f "$md"' EXIT
"$build/hs_bench_policy_impact" "$rounds" "$edges" > "$md"
cat "$md"
cmd="scripts/bench-impact.sh $rounds $edges"
stamp="$(date -u +%Y-%m-%d), $(git describe --always --dirty 2>/dev/null || echo unknown), kernel $(uname -r), $(nproc) cores"
{ printf '## `policy plan --impact` over observed edges\n\nTarget: 10k observed edges judged in under 1 s.\n\n'
  printf 'Command: `%s` (%s)\n\n' "$cmd" "$stamp"; cat "$md"
  echo
  echo 'Each service has one enforce-mode policy (egress default deny, allow rules to /32 peers on distinct ports); the' \
    'planned set moves the first port of every policy. Three quarters of the edges go to an allowed peer and port,' \
    'a quarter somewhere no rule allows (denied on both sides, so not a change). Judging is the reference' \
    'evaluator run on every edge against both generations (the part that grows with traffic); load + lint +' \
    'compile of both sets is what `plan` costs without `--impact`. Median over the rounds, in one process.'
} | python3 scripts/bench-section.py policy-impact
