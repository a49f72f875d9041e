/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* TCP connection lifecycle events: the one definition shared by bpf/tcp_lifecycle.bpf.c and the agent.
 * Fixed-width types only; the C++ side static_asserts the layout. */
#ifndef HOSTSCOPE_BPF_TCP_LIFECYCLE_H
#define HOSTSCOPE_BPF_TCP_LIFECYCLE_H

#include "counters.h"

#define HS_COMM_LEN 16

enum hs_tcp_event_kind {
  HS_EV_OPEN = 1,  /* connection established (active: SYN_SENT->ESTABLISHED; passive: accepted by its owner) */
  HS_EV_CLOSE = 2, /* socket reached TCP_CLOSE; carries the final counters and the outcome */
};

enum hs_role {
  HS_ROLE_UNKNOWN = 0, /* opened before hostscope started, or evicted from the socket table */
  HS_ROLE_ACTIVE = 1,  /* this host called connect() */
  HS_ROLE_PASSIVE = 2, /* this host accepted it */
};

enum hs_outcome {
  HS_OUT_NONE = 0,           /* open events */
  HS_OUT_CLOSED = 1,         /* orderly close after ESTABLISHED */
  HS_OUT_RESET_SENT = 2,     /* this end sent a RST while established */
  HS_OUT_RESET_RECEIVED = 3, /* the peer sent a RST while established */
  HS_OUT_REFUSED = 4,        /* connect answered by RST (ECONNREFUSED) */
  HS_OUT_TIMED_OUT = 5,      /* connect never answered (ETIMEDOUT) */
  HS_OUT_FAILED = 6,         /* never established for another reason (unreachable, aborted by the app, ...) */
};

enum hs_sock_flags {
  HS_F_OWNER = 1 << 0,       /* pid/tid/comm/cgroup were taken in the owner's process context */
  HS_F_OPEN_SEEN = 1 << 1,   /* hostscope saw the connection open (open_ts_ns is valid) */
  HS_F_ESTABLISHED = 1 << 2, /* reached ESTABLISHED */
  HS_F_RST_SENT = 1 << 3,
  HS_F_RST_RECV = 1 << 4,
  HS_F_GOID = 1 << 5, /* goid is valid (a Go process with known runtime offsets) */
  HS_F_FIN_SENT = 1 << 6, /* this end sent its FIN (entered FIN_WAIT1 or LAST_ACK) */
  HS_F_PEER = 1 << 7,     /* peer_pid is valid: the other end is a socket of this node with a known owner */
};

/* How long the end of a local connection that closed before its peer's owner was known stays findable. */
#define HS_PEER_GRACE_NS (5ULL * 1000 * 1000 * 1000)

struct hs_tcp_event {
  __u64 ts_ns;             /* event time, bpf_ktime_get_ns (CLOCK_MONOTONIC) */
  __u64 sock_id;           /* opaque id of this socket, unique while hostscope runs */
  __u64 open_ts_ns;        /* SYN_SENT (active) or SYN_RECV (passive) time; 0 when not seen */
  __u64 established_ts_ns; /* ESTABLISHED time; 0 when never established or not seen */
  __u64 cgroup_id;         /* cgroup v2 id of the owner task at connect/accept time */
  __u64 bytes_sent;        /* payload bytes sent and acknowledged: tcp_sock.bytes_acked less the SYN and FIN */
  __u64 bytes_received;    /* payload bytes received: tcp_sock.bytes_received less the peer's FIN */
  __u64 goid;              /* goroutine id of the connect/accept caller (valid with HS_F_GOID) */
  __u32 pid;               /* owner tgid (0 when unknown) */
  __u32 tid;               /* owner thread id */
  __u32 netns;             /* network namespace inode */
  __u32 srtt_us;           /* smoothed RTT in microseconds (tcp_sock.srtt_us >> 3) */
  __u32 retransmits;       /* tcp_sock.total_retrans */
  __u32 sk_err;            /* sk->sk_err at close (errno), explains failed connects */
  __u16 family;            /* AF_INET or AF_INET6 as seen on the socket (v4-mapped is normalised in user space) */
  __u16 sport;             /* local port, host byte order */
  __u16 dport;             /* remote port, host byte order */
  __u8 kind;               /* enum hs_tcp_event_kind */
  __u8 role;               /* enum hs_role */
  __u8 outcome;            /* enum hs_outcome */
  __u8 flags;              /* enum hs_sock_flags */
  __u8 oldstate;           /* TCP state before the close transition (diagnostics) */
  __u8 pad0;
  __u8 saddr[16];          /* local address: 4 bytes for AF_INET, 16 for AF_INET6, network order */
  __u8 daddr[16];          /* remote address */
  char comm[HS_COMM_LEN];  /* owner thread name */
  __u32 peer_pid;          /* owner tgid of the other end, when it is on this node (valid with HS_F_PEER) */
};

#endif
