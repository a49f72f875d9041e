// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TCP connection lifecycle: every TCP socket from open to close, with its owner, latency, bytes, RTT,
 * retransmits and outcome.
 *
 * Hooks (each has a BTF-typed tp_btf program and a classic-tracepoint twin; the agent loads one set):
 *   inet_sock_set_state  state machine: open, established, close (+ owners, process context only)
 *   tcp_send_reset / tcp_receive_reset  mark resets so the close can say how the connection ended
 *   sock_send_length / sock_recv_length  owner of passively opened sockets, at their first send or receive
 *
 * Owner attribution: passive-side state changes up to ESTABLISHED run in softirq, where `current` is whoever
 * was interrupted, so the passive owner is taken in the owner's own context: the first send or receive on the
 * socket (sock_sendmsg/sock_recvmsg tracepoints, also for reads that find no data yet), or, for a socket
 * closed without any I/O, its close() (the FIN_WAIT1 and LAST_ACK transitions run in the closing task).
 * Active opens (CLOSE->SYN_SENT) run inside connect(), in the owner's context. No other transition reads
 * `current`. There is deliberately no syscall tracepoint: enabling any one sends every syscall of every task
 * through the kernel's syscall-trace slow path (docs/benchmarks.md). */
#include "lib/common.bpf.h"
#include "lib/core_fixes.bpf.h"
#include "lib/goroutine.bpf.h"
#include "tcp_lifecycle.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Emit HS_EV_OPEN events (the connections command only wants them with --opens). */
const volatile bool emit_opens = true;

/* Per-socket state while a connection lives. Bounded LRU: a full table evicts the oldest socket, whose
 * close is then reported as untracked (counted in HS_CNT_CLOSE_UNTRACKED). Size set by the agent. */
struct sock_info {
  __u64 id;
  __u64 open_ts_ns;
  __u64 established_ts_ns;
  __u64 cgroup_id;
  __u64 goid;
  __u32 pid;
  __u32 tid;
  __u16 sport; /* local port while connected: the kernel clears it before some close transitions */
  __u8 role;
  __u8 flags;
  __u8 pad[4];
  char comm[HS_COMM_LEN];
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64); /* struct sock * */
  __type(value, struct sock_info);
} tcp_socks SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4 * 1024 * 1024);
} tcp_events SEC(".maps");

__u64 sock_seq = 0;

static __always_inline void sock__record_owner(struct sock_info* si) {
  __u64 pid_tgid = bpf_get_current_pid_tgid();
  si->pid = pid_tgid >> 32;
  si->tid = (__u32)pid_tgid;
  si->cgroup_id = bpf_get_current_cgroup_id();
  bpf_get_current_comm(si->comm, sizeof(si->comm));
  si->flags |= HS_F_OWNER;
  if (go__current_goid(si->pid, &si->goid)) si->flags |= HS_F_GOID;
}

static __always_inline void sock__read_tuple(struct sock* sk, struct hs_tcp_event* e) {
  e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
  e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
  e->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
  e->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
  if (e->family == AF_INET6) {
    BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
    BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
  } else {
    BPF_CORE_READ_INTO((__u32*)e->saddr, sk, __sk_common.skc_rcv_saddr);
    BPF_CORE_READ_INTO((__u32*)e->daddr, sk, __sk_common.skc_daddr);
  }
}

static __always_inline void event__fill_from_info(struct hs_tcp_event* e, const struct sock_info* si) {
  e->sock_id = si->id;
  e->open_ts_ns = si->open_ts_ns;
  e->established_ts_ns = si->established_ts_ns;
  e->cgroup_id = si->cgroup_id;
  e->goid = si->goid;
  e->pid = si->pid;
  e->tid = si->tid;
  e->role = si->role;
  e->flags = si->flags;
  __builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
}

static __always_inline void event__emit_open(struct sock* sk, const struct sock_info* si, __u64 now) {
  if (!emit_opens) return;
  struct hs_tcp_event* e = rb__reserve(&tcp_events, sizeof(*e));
  if (!e) return;
  __builtin_memset(e, 0, sizeof(*e));
  e->ts_ns = now;
  e->kind = HS_EV_OPEN;
  event__fill_from_info(e, si);
  sock__read_tuple(sk, e);
  rb__submit(&tcp_events, e);
}

/* How the connection ended. An application's abortive close (SO_LINGER 0, or close() with unread data) moves
 * the socket to CLOSE *before* tcp_send_active_reset() fires its tracepoint, so a direct jump to CLOSE from a
 * synchronized state, with no reset received and no error, is that abort: this end sent the RST. */
static __always_inline __u8 close__outcome(__u8 flags, __u32 sk_err, int oldstate) {
  if (flags & HS_F_ESTABLISHED) {
    if (flags & HS_F_RST_RECV) return HS_OUT_RESET_RECEIVED;
    if (flags & HS_F_RST_SENT) return HS_OUT_RESET_SENT;
    if (sk_err == ETIMEDOUT) return HS_OUT_TIMED_OUT;
    if (!sk_err && (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT || oldstate == TCP_FIN_WAIT1))
      return HS_OUT_RESET_SENT;
    return HS_OUT_CLOSED;
  }
  if (sk_err == ECONNREFUSED || (flags & HS_F_RST_RECV)) return HS_OUT_REFUSED;
  if (sk_err == ETIMEDOUT) return HS_OUT_TIMED_OUT;
  return HS_OUT_FAILED;
}

static __always_inline void event__emit_close(struct sock* sk, const struct sock_info* si, int oldstate, __u64 now) {
  struct hs_tcp_event* e = rb__reserve(&tcp_events, sizeof(*e));
  if (!e) return;
  __builtin_memset(e, 0, sizeof(*e));
  e->ts_ns = now;
  e->kind = HS_EV_CLOSE;
  if (si) {
    event__fill_from_info(e, si);
  } else {
    /* Opened before we started (or evicted): report what the socket itself still knows. */
    e->flags = oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV ? HS_F_ESTABLISHED : 0;
  }
  sock__read_tuple(sk, e);
  if (!e->sport && si) e->sport = si->sport;
  /* bytes_acked and bytes_received count sequence space: the active side's SYN is acked (counted once
   * established), our FIN counts once acked, and the peer's FIN counts once received (SOCK_DONE). Report
   * payload bytes only, so N bytes written by the application show as N. */
  struct tcp_sock* tp = (struct tcp_sock*)sk;
  __u64 acked = BPF_CORE_READ(tp, bytes_acked);
  __u64 received = BPF_CORE_READ(tp, bytes_received);
  if (e->role == HS_ROLE_ACTIVE && (e->flags & HS_F_ESTABLISHED) && acked) acked--;
  if ((e->flags & HS_F_FIN_SENT) && acked && BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq)) acked--;
  if ((BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)) && received) received--;
  e->bytes_sent = acked;
  e->bytes_received = received;
  e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
  e->retransmits = BPF_CORE_READ(tp, total_retrans);
  e->sk_err = BPF_CORE_READ(sk, sk_err);
  e->oldstate = oldstate;
  e->outcome = close__outcome(e->flags, e->sk_err, oldstate);
  rb__submit(&tcp_events, e);
}

/* The owner of a passive socket acts on it for the first time (process context): record it and report the
 * open now. Active sockets have their owner from connect(); sockets hostscope does not track are left alone. */
static __always_inline void sock__owner_acts(struct sock_info* si, struct sock* sk) {
  if (si->role != HS_ROLE_PASSIVE || (si->flags & HS_F_OWNER)) return;
  sock__record_owner(si);
  if (si->flags & HS_F_ESTABLISHED) event__emit_open(sk, si, bpf_ktime_get_ns());
}

static __always_inline struct sock_info* sock__insert(__u64 key, __u8 role, __u64 now) {
  struct sock_info si = {};
  si.id = __sync_fetch_and_add(&sock_seq, 1) + 1;
  si.role = role;
  si.open_ts_ns = now;
  si.flags = HS_F_OPEN_SEEN;
  if (bpf_map_update_elem(&tcp_socks, &key, &si, BPF_ANY)) {
    counter__inc(HS_CNT_SOCK_TABLE_FULL);
    return 0;
  }
  return bpf_map_lookup_elem(&tcp_socks, &key);
}

static __always_inline int handle_set_state(struct sock* sk, int oldstate, int newstate) {
  /* Most transitions of a connection's life are of no interest (FIN_WAIT2, CLOSE_WAIT, CLOSING, ...): leave
   * before any helper call. This hook runs about ten times per connection, in the workload's own threads. */
  if (newstate != TCP_SYN_SENT && newstate != TCP_SYN_RECV && newstate != TCP_ESTABLISHED &&
      newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
    return 0;
  if (newstate == TCP_CLOSE && (oldstate == TCP_LISTEN || oldstate == TCP_CLOSE)) return 0;
  if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
  __u64 key = (__u64)sk;
  struct sock_info* si;

  if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
    /* Only close() and shutdown() send our FIN: this runs in the task closing the socket. */
    si = bpf_map_lookup_elem(&tcp_socks, &key);
    if (!si) return 0;
    si->flags |= HS_F_FIN_SENT;
    sock__owner_acts(si, sk);
    return 0;
  }
  __u64 now = bpf_ktime_get_ns();
  if (newstate == TCP_SYN_SENT) {
    /* Active open, inside connect() (or sendmsg with fast open): the current task owns the socket. */
    si = sock__insert(key, HS_ROLE_ACTIVE, now);
    if (si) sock__record_owner(si);
    return 0;
  }
  if (newstate == TCP_SYN_RECV) {
    /* Passive open in softirq: the owner is unknown until accept(). */
    sock__insert(key, HS_ROLE_PASSIVE, now);
    return 0;
  }
  if (newstate == TCP_ESTABLISHED) {
    si = bpf_map_lookup_elem(&tcp_socks, &key);
    if (!si) return 0;
    si->established_ts_ns = now;
    si->flags |= HS_F_ESTABLISHED;
    si->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
    if (si->role == HS_ROLE_ACTIVE) event__emit_open(sk, si, now);
    return 0;
  }

  /* TCP_CLOSE from a connection state. */
  si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (!si) counter__inc(HS_CNT_CLOSE_UNTRACKED);
  else if (si->role == HS_ROLE_PASSIVE && !(si->flags & HS_F_OWNER) && (si->flags & HS_F_ESTABLISHED))
    counter__inc(HS_CNT_PASSIVE_NO_OWNER);
  event__emit_close(sk, si, oldstate, now);
  if (si) bpf_map_delete_elem(&tcp_socks, &key);
  return 0;
}

static __always_inline int handle_reset(const struct sock* sk, __u8 flag) {
  if (!sk) return 0;
  __u64 key = (__u64)sk;
  struct sock_info* si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (si) si->flags |= flag;
  return 0;
}

/* A send or receive on a socket, in the calling task (sock_sendmsg/sock_recvmsg): the passive owner. Runs for
 * every socket send and receive on the host, so it leaves at once for anything but a tracked TCP socket. */
static __always_inline int handle_sock_io(struct sock* sk) {
  if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
  __u64 key = (__u64)sk;
  struct sock_info* si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (si) sock__owner_acts(si, sk);
  return 0;
}

/* ---- BTF-typed raw tracepoints (preferred: no tracefs, ~8 ns per call) ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_inet_sock_set_state, struct sock* sk, int oldstate, int newstate) {
  return handle_set_state(sk, oldstate, newstate);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(btf_tcp_send_reset, const struct sock* sk) { return handle_reset(sk, HS_F_RST_SENT); }

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(btf_tcp_receive_reset, struct sock* sk) { return handle_reset(sk, HS_F_RST_RECV); }

SEC("tp_btf/sock_send_length")
int BPF_PROG(btf_sock_send_length, struct sock* sk, int ret, int flags) { return handle_sock_io(sk); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(btf_sock_recv_length, struct sock* sk, int ret, int flags) { return handle_sock_io(sk); }

/* ---- classic tracepoints (fallback where tp_btf cannot attach; need tracefs) ---- */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state* ctx) {
  return handle_set_state((struct sock*)BPF_CORE_READ(ctx, skaddr), BPF_CORE_READ(ctx, oldstate),
                          BPF_CORE_READ(ctx, newstate));
}

SEC("tracepoint/tcp/tcp_send_reset")
int tp_tcp_send_reset(struct hs_tp_tcp_reset_ctx* ctx) {
  return handle_reset((const struct sock*)ctx->skaddr, HS_F_RST_SENT);
}

SEC("tracepoint/tcp/tcp_receive_reset")
int tp_tcp_receive_reset(struct hs_tp_tcp_sk_ctx* ctx) {
  return handle_reset((const struct sock*)ctx->skaddr, HS_F_RST_RECV);
}

SEC("tracepoint/sock/sock_send_length")
int tp_sock_send_length(struct hs_tp_sock_length_ctx* ctx) {
  return ctx->protocol == IPPROTO_TCP ? handle_sock_io((struct sock*)ctx->sk) : 0;
}

SEC("tracepoint/sock/sock_recv_length")
int tp_sock_recv_length(struct hs_tp_sock_length_ctx* ctx) {
  return ctx->protocol == IPPROTO_TCP ? handle_sock_io((struct sock*)ctx->sk) : 0;
}
