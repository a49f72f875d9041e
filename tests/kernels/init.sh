#!/bin/busybox sh
# /init of the kernel matrix's initramfs (tests/kernels/run.sh): load the kernel's own virtio/9p modules, mount the
# host's root read-only and the results share, chroot into the host root and run tests/kernels/guest.sh there.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules); do insmod /lib/mods/$m 2>/dev/null || echo "init: insmod $m failed"; done
for arg in $(cat /proc/cmdline); do
  case "$arg" in hs_*=*) export "$arg" ;; esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hsroot /mnt/root || { echo "init: no root share"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 hsresults "/mnt/root$hs_results" || echo "init: no results share"
r=/mnt/root
# Mounted inside the new root before the chroot: /proc mounted only after it was empty there.
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t devtmpfs devtmpfs $r/dev
mount -t devpts devpts $r/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $r/dev/shm 2>/dev/null
mount -t tmpfs tmpfs $r/run
mount -t tmpfs tmpfs $r/tmp
mount -t tmpfs tmpfs $r/root
mount -t tracefs tracefs $r/sys/kernel/tracing
mount -t bpf bpf $r/sys/fs/bpf
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
# The kernel runs /sbin/modprobe (module auto-loading: nf_tables, xt_*, veth, ...) in this initramfs, not in the
# chroot: hand it to the host's modprobe inside the chroot, pointed at the unpacked kernel package's modules
# (guest.sh sets MODPROBE_OPTIONS the same way for tools that run modprobe themselves, like iptables-legacy).
mkdir -p /sbin
printf '#!/bin/sh\nexec /bin/chroot /mnt/root /sbin/modprobe -d "%s" "$@"\n' "$hs_kroot" > /sbin/modprobe
chmod +x /sbin/modprobe
echo /sbin/modprobe > /proc/sys/kernel/modprobe
chroot $r /bin/bash "$hs_src/tests/kernels/guest.sh"
sync
poweroff -f
