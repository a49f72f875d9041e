#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (packages, build) and runs every test tier:
#   1. unit tests (no root)                         ctest -L unit
#   2. privileged integration tests (root + BPF)    ctest -L privileged   (fail, never skip, under CI=true)
#   3. the kernel matrix: Debian's 6.1 and 6.12 kernels booted in qemu run the kernel-dependent privileged tests
#                                                   tests/kernels/run.sh (docs/kernels.md)
#   4. the unit tests again under ASan+UBSan        build-asan
#   5. a short libFuzzer run of every fuzz target   build-fuzz (clang-16)
#   6. clang-tidy on the C++ files the last commit changed   scripts/tidy.sh (.clang-tidy)
# Env: FUZZ_SECONDS (default 30 per target), KERNELS (default "6.1 6.12"), SKIP_KERNELS=1, SKIP_ASAN=1, SKIP_FUZZ=1,
# SKIP_TIDY=1 for quicker local runs; TIDY_BASE (default HEAD~1) for what counts as changed.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
phase() { echo "test.sh: $1 at $((SECONDS - start)) s"; }

# Line tables only (-g1): the suite compiles twice, and full debug info is a quarter of the compile time.
CMAKE_ARGS="${CMAKE_ARGS:-} -DHOSTSCOPE_LINE_DEBUG_INFO=ON" bash scripts/setup.sh
phase "build done"

status=0
ctest --test-dir build -L unit -j"$(nproc)" --output-on-failure || status=1
# Privileged tests share kernel state (BPF hooks, netns, iptables): one at a time.
ctest --test-dir build -L privileged -j1 --output-on-failure || status=1
phase "unit and privileged tests done"

# A guest that does not boot, or a test that fails in it, fails the run (about 4 min per kernel under TCG).
if [ "${SKIP_KERNELS:-0}" != 1 ]; then
  # shellcheck disable=SC2086
  bash tests/kernels/run.sh ${KERNELS:-6.1 6.12} || status=1
  phase "kernel matrix done"
fi

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  # Only what `ctest -L unit` runs (target unit_tests): the integration tests and benchmarks are not run here.
  BUILD_DIR=build-asan BUILD_TYPE=Debug BUILD_TARGET=unit_tests \
    CMAKE_ARGS="-DHOSTSCOPE_SANITIZE=ON -DHOSTSCOPE_LINE_DEBUG_INFO=ON" bash scripts/setup.sh
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 \
    ctest --test-dir build-asan -L unit -j"$(nproc)" --output-on-failure || status=1
  phase "ASan+UBSan unit tests done"
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  CC=clang-16 CXX=clang++-16 cmake -S . -B build-fuzz -G Ninja -DHOSTSCOPE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$(nproc)"
  for f in build-fuzz/tests/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f"); area=${name#fuzz_}
    work=$(mktemp -d)
    seeds=tests/fuzz/corpus/$area
    # The ELF reader must stay small whatever a header claims (issue 15): one allocation over 32 MB, or the
    # process over 512 MB (ASan's quarantine alone keeps up to 256 MB of freed memory), is a failure.
    case $area in go_buildinfo) limits="-rss_limit_mb=512 -malloc_limit_mb=32" ;; *) limits="-rss_limit_mb=2048" ;; esac
    echo "fuzz: $name for ${FUZZ_SECONDS:-30}s ($limits)"
    if ! "$f" -max_total_time="${FUZZ_SECONDS:-30}" $limits -print_final_stats=1 -artifact_prefix="$work/" "$work" \
         $( [ -d "$seeds" ] && echo "$seeds" ) > "$work/log" 2>&1; then
      tail -50 "$work/log"; echo "fuzz: $name FAILED (artifacts in $work)"; status=1
    else
      grep -E 'stat::number_of_executed_units' "$work/log" || true
      rm -rf "$work"
    fi
  done
  phase "fuzzing done"
fi

if [ "${SKIP_TIDY:-0}" != 1 ]; then
  bash scripts/tidy.sh "${TIDY_BASE:-HEAD~1}" || status=1
  phase "tidy done"
fi

exit $status
