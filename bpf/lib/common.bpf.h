/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Layer 0 helpers shared by every hostscope BPF object: the counters map, ring buffer output with batched
 * wake-ups, and constants vmlinux.h does not carry (macros are not in BTF). */
#ifndef HOSTSCOPE_BPF_LIB_COMMON_H
#define HOSTSCOPE_BPF_LIB_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "counters.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define ECONNREFUSED 111
#define ETIMEDOUT 110

/* Ring buffer wake-up threshold in bytes, set by the agent before load; 0 (the default) never wakes the reader,
 * which drains on its own short poll timer. Why not wake per event: a wake-up is an irq_work self-IPI raised
 * from inside this program; softirqs run on that interrupt's exit, re-enter the same TCP hooks on this CPU, and
 * the kernel skips a program that is already running there (counted as recursion misses). On loopback that
 * loses events under load, so wake-ups stay off the per-event path. */
const volatile __u64 hs_wakeup_bytes = 0;

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, HS_CNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline void counter__inc(__u32 idx) {
  __u64* v = bpf_map_lookup_elem(&counters, &idx);
  if (v) *v += 1; /* per-CPU slot: no atomics needed */
}

/* Reserve an event in `rb`; a failed reserve is counted, never silent. */
static __always_inline void* rb__reserve(void* rb, __u64 size) {
  void* e = bpf_ringbuf_reserve(rb, size, 0);
  if (!e) counter__inc(HS_CNT_RB_DROPPED);
  return e;
}

static __always_inline void rb__submit(void* rb, void* e) {
  __u64 flags = BPF_RB_NO_WAKEUP;
  if (hs_wakeup_bytes && bpf_ringbuf_query(rb, BPF_RB_AVAIL_DATA) >= hs_wakeup_bytes) flags = BPF_RB_FORCE_WAKEUP;
  bpf_ringbuf_submit(e, flags);
  counter__inc(HS_CNT_EVENTS);
}

#endif
