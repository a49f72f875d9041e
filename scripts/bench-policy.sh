#!/usr/bin/env bash
# Policy enforcement benchmark (root): apply time for 100/1k/10k rules (hostscope vs one iptables-legacy -A per
# rule vs one iptables-restore) and connection rate with 10 vs 10k rules in the path, inside network namespaces the
# program creates and removes. Writes the results into docs/benchmarks.md between the policy-apply and policy-rate
# markers. Usage: scripts/bench-policy.sh [rounds] [rate-rounds] [rate-seconds] [naive-budget-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}; rate_rounds=${2:-5}; rate_seconds=${3:-3}; budget=${4:-30}
build=${BUILD_DIR:-build}
[ "$(id -u)" = 0 ] || { echo "run as root: it creates network namespaces and iptables rules inside them" >&2; exit 2; }
[ -x "$build/hs_bench_policy_apply" ] || ninja -C "$build" hs_bench_policy_apply
apply_md=$(mktemp); rate_md=$(mktemp)
trap 'rm -f "$apply_md" "$rate_md"' EXIT
"$build/hs_bench_policy_apply" --rounds "$rounds" --rate-rounds "$rate_rounds" --rate-seconds "$rate_seconds" \
  --naive-budget "$budget" --markdown-apply "$apply_md" --markdown-rate "$rate_md"
cmd="scripts/bench-policy.sh $rounds $rate_rounds $rate_seconds $budget"
stamp="$(date -u +%Y-%m-%d), $(git describe --always --dirty 2>/dev/null || echo unknown), kernel $(uname -r), $(nproc) cores, $(iptables-legacy --version)"
{ printf '## Policy apply time: hostscope vs iptables -A per rule vs iptables-restore\n\nTarget: 10k rules applied in under 1 s.\n\n'
  printf 'Command: `%s` (%s)\n\n' "$cmd" "$stamp"; cat "$apply_md"; } | python3 scripts/bench-section.py policy-apply
{ printf '## Connection rate with 10 vs 10k policy rules in the path\n\nTarget: at 10k rules, at least 95%% of the rate at 10.\n\n'
  printf 'Command: `%s` (%s)\n\n' "$cmd" "$stamp"; cat "$rate_md"; } | python3 scripts/bench-section.py policy-rate
