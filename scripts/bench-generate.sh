#!/usr/bin/env bash
# `policy generate` at scale: a synthetic busy-node topology (scripts/synthetic-topology.py) through one or more
# hostscope binaries side by side (e.g. before and after a change), each printing the rules written, the note
# lines on stderr, the notes in full and the wall time; then the generated set is linted with the same catalogue.
# Usage: scripts/bench-generate.sh [BIN...]   (default build/hostscope; SERVICES, PORTS, SEED as environment)
set -euo pipefail
cd "$(dirname "$0")/.."
bins=("$@"); [ ${#bins[@]} -gt 0 ] || bins=(build/hostscope)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 scripts/synthetic-topology.py "$tmp/topology.json" "$tmp/context.json" \
  --services "${SERVICES:-100}" --ports "${PORTS:-60}" --seed "${SEED:-19}"
echo "topology: $(du -h "$tmp/topology.json" | cut -f1)"
echo "| binary | rules | stderr note lines | notes (full) | policy files | wall time | lint |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for bin in "${bins[@]}"; do
  out=$tmp/out; rm -rf "$out"
  notes_arg=()
  # --notes-file exists only after issue 19; an older binary prints every note on stderr.
  if "$bin" policy generate --help 2>/dev/null | grep -q -- --notes-file; then notes_arg=(--notes-file "$tmp/notes.txt"); fi
  rm -f "$tmp/notes.txt"
  start=$(date +%s.%N)
  "$bin" policy generate --from "$tmp/topology.json" --context "$tmp/context.json" -o "$out" "${notes_arg[@]}" \
    > "$tmp/stdout" 2> "$tmp/stderr"
  end=$(date +%s.%N)
  rules=$(cat "$out"/*.yaml | grep -c -- '- action: allow' || true)
  lines=$(wc -l < "$tmp/stderr")
  full=$lines; [ -f "$tmp/notes.txt" ] && full=$(wc -l < "$tmp/notes.txt")
  files=$(find "$out" -name '*.yaml' ! -name '*.test.yaml' | wc -l)
  lint=ok
  "$bin" policy lint "$out" --context "$tmp/context.json" > "$tmp/lint" 2>&1 || lint="failed ($(wc -l < "$tmp/lint") lines)"
  printf '| %s | %s | %s | %s | %s | %.2f s | %s |\n' "$bin" "$rules" "$lines" "$full" "$files" "$(echo "$end - $start" | bc)" "$lint"
done
