#!/usr/bin/env bash
# Stand-in "agent" for scripts/bench-churn.sh syscall-tracepoint: it loads nothing and only enables the
# tracepoint of a syscall the workload never makes (sys_exit_reboot). Any enabled syscall tracepoint sends
# every syscall of every task through the kernel's syscall-trace slow path; this measures that cost alone.
# hostscope paid it for its accept()/accept4() exit hook until the passive owner moved to the socket
# send/receive tracepoints (docs/benchmarks.md). Runs until SIGINT, then disables the event.
set -euo pipefail
t=/sys/kernel/tracing
[ -d $t/events ] || mount -t tracefs tracefs $t
ev=$t/events/syscalls/sys_exit_reboot/enable
echo 1 > $ev
sleep infinity &
sleeper=$!
trap 'kill $sleeper; echo 0 > $ev; echo "stand-in: 0 received, 0 lost (ring buffer full), 0 lost (hook re-entered)" >&2; exit 0' INT TERM
echo "syscall tracepoint enabled; running" >&2
wait $sleeper
