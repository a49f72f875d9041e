#!/bin/bash
# Runs inside a kernel-matrix guest (tests/kernels/init.sh chroots into the host's read-only root): the chosen
# test binaries of the build, each with the environment ctest gives it, CI=true so nothing skips. Writes one
# line per test to $hs_results/summary ("PASS name secs" / "FAIL name secs"), its log beside it, and what the
# agent and doctor say about this kernel's hooks.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root CI=true
# modprobe finds the guest kernel's modules in the unpacked package; tests relax what full emulation makes flaky.
export MODPROBE_OPTIONS="-d $hs_kroot" HS_EMULATED_KERNEL=1
export HOSTSCOPE_BIN=$hs_build/hostscope HS_PEER=$hs_build/hs_peer HOSTSCOPE_SRC=$hs_src HOSTSCOPE_BUILD=$hs_build
out=$hs_results
ip link set lo up
{
  echo "kernel $(uname -r)"
  "$HOSTSCOPE_BIN" doctor -o json > "$out/doctor.json" 2> "$out/doctor.err"
  echo "doctor exit $?"
} > "$out/info"
# What the agent itself says on this kernel (hooks chosen, what degrades), with libbpf's messages.
timeout 20 "$HOSTSCOPE_BIN" -vv connections --embedded > "$out/agent.log" 2>&1 &
sleep 12; kill -INT $! 2>/dev/null; wait
for t in ${hs_tests//,/ }; do
  start=$(date +%s)
  (cd /tmp && timeout 900 "$hs_build/tests/$t" --gtest_color=no > "$out/$t.log" 2>&1)
  rc=$?
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then echo "PASS $t ${secs}s" >> "$out/summary.part"; else echo "FAIL $t ${secs}s (exit $rc)" >> "$out/summary.part"; fi
done
mv "$out/summary.part" "$out/summary"
