/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-version differences, in one place (libbpf-tools core_fixes.bpf.h style). */
#ifndef HOSTSCOPE_BPF_LIB_CORE_FIXES_H
#define HOSTSCOPE_BPF_LIB_CORE_FIXES_H

#include "vmlinux.h"

/* tcp:tcp_send_reset used the shared `tcp_event_sk_skb` record until 6.10, which gave it its own
 * `tcp_send_reset` record (adding the reset reason). Both begin with skbaddr then skaddr after the common
 * header, so the classic-tracepoint fallback reads this fixed prefix (no CO-RE relocation: the layout of a
 * tracepoint's leading fields is its ABI) and works on both. */
struct hs_tp_tcp_reset_ctx {
  struct trace_entry ent;
  const void* skbaddr;
  const void* skaddr;
};

/* tcp:tcp_receive_reset (record tcp_event_sk): skaddr right after the common header on every kernel. */
struct hs_tp_tcp_sk_ctx {
  struct trace_entry ent;
  const void* skaddr;
};

/* sock:sock_send_length / sock:sock_recv_length (6.3+): sk right after the common header. */
struct hs_tp_sock_length_ctx {
  struct trace_entry ent;
  const void* sk;
  __u16 family;
  __u16 protocol;
  int ret;
  int flags;
};

#endif
