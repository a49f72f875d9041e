#!/usr/bin/env bash
# The kernel matrix: boots Debian's own kernels in qemu and runs the privileged tests that depend on the kernel
# inside each, against this build. Usage:
#   tests/kernels/run.sh [--build DIR] [--tests LIST] [--timeout S] KERNEL...
#   KERNEL: 6.1 (bookworm's newest linux-image-6.1.0-N-amd64) | 6.12 (bookworm-backports' newest 6.12) | a package name
# How (docs/testing.md, "Kernel matrix"): the kernel package is fetched with apt-get download through a private apt
# state under the cache (the host's apt sources are not touched), unpacked with dpkg-deb; a busybox initramfs loads
# the kernel's own virtio/9p modules, mounts the host's root read-only over virtio-9p and a writable results share,
# chroots into the host root, mounts proc, sysfs, devtmpfs, tmpfs, tracefs, bpffs and cgroup2 there, and runs
# tests/kernels/guest.sh. A guest that does not boot, or writes no summary, is a failure, never a skip.
# Env: HS_KERNEL_CACHE (default /var/cache/hostscope-kernels), HS_KERNEL_SMP (default 2), HS_KERNEL_MEM (2G).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build="$src/build"
tests="tcp_lifecycle_test doctor_integration_test"
timeout=1500
kernels=()
while (($#)); do
  case "$1" in
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    --tests) tests=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) kernels+=("$1"); shift ;;
  esac
done
((${#kernels[@]})) || { echo "usage: $0 [--build DIR] [--tests LIST] KERNEL..." >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "kernels: must run as root (apt, qemu shares of /)" >&2; exit 2; }
[ -x "$build/hostscope" ] || { echo "kernels: no build at $build (run scripts/setup.sh first)" >&2; exit 2; }
# The guest sees the host's root over 9p but mounts fresh tmpfs on /tmp, /run and /root: a tree there is hidden.
case "$src/" in
  /tmp/*|/run/*|/root/*) echo "kernels: the tree at $src is under /tmp, /run or /root, which the guest hides behind its own tmpfs; clone it elsewhere (e.g. /srv or /var/tmp)" >&2; exit 2 ;;
esac

need=()
for p in qemu-system-x86 busybox-static xz-utils zstd cpio kmod; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  echo "kernels: installing ${need[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

cache=${HS_KERNEL_CACHE:-/var/cache/hostscope-kernels}
mkdir -p "$cache/lists/partial" "$cache/archives/partial" "$cache/debs"
# Private apt state: bookworm and bookworm-backports, whatever the host's own sources say.
cat > "$cache/sources.list" <<SRC
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-backports main
deb http://deb.debian.org/debian-security bookworm-security main
SRC
apt_opts=(-o Dir::Etc::SourceList="$cache/sources.list" -o Dir::Etc::SourceParts=/nonexistent
          -o Dir::State::Lists="$cache/lists" -o Dir::Cache="$cache" -o Dir::Cache::archives="$cache/archives"
          -o Debug::NoLocking=1)
if [ -z "$(find "$cache/lists" -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get "${apt_opts[@]}" update -q >/dev/null
fi

package_for() {
  local pattern
  case "$1" in
    6.1) pattern='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
    6.12) pattern='^linux-image-6\.12\.[0-9.]+\+(deb12|bpo)-amd64$' ;;
    linux-image-*) echo "$1"; return ;;
    *) echo "kernels: unknown kernel '$1' (6.1, 6.12 or a linux-image package name)" >&2; return 1 ;;
  esac
  # The newest a source offers (pkgnames also lists names merely referenced).
  local p
  for p in $(apt-cache "${apt_opts[@]}" pkgnames linux-image- | grep -E "$pattern" | sort -rV); do
    if [[ "$(apt-cache "${apt_opts[@]}" policy "$p")" == *"Candidate: "[0-9]* ]]; then echo "$p"; return 0; fi
  done
  return 0
}

# Modules the guest needs, with their dependencies from modules.dep, in load order (dependencies first).
module_closure() {
  local modroot=$1; shift
  local dep="$modroot/modules.dep" seen=" " out=()
  visit() {
    local name=$1 line path deps d
    line=$(grep -E "/$name\.ko(\.xz|\.zst)?:" "$dep" | head -1) || true
    [ -n "$line" ] || return 0  # built in
    path=${line%%:*}
    case "$seen" in *" $path "*) return 0 ;; esac
    seen+="$path "
    deps=${line#*:}
    for d in $deps; do visit "$(basename "${d%%.ko*}")"; done
    out+=("$path")
  }
  for m in "$@"; do visit "$m"; done
  printf '%s\n' "${out[@]}"
}

make_initramfs() {  # root_of_unpacked_kernel version out.cpio.gz
  local kroot=$1 kver=$2 out=$3 work
  work=$(mktemp -d)
  mkdir -p "$work"/{bin,proc,sys,dev,mnt/root,lib/mods}
  cp /bin/busybox "$work/bin/busybox"
  local modroot="$kroot/lib/modules/$kver"
  : > "$work/modules"
  while read -r rel; do
    [ -n "$rel" ] || continue
    local f="$modroot/$rel" base
    base=$(basename "${rel%%.ko*}").ko
    case "$rel" in
      *.xz) xz -dc "$f" > "$work/lib/mods/$base" ;;
      *.zst) zstd -qdc "$f" > "$work/lib/mods/$base" ;;
      *) cp "$f" "$work/lib/mods/$base" ;;
    esac
    echo "$base" >> "$work/modules"
  done < <(module_closure "$modroot" virtio_pci 9pnet_virtio 9p veth)
  cp "$here/init.sh" "$work/init"
  chmod +x "$work/init"
  (cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
  rm -rf "$work"
}

status=0
summary=()
for k in "${kernels[@]}"; do
  pkg=$(package_for "$k") || { status=1; continue; }
  [ -n "$pkg" ] || { echo "kernels: no package for $k in bookworm/bookworm-backports" >&2; status=1; summary+=("$k: no package"); continue; }
  kdir="$cache/$pkg"
  if [ ! -d "$kdir/root/boot" ]; then
    echo "kernels: fetching $pkg"
    (cd "$cache/debs" && apt-get "${apt_opts[@]}" download -q "$pkg" >/dev/null 2>&1) ||
      { echo "kernels: apt-get download $pkg failed" >&2; exit 1; }
    rm -rf "$kdir"; mkdir -p "$kdir/root"
    dpkg-deb -x "$(ls -t "$cache/debs/${pkg}_"*.deb | head -1)" "$kdir/root"
    # The package ships no modules.dep (its postinst runs depmod): make it for the initramfs.
    kv=$(ls "$kdir/root/lib/modules" | head -1)
    depmod -b "$kdir/root" "$kv"
  fi
  vmlinuz=$(ls "$kdir"/root/boot/vmlinuz-* | head -1)
  kver=${vmlinuz##*/vmlinuz-}
  [ -f "$kdir/initrd.gz" ] || make_initramfs "$kdir/root" "$kver" "$kdir/initrd.gz"

  # Not under /tmp, /run or /root: the guest mounts fresh tmpfs there, which would hide the share.
  mkdir -p "$cache/results"
  results=$(mktemp -d "$cache/results/$kver-XXXXXX")
  chmod 777 "$results"
  echo "kernels: booting $kver (qemu TCG), tests: $tests"
  start=$(date +%s)
  set +e
  timeout "$timeout" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "${HS_KERNEL_SMP:-2}" \
    -m "${HS_KERNEL_MEM:-2G}" -nographic -no-reboot -kernel "$vmlinuz" -initrd "$kdir/initrd.gz" \
    -append "console=ttyS0 panic=-1 quiet hs_results=$results hs_src=$src hs_build=$build hs_kroot=$kdir/root hs_tests=${tests// /,}" \
    -virtfs local,path=/,mount_tag=hsroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$results,mount_tag=hsresults,security_model=none" \
    > "$results/console.log" 2>&1
  qrc=$?
  set -e
  secs=$(( $(date +%s) - start ))
  if [ ! -f "$results/summary" ]; then
    echo "kernels: $kver: the guest wrote no summary (qemu exit $qrc after ${secs}s); console:" >&2
    tail -40 "$results/console.log" >&2
    status=1; summary+=("$kver: FAILED to boot or run (${secs}s)")
    continue
  fi
  echo "== $kver (${secs}s) =="
  cat "$results/summary"
  for t in $tests; do
    if ! grep -q "^PASS $t" "$results/summary"; then
      status=1
      echo "--- $t on $kver: last lines ---"; tail -60 "$results/$t.log" 2>/dev/null || true
    fi
  done
  # grep -c exits 1 when it counts nothing: under set -e that would end the run after a clean kernel.
  passed=$(grep -c '^PASS' "$results/summary" || true)
  failed=$(grep -c '^FAIL' "$results/summary" || true)
  summary+=("$kver: $passed passed, $failed failed (${secs}s); results in $results")
done
echo "== kernel matrix =="
printf '%s\n' "${summary[@]}"
exit $status
