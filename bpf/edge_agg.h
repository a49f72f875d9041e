/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Per-edge aggregation in the kernel: the key and the counters of the `tcp_edges` map, the one definition shared
 * by bpf/tcp_lifecycle.bpf.c and the agent. Fixed-width types only; the C++ side static_asserts the layout.
 *
 * An edge is what the topology keys a connection on, as the kernel knows it: the local end's owner (tgid and
 * cgroup), the two addresses, the server's port and the direction. The client's ephemeral port is not in it, so
 * all connections between the same two ends add to one entry. */
#ifndef HOSTSCOPE_BPF_EDGE_AGG_H
#define HOSTSCOPE_BPF_EDGE_AGG_H

/* Connect latency histogram: bucket 0 counts latencies under 1 us, bucket i (1..N-2) those in [2^(i-1), 2^i) us,
 * the last one everything from 2^(N-2) us (about 1.07 s) up. Every bound is a power of two of microseconds. */
#define HS_EDGE_LAT_BUCKETS 22

/* Outcomes are enum hs_outcome (tcp_lifecycle.h): 1..6; slot 0 stays 0. */
#define HS_EDGE_OUTCOMES 8

struct hs_edge_key {
  __u8 laddr[16];  /* local address; IPv4 (also v4-mapped IPv6) in the first 4 bytes, the rest 0 */
  __u8 raddr[16];  /* remote address, same form */
  __u64 cgroup_id; /* the local owner's cgroup v2 id (0: owner unknown) */
  __u32 pid;       /* the local owner's tgid (0: unknown) */
  __u32 peer_pid;  /* passive edges only: the local client's tgid when the kernel stitched it (it is known before the
                      open is counted and does not change); 0 otherwise */
  __u32 netns;     /* network namespace inode, for loopback ends only (0 otherwise) */
  __u16 port;      /* the server's port: the remote port of an active (outbound) edge, the local one of a passive */
  __u8 family;     /* 4 or 6 (v4-mapped IPv6 counts as 4) */
  __u8 role;       /* enum hs_role */
};

struct hs_edge_counts {
  __u64 opens;    /* connections counted open: what HS_EV_OPEN events would report (established, owner known) */
  __u64 closes;   /* connections closed: what HS_EV_CLOSE events would report */
  __u64 outcomes[HS_EDGE_OUTCOMES]; /* closes by enum hs_outcome */
  __u64 bytes_sent;     /* payload bytes, summed at close (as the close event reports them) */
  __u64 bytes_received;
  __u64 retransmits;    /* tcp_sock.total_retrans, summed at close */
  __u64 latency_sum_ns; /* active opens: the sum of their connect latencies */
  __u64 latency_log2_us[HS_EDGE_LAT_BUCKETS]; /* active opens by connect latency */
  __u64 last_ns;        /* bpf_ktime_get_ns of the latest update (a plain store: the latest writer wins) */
};

#endif
