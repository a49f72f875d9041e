#!/usr/bin/env bash
# Runs things inside an installed Debian root (a debootstrap tree with hostscope's .deb installed), for the
# package test. Everything happens in a private mount namespace: the host's mounts are never changed.
#
#   pkgroot.sh run ROOT CMD [ARG...]   CMD chrooted into ROOT, with /proc, /sys and /dev of the host
#   pkgroot.sh service ROOT UNIT       starts the unit ROOT/lib/systemd/system/UNIT the way systemd would, in the
#                                      foreground (exec: this process becomes the service's main process, so
#                                      SIGTERM stops it like `systemctl stop`)
#
# `service` applies these directives as systemd does: ExecStartPre (a leading "+" runs it with full privileges
# outside the sandbox), ExecStart, CapabilityBoundingSet (setpriv --bounding-set), NoNewPrivileges,
# LimitMEMLOCK, UMask, ProtectSystem=strict (the whole root read-only except the directories below),
# ProtectKernelTunables (/sys read-only), ProtectHome=read-only, PrivateTmp (fresh /tmp and /var/tmp),
# PrivateDevices (a /dev with null, zero, full, random, urandom, tty only), RuntimeDirectory, StateDirectory,
# LogsDirectory (+ their modes). Directives listed in `not_emulated` below are accepted without effect (they
# need seccomp or kernel namespace features systemd has and this script does not). Any other directive makes
# the script fail, so a unit change cannot silently escape the test.
set -euo pipefail
mode=${1:?usage: pkgroot.sh run|service ROOT ...}
root=$(realpath "${2:?ROOT missing}")
shift 2

if [ -z "${PKGROOT_INNER:-}" ]; then
    exec env PKGROOT_INNER=1 unshare --mount --propagation private -- "$0" "$mode" "$root" "$@"
fi

mount_api_filesystems() {
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
}

if [ "$mode" = run ]; then
    mount_api_filesystems
    exec chroot "$root" "$@"
fi
[ "$mode" = service ] || { echo "pkgroot.sh: unknown mode $mode" >&2; exit 2; }

unit_file=""
for d in lib/systemd/system usr/lib/systemd/system etc/systemd/system; do
    [ -f "$root/$d/${1:?UNIT missing}" ] && unit_file=$root/$d/$1
done
[ -n "$unit_file" ] || { echo "pkgroot.sh: unit $1 not installed in $root" >&2; exit 1; }

not_emulated=(Description Documentation After Type Restart RestartSec TimeoutStopSec WantedBy AmbientCapabilities
    ProtectKernelModules ProtectKernelLogs ProtectControlGroups ProtectClock ProtectHostname RestrictRealtime
    RestrictSUIDSGID LockPersonality MemoryDenyWriteExecute SystemCallArchitectures RestrictAddressFamilies)
declare -A unit=()
pre=()
while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#|\[|$) ]] && continue
    key=${line%%=*} value=${line#*=}
    case $key in
        ExecStartPre) pre+=("$value") ;;
        ExecStart | CapabilityBoundingSet | NoNewPrivileges | LimitMEMLOCK | UMask | ProtectSystem | ProtectHome | \
            ProtectKernelTunables | PrivateTmp | PrivateDevices | RuntimeDirectory | RuntimeDirectoryMode | \
            StateDirectory | StateDirectoryMode | LogsDirectory | LogsDirectoryMode) unit[$key]=$value ;;
        *) [[ " ${not_emulated[*]} " == *" $key "* ]] || { echo "pkgroot.sh: $unit_file: cannot emulate $key=" >&2; exit 1; } ;;
    esac
done <"$unit_file"
[ "${unit[ProtectSystem]:-}" = strict ] || { echo "pkgroot.sh: only ProtectSystem=strict is emulated" >&2; exit 1; }

# The root becomes a mount point of its own so it can be made read-only after the writable paths are bound.
mount --bind "$root" "$root"
mount_api_filesystems

# ExecStartPre=+...: full privileges, host view (but chrooted into the installed system).
for p in "${pre[@]}"; do
    [[ $p == +* ]] || { echo "pkgroot.sh: only ExecStartPre=+ is emulated" >&2; exit 1; }
    eval "set -- ${p#+}"
    chroot "$root" "$@"
done

writable=()
for kind in Runtime:run State:var/lib Logs:var/log; do
    name=${unit[${kind%%:*}Directory]:-}
    [ -n "$name" ] || continue
    dir=$root/${kind#*:}/$name
    mkdir -p "$dir"
    chmod "${unit[${kind%%:*}DirectoryMode]:-0755}" "$dir"
    chown root:root "$dir"
    writable+=("$dir")
done

if [ "${unit[PrivateDevices]:-no}" = yes ]; then
    umount -l "$root/dev"
    mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
    for n in null zero full random urandom tty; do
        touch "$root/dev/$n"
        mount --bind "/dev/$n" "$root/dev/$n"
    done
fi
if [ "${unit[PrivateTmp]:-no}" = yes ]; then
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/var/tmp"
    writable+=("$root/tmp" "$root/var/tmp")
fi
for w in "${writable[@]}"; do mount --bind "$w" "$w"; done
mount -o remount,bind,ro "$root"
[ "${unit[ProtectKernelTunables]:-no}" = yes ] && mount -o remount,bind,ro "$root/sys"
[ "${unit[ProtectHome]:-no}" = read-only ] && mount --bind "$root/home" "$root/home" && mount -o remount,bind,ro "$root/home"

# systemd raises the limit from outside; here it only works when this process may raise its hard limit (not in
# every container). Kernels >= 5.11 charge BPF memory to the cgroup, not to memlock, so the agent runs either way.
if [ "${unit[LimitMEMLOCK]:-}" = infinity ] && ! ulimit -l unlimited 2>/dev/null; then
    echo "pkgroot.sh: LimitMEMLOCK=infinity not applied (hard limit $(ulimit -H -l) cannot be raised here)" >&2
fi
[ -n "${unit[UMask]:-}" ] && umask "${unit[UMask]}"

caps=()
if [ -n "${unit[CapabilityBoundingSet]:-}" ]; then
    list=-all
    for c in ${unit[CapabilityBoundingSet]}; do
        c=${c#CAP_}
        list+=",+${c,,}"
    done
    caps=(--bounding-set="$list")
fi
[ "${unit[NoNewPrivileges]:-no}" = yes ] && caps+=(--no-new-privs)
eval "set -- ${unit[ExecStart]}"
exec chroot "$root" setpriv "${caps[@]}" -- "$@"
