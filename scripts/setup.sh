#!/usr/bin/env bash
# Installs every Debian package hostscope needs to build, test and benchmark, then configures and builds.
# Idempotent: packages already present are skipped by apt, the build directory is reused.
# Usage: scripts/setup.sh [--no-build]   (env: BUILD_DIR, default ./build; BUILD_TYPE, default RelWithDebInfo;
#        BUILD_TARGET, default all; CMAKE_ARGS, extra configure arguments)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  # build toolchain
  build-essential cmake ninja-build pkg-config git
  clang-16 llvm-16 libbpf-dev bpftool libelf-dev zlib1g-dev
  # libraries
  libdw-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libncurses-dev
  libcpp-httplib-dev libgit2-dev libnetfilter-conntrack-dev libmnl-dev libsqlite3-dev
  prometheus  # promtool: the tests run `promtool check metrics` on the agent's /metrics
  # tests, fuzzing, sanitizers
  libgtest-dev libgmock-dev libfuzzer-16-dev libclang-rt-16-dev clang-tidy-16
  golang-go iptables nftables ipset iproute2 tmux graphviz curl python3 procps psmisc kmod
  openssh-client  # ssh-keygen: SSH commit signatures (policy from Git)
  # packaging (scripts/build-deb.sh, tests/integration/package_test.cpp)
  debhelper dpkg-dev fakeroot lintian help2man debootstrap
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: must run as root (installs packages; hostscope loads BPF programs)" >&2
  exit 2
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

[ "${1:-}" = "--no-build" ] && exit 0

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
