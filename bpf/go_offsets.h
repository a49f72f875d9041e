/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Per-process Go runtime offsets pushed by the agent (identity) so BPF can read the current goroutine id. */
#ifndef HOSTSCOPE_BPF_GO_OFFSETS_H
#define HOSTSCOPE_BPF_GO_OFFSETS_H

#define HS_GO_PROCS_MAX 4096

struct hs_go_offsets {
  __s64 g_tls_offset; /* offset of the g pointer from the thread's fsbase (-8 for internally linked amd64) */
  __u32 goid_offset;  /* offset of goid in runtime.g */
  __u32 pad;
};

#endif
