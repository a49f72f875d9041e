#!/usr/bin/env bash
# Stand-in "agent" for scripts/bench-churn.sh tcplife: libbpf-tools' tcplife, the well-known per-connection
# tracer the Foundation issue compares against, printing a line per closed connection like
# `hostscope connections`. A reference point only: it reports no event or loss counts. Runs until SIGINT.
set -euo pipefail
command -v tcplife > /dev/null || PATH=$PATH:/usr/sbin
command -v tcplife > /dev/null || { echo "tcplife not found (apt-get install libbpf-tools)" >&2; exit 1; }
tcplife &
tracer=$!
trap 'kill -INT $tracer; wait $tracer || true; echo "stand-in: 0 received, 0 lost (ring buffer full), 0 lost (hook re-entered)" >&2; exit 0' INT TERM
# tcplife prints its header once attached; its output goes to /dev/null here, so wait for its programs instead.
for _ in $(seq 50); do
  bpftool prog show 2>/dev/null | grep -q inet_sock_set && break
  sleep 0.1
done
echo "tcplife attached; running" >&2
wait $tracer
