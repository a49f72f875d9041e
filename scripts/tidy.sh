#!/usr/bin/env bash
# clang-tidy (.clang-tidy at the root) on the C++ files a change touches: product code under agent/, policy/,
# exporters/ and common/ that differs from BASE (default: the first parent of HEAD, i.e. the last commit or merge),
# plus any such file changed in the work tree. Needs build/compile_commands.json (scripts/setup.sh). A finding fails.
# Usage: scripts/tidy.sh [BASE]   (env: BUILD_DIR, default build; TIDY, default clang-tidy-16)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
tidy=${TIDY:-clang-tidy-16}
base=${1:-HEAD~1}
command -v "$tidy" >/dev/null || { echo "tidy: $tidy not installed (scripts/setup.sh installs it)" >&2; exit 2; }
[ -f "$build/compile_commands.json" ] || { echo "tidy: $build/compile_commands.json missing (configure first)" >&2; exit 2; }
if git rev-parse -q --verify "$base^{commit}" >/dev/null; then
  changed() { git diff --name-only "$base" --; }
else  # a shallow clone without BASE: the files of the HEAD commit itself
  changed() { git show --name-only --format= HEAD; }
fi
mapfile -t files < <( { changed; git ls-files --others --exclude-standard; } |
  grep -E '^(agent|policy|exporters|common)/.*\.cpp$' | sort -u | while read -r f; do [ -f "$f" ] && echo "$f"; done)
if ((${#files[@]} == 0)); then echo "tidy: no changed C++ files since $base"; exit 0; fi
echo "tidy: ${#files[@]} file(s) changed since $base"
printf '%s\n' "${files[@]}" | xargs -P"$(nproc)" -n1 "$tidy" -p "$build" --quiet 2>&1 |
  grep -vE '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' > /tmp/hs-tidy.$$ || true
if grep -qE '(warning|error):' /tmp/hs-tidy.$$; then
  cat /tmp/hs-tidy.$$; rm -f /tmp/hs-tidy.$$; echo "tidy: FAILED"; exit 1
fi
rm -f /tmp/hs-tidy.$$
echo "tidy: clean"
