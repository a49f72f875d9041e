/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Current goroutine id for Go processes the agent has identified (layer 1: needs common.bpf.h).
 * Only tgids present in go_procs are read; nothing is read for other processes. */
#ifndef HOSTSCOPE_BPF_LIB_GOROUTINE_H
#define HOSTSCOPE_BPF_LIB_GOROUTINE_H

#include "go_offsets.h"
#include "lib/common.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, HS_GO_PROCS_MAX);
  __type(key, __u32); /* tgid */
  __type(value, struct hs_go_offsets);
} go_procs SEC(".maps");

/* Returns 1 and sets *goid when the current thread belongs to a known Go process and the read worked. */
static __always_inline int go__current_goid(__u32 tgid, __u64* goid) {
  struct hs_go_offsets* off = bpf_map_lookup_elem(&go_procs, &tgid);
  if (!off) return 0;
  struct task_struct* task = (struct task_struct*)bpf_get_current_task();
  __u64 fsbase = BPF_CORE_READ(task, thread.fsbase);
  __u64 g = 0;
  if (!fsbase || bpf_probe_read_user(&g, sizeof(g), (void*)(fsbase + off->g_tls_offset)) || !g ||
      bpf_probe_read_user(goid, sizeof(*goid), (void*)(g + off->goid_offset))) {
    counter__inc(HS_CNT_GOID_READ_FAIL);
    return 0;
  }
  return 1;
}

#endif
