// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* TCP connection lifecycle: every TCP socket from open to close, with its owner, latency, bytes, RTT,
 * retransmits and outcome.
 *
 * Hooks (each has a BTF-typed tp_btf program and a classic-tracepoint twin; the agent loads one set):
 *   inet_sock_set_state  state machine: open, established, close (+ owners, process context only)
 *   tcp_send_reset / tcp_receive_reset  mark resets so the close can say how the connection ended
 *   sock_send_length / sock_recv_length  owner of passively opened sockets, at their first send or receive
 *   fexit/inet_csk_accept  the same owner at accept(), where those two tracepoints are missing (6.1)
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
#include "edge_agg.h"
#include "tcp_lifecycle.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Every handler is inlined twice: `direct` for the tp_btf programs, whose arguments are BTF-typed kernel
 * pointers the verifier lets us load from (a plain load, checked at load time), and not `direct` for the
 * classic tracepoints, whose pointers are plain numbers read with bpf_probe_read_kernel (a helper call each).
 * `direct` is always a literal, so the compiler keeps only one side. */
#define HS_RD(direct, p, path) ((direct) ? (p)->path : BPF_CORE_READ(p, path))

/* Emit HS_EV_OPEN events (the connections command only wants them with --opens). */
const volatile bool emit_opens = true;
/* Stitch local peers: each end of a connection between two sockets of this node learns the other's owner
 * (peer_pid), so identity needs no open events to name the peer. */
const volatile bool stitch_peers = false;
/* Count every connection in its edge's entry of tcp_edges (docs/aggregation.md). */
const volatile bool aggregate_edges = false;
/* With aggregate_edges: also send each connection's events. The agent clears it while no consumer wants each
 * connection (it is read at every use, so the switch takes effect at once). A connection whose edge finds no room
 * in tcp_edges is sent whatever this says, and counted in HS_CNT_EDGE_TABLE_FULL: never a silent loss. */
volatile bool events_wanted = true;

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
  __u32 peer_pid; /* with HS_F_PEER */
  char comm[HS_COMM_LEN];
  __u8 peer_waiting; /* this socket's tuple is in tcp_peers, waiting for the other end */
  __u8 pad[7];
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

/* Local peer stitching (stitch_peers). An established active socket leaves its tuple; the passive end, once its
 * owner is known, looks for the reversed tuple: found, both ends learn each other's owner and the entry goes. An
 * active end that closes while still waiting stays for HS_PEER_GRACE_NS, so a server whose owner acts after the
 * client closed still finds the client. The map thus holds outbound connections without a local peer (every
 * remote one) and recent closes; LRU bounds it, and an eviction that cost a waiting connection its entry is
 * counted at its close (HS_CNT_PEER_EVICTED). Same keying as docs/identity.md says:
 * IPv4-mapped IPv6 as IPv4; the network namespace only for loopback tuples, so veth pairs meet across
 * namespaces. */
/* Both structs live on the BPF stack, where the verifier wants every load aligned to its size: 8-byte aligned,
 * so the addresses can be compared and copied as __u64 words. */
struct peer_key {
  __u8 saddr[16];
  __u8 daddr[16];
  __u16 sport;
  __u16 dport;
  __u32 netns;
  __u32 family;
} __attribute__((aligned(8)));

struct peer_val {
  __u64 sk;        /* the waiting socket (its tcp_socks key) */
  __u64 sock_id;   /* and its id, so a reused socket address is not mistaken for it */
  __u64 closed_ns; /* 0 while open */
  __u32 pid;
  __u32 pad;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct peer_key);
  __type(value, struct peer_val);
} tcp_peers SEC(".maps");

/* Per-edge counters (aggregate_edges). A plain hash: the kernel never evicts from it, so a count once made stays
 * until the agent takes the entry out; an edge that finds the table full is sent as events instead. Size set by
 * the agent (1 entry when aggregation is off). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct hs_edge_key);
  __type(value, struct hs_edge_counts);
} tcp_edges SEC(".maps");

/* The first value of a new edge (too big for the BPF stack). */
const struct hs_edge_counts hs_edge_zero = {};

/* A socket's addresses and ports, read once per use. */
struct sock_tuple {
  __u8 saddr[16];
  __u8 daddr[16];
  __u32 netns;
  __u16 family;
  __u16 sport;
  __u16 dport;
} __attribute__((aligned(8)));

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

static __always_inline void sock__read_tuple(struct sock* sk, struct sock_tuple* e, const bool direct) {
  /* The family is kept as a constant per path (2 or 10) that the compiler cannot trace back to the value read.
   * Otherwise it tests the raw value again where a caller tests e->family, and on the IPv4 path the verifier, whose
   * ranges cannot say "not 10", also walks the IPv6 side and finds registers only that side loaded ("R4 !read_ok"
   * at load). */
  const bool v6 = HS_RD(direct, sk, __sk_common.skc_family) == AF_INET6;
  __u16 family = v6 ? AF_INET6 : AF_INET;
  barrier_var(family);
  e->family = family;
  e->sport = HS_RD(direct, sk, __sk_common.skc_num);
  e->dport = bpf_ntohs(HS_RD(direct, sk, __sk_common.skc_dport));
  if (v6) {
    if (direct) {
      __u64* s = (__u64*)e->saddr;
      __u64* d = (__u64*)e->daddr;
      s[0] = *(__u64*)&sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
      s[1] = *(__u64*)&sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
      d[0] = *(__u64*)&sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[0];
      d[1] = *(__u64*)&sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[2];
    } else {
      BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
      BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    }
  } else {
    *(__u32*)e->saddr = HS_RD(direct, sk, __sk_common.skc_rcv_saddr);
    *(__u32*)e->daddr = HS_RD(direct, sk, __sk_common.skc_daddr);
  }
  e->netns = direct ? sk->__sk_common.skc_net.net->ns.inum : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline void event__set_tuple(struct hs_tcp_event* e, const struct sock_tuple* t) {
  e->family = t->family;
  e->sport = t->sport;
  e->dport = t->dport;
  e->netns = t->netns;
  __builtin_memcpy(e->saddr, t->saddr, sizeof(e->saddr));
  __builtin_memcpy(e->daddr, t->daddr, sizeof(e->daddr));
}

static __always_inline bool addr__v4_mapped(const __u8* a) {
  return !*(__u64*)a && !a[8] && !a[9] && a[10] == 0xff && a[11] == 0xff;
}

static __always_inline bool addr__loopback(const __u8* a, __u32 family) {
  if (family == 4) return a[0] == 127;
  return !*(__u64*)a && !*(__u32*)(a + 8) && *(__u32*)(a + 12) == bpf_htonl(1);
}

/* Key of `t` (reversed: of its other end). */
static __always_inline void peer__key(const struct sock_tuple* t, struct peer_key* k, bool reversed) {
  __builtin_memset(k, 0, sizeof(*k));
  const __u8* s = reversed ? t->daddr : t->saddr;
  const __u8* d = reversed ? t->saddr : t->daddr;
  k->sport = reversed ? t->dport : t->sport;
  k->dport = reversed ? t->sport : t->dport;
  if (t->family == AF_INET6 && addr__v4_mapped(t->daddr) &&
      (addr__v4_mapped(t->saddr) || (!*(__u64*)t->saddr && !*(__u64*)(t->saddr + 8)))) {
    k->family = 4;
    *(__u32*)k->saddr = *(__u32*)(s + 12);
    *(__u32*)k->daddr = *(__u32*)(d + 12);
  } else if (t->family == AF_INET6) {
    k->family = 6;
    __builtin_memcpy(k->saddr, s, 16);
    __builtin_memcpy(k->daddr, d, 16);
  } else {
    k->family = 4;
    *(__u32*)k->saddr = *(__u32*)s;
    *(__u32*)k->daddr = *(__u32*)d;
  }
  if (addr__loopback(k->saddr, k->family) && addr__loopback(k->daddr, k->family)) k->netns = t->netns;
}

/* `si` is connected and its owner known. The active end is always first: its owner is known at connect() and it
 * is established before the other end is even accepted. So the active end only leaves its tuple, and the
 * passive end, once its owner acts, only looks for the other's; one insert and one lookup per local connection,
 * and nothing for an inbound connection from another host. */
static __always_inline void peer__meet(__u64 key, struct sock_info* si, const struct sock_tuple* t, __u64 now) {
  struct peer_key k;
  if (si->role == HS_ROLE_ACTIVE) {
    struct peer_val v = {.sk = key, .sock_id = si->id, .pid = si->pid};
    peer__key(t, &k, false);
    if (!bpf_map_update_elem(&tcp_peers, &k, &v, BPF_ANY)) si->peer_waiting = 1;
    return;
  }
  peer__key(t, &k, true);
  struct peer_val* other = bpf_map_lookup_elem(&tcp_peers, &k);
  if (!other || (other->closed_ns && now - other->closed_ns >= HS_PEER_GRACE_NS)) return;
  si->peer_pid = other->pid;
  si->flags |= HS_F_PEER;
  if (!other->closed_ns) {
    struct sock_info* osi = bpf_map_lookup_elem(&tcp_socks, &other->sk);
    if (osi && osi->id == other->sock_id) {
      osi->peer_pid = si->pid;
      osi->flags |= HS_F_PEER;
      osi->peer_waiting = 0;
    }
  }
  bpf_map_delete_elem(&tcp_peers, &k);
}

/* `si` closes while still waiting for its peer: keep its entry for the grace period, or count its loss. */
static __always_inline void peer__closing(const struct sock_info* si, const struct sock_tuple* t, __u64 now) {
  struct peer_key k;
  peer__key(t, &k, false);
  struct peer_val* v = bpf_map_lookup_elem(&tcp_peers, &k);
  if (v && v->sock_id == si->id) v->closed_ns = now;
  else counter__inc(HS_CNT_PEER_EVICTED);
}

/* What a close reports, read once for the event and the edge. */
struct close_figures {
  __u64 bytes_sent;
  __u64 bytes_received;
  __u32 srtt_us;
  __u32 retransmits;
  __u32 sk_err;
  __u8 flags;
  __u8 outcome;
  __u8 pad[2];
};

/* The edge of `t`, owned by `si` (NULL: a socket hostscope did not see open). Addresses normalised as peer__key
 * does them; the server's port is the remote one for an active socket, the local one for a passive socket, and
 * the lower of the two when the direction is unknown (ephemeral ports are the high ones). */
static __always_inline void edge__key(const struct sock_tuple* t, const struct sock_info* si, struct hs_edge_key* k) {
  struct peer_key pk;
  peer__key(t, &pk, false);
  __builtin_memset(k, 0, sizeof(*k));
  __builtin_memcpy(k->laddr, pk.saddr, sizeof(k->laddr));
  __builtin_memcpy(k->raddr, pk.daddr, sizeof(k->raddr));
  k->family = pk.family;
  k->netns = pk.netns;
  if (si) {
    k->pid = si->pid;
    k->cgroup_id = si->cgroup_id;
    k->role = si->role;
    if (si->role == HS_ROLE_PASSIVE && (si->flags & HS_F_PEER)) k->peer_pid = si->peer_pid;
  }
  if (k->role == HS_ROLE_ACTIVE) k->port = t->dport;
  else if (k->role == HS_ROLE_PASSIVE) k->port = t->sport;
  else k->port = t->sport < t->dport ? t->sport : t->dport;
}

/* The counters of `k`, created at zero when new; NULL (counted) when the table is full. */
static __always_inline struct hs_edge_counts* edge__counts(const struct hs_edge_key* k) {
  struct hs_edge_counts* c = bpf_map_lookup_elem(&tcp_edges, k);
  if (c) return c;
  /* -EEXIST: another CPU created it meanwhile; the lookup below finds it. Only the call that created the entry
   * counts it, so the agent knows the occupancy without walking the table. */
  if (!bpf_map_update_elem(&tcp_edges, k, &hs_edge_zero, BPF_NOEXIST)) counter__inc(HS_CNT_EDGE_CREATED);
  c = bpf_map_lookup_elem(&tcp_edges, k);
  if (!c) counter__inc(HS_CNT_EDGE_TABLE_FULL);
  return c;
}

/* log2 bucket of a latency in microseconds (HS_EDGE_LAT_BUCKETS). */
static __always_inline __u32 edge__latency_bucket(__u64 us) {
  __u32 b = 0;
  if (us >= 1ULL << 32) return HS_EDGE_LAT_BUCKETS - 1;
  if (us >= 1 << 16) { b += 16; us >>= 16; }
  if (us >= 1 << 8) { b += 8; us >>= 8; }
  if (us >= 1 << 4) { b += 4; us >>= 4; }
  if (us >= 1 << 2) { b += 2; us >>= 2; }
  if (us >= 1 << 1) { b += 1; us >>= 1; }
  b += us; /* us is now 0 or 1: bucket 0 for 0 us, else floor(log2)+1 */
  return b < HS_EDGE_LAT_BUCKETS - 1 ? b : HS_EDGE_LAT_BUCKETS - 1;
}

/* Counts the open of `si` (established, owner known) in its edge. Returns 0 when the table had no room. Not
 * inlined: its key lives in its own stack frame. */
static __noinline int edge__count_open(const struct sock_tuple* t, const struct sock_info* si, __u64 now) {
  struct hs_edge_key k;
  edge__key(t, si, &k);
  struct hs_edge_counts* c = edge__counts(&k);
  if (!c) return 0;
  __sync_fetch_and_add(&c->opens, 1);
  if (si->role == HS_ROLE_ACTIVE && si->established_ts_ns >= si->open_ts_ns && si->open_ts_ns) {
    __u64 ns = si->established_ts_ns - si->open_ts_ns;
    __sync_fetch_and_add(&c->latency_sum_ns, ns);
    __u32 b = edge__latency_bucket(ns / 1000);
    if (b < HS_EDGE_LAT_BUCKETS) __sync_fetch_and_add(&c->latency_log2_us[b], 1);
  }
  c->last_ns = now;
  return 1;
}

/* Counts the close of a connection in its edge; 0 when the table had no room. */
static __noinline int edge__count_close(const struct sock_tuple* t, const struct sock_info* si,
                                        const struct close_figures* f, __u64 now) {
  struct hs_edge_key k;
  edge__key(t, si, &k);
  struct hs_edge_counts* c = edge__counts(&k);
  if (!c) return 0;
  __sync_fetch_and_add(&c->closes, 1);
  __u32 o = f->outcome;
  if (o < HS_EDGE_OUTCOMES) __sync_fetch_and_add(&c->outcomes[o], 1);
  __sync_fetch_and_add(&c->bytes_sent, f->bytes_sent);
  __sync_fetch_and_add(&c->bytes_received, f->bytes_received);
  __sync_fetch_and_add(&c->retransmits, f->retransmits);
  c->last_ns = now;
  return 1;
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
  e->peer_pid = si->peer_pid;
  __builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
}

static __always_inline void event__emit_open(const struct sock_tuple* t, const struct sock_info* si, __u64 now) {
  struct hs_tcp_event* e = rb__reserve(&tcp_events, sizeof(*e));
  if (!e) return;
  __builtin_memset(e, 0, sizeof(*e));
  e->ts_ns = now;
  e->kind = HS_EV_OPEN;
  event__fill_from_info(e, si);
  event__set_tuple(e, t);
  rb__submit(&tcp_events, e);
}

/* The connection is established and its owner known (active: ESTABLISHED; passive: its owner's first act). */
static __always_inline void sock__connected(struct sock* sk, __u64 key, struct sock_info* si, __u64 now,
                                            const bool direct) {
  if (!emit_opens && !stitch_peers && !aggregate_edges) return;
  struct sock_tuple t;
  sock__read_tuple(sk, &t, direct);
  if (stitch_peers) peer__meet(key, si, &t, now);
  if (aggregate_edges && edge__count_open(&t, si, now) && !events_wanted) return;
  if (emit_opens) event__emit_open(&t, si, now);
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

/* What the close of `sk` reports. */
static __always_inline void close__read(struct sock* sk, const struct sock_info* si, int oldstate,
                                        struct close_figures* f, const bool direct) {
  __builtin_memset(f, 0, sizeof(*f));
  /* Without `si` the socket opened before we started (or was evicted): report what the socket itself knows. */
  f->flags = si ? si->flags : (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV ? HS_F_ESTABLISHED : 0);
  /* bytes_acked and bytes_received count sequence space: the active side's SYN is acked (counted once
   * established), our FIN counts once acked, and the peer's FIN counts once received (SOCK_DONE). Report
   * payload bytes only, so N bytes written by the application show as N. */
  /* A direct load needs the verifier to know the tcp_sock type; bpf_skc_to_tcp_sock checks and converts. */
  struct tcp_sock* tp = direct ? bpf_skc_to_tcp_sock(sk) : (struct tcp_sock*)sk;
  if (tp) {
    __u64 acked = HS_RD(direct, tp, bytes_acked);
    __u64 received = HS_RD(direct, tp, bytes_received);
    if (si && si->role == HS_ROLE_ACTIVE && (f->flags & HS_F_ESTABLISHED) && acked) acked--;
    if ((f->flags & HS_F_FIN_SENT) && acked && HS_RD(direct, tp, snd_una) == HS_RD(direct, tp, write_seq)) acked--;
    if ((HS_RD(direct, sk, __sk_common.skc_flags) & (1UL << SOCK_DONE)) && received) received--;
    f->bytes_sent = acked;
    f->bytes_received = received;
    f->srtt_us = HS_RD(direct, tp, srtt_us) >> 3;
    f->retransmits = HS_RD(direct, tp, total_retrans);
  }
  f->sk_err = HS_RD(direct, sk, sk_err);
  f->outcome = close__outcome(f->flags, f->sk_err, oldstate);
}

static __always_inline void event__emit_close(struct sock* sk, const struct sock_info* si, int oldstate, __u64 now,
                                              const bool direct) {
  struct sock_tuple t;
  sock__read_tuple(sk, &t, direct);
  if (!t.sport && si) t.sport = si->sport;
  if (stitch_peers && si && si->peer_waiting && !(si->flags & HS_F_PEER)) peer__closing(si, &t, now);
  struct close_figures f;
  close__read(sk, si, oldstate, &f, direct);
  if (aggregate_edges && edge__count_close(&t, si, &f, now) && !events_wanted) return;
  struct hs_tcp_event* e = rb__reserve(&tcp_events, sizeof(*e));
  if (!e) return;
  __builtin_memset(e, 0, sizeof(*e));
  e->ts_ns = now;
  e->kind = HS_EV_CLOSE;
  if (si) event__fill_from_info(e, si);
  e->flags = f.flags;
  event__set_tuple(e, &t);
  e->bytes_sent = f.bytes_sent;
  e->bytes_received = f.bytes_received;
  e->srtt_us = f.srtt_us;
  e->retransmits = f.retransmits;
  e->sk_err = f.sk_err;
  e->oldstate = oldstate;
  e->outcome = f.outcome;
  rb__submit(&tcp_events, e);
}

/* The owner of a passive socket acts on it for the first time (process context): record it and report the
 * open now. Active sockets have their owner from connect(); sockets hostscope does not track are left alone. */
static __always_inline void sock__owner_acts(struct sock_info* si, struct sock* sk, __u64 key, const bool direct) {
  if (si->role != HS_ROLE_PASSIVE || (si->flags & HS_F_OWNER)) return;
  sock__record_owner(si);
  if (si->flags & HS_F_ESTABLISHED) sock__connected(sk, key, si, bpf_ktime_get_ns(), direct);
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

static __always_inline int handle_set_state(struct sock* sk, int oldstate, int newstate, const bool direct) {
  /* Most transitions of a connection's life are of no interest (FIN_WAIT2, CLOSE_WAIT, CLOSING, ...): leave
   * before any helper call. This hook runs about ten times per connection, in the workload's own threads. */
  if (newstate != TCP_SYN_SENT && newstate != TCP_SYN_RECV && newstate != TCP_ESTABLISHED &&
      newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
    return 0;
  if (newstate == TCP_CLOSE && (oldstate == TCP_LISTEN || oldstate == TCP_CLOSE)) return 0;
  if (HS_RD(direct, sk, sk_protocol) != IPPROTO_TCP) return 0;
  __u64 key = (__u64)sk;
  struct sock_info* si;

  if (newstate == TCP_FIN_WAIT1 || newstate == TCP_LAST_ACK) {
    /* Only close() and shutdown() send our FIN: this runs in the task closing the socket. */
    si = bpf_map_lookup_elem(&tcp_socks, &key);
    if (!si) return 0;
    si->flags |= HS_F_FIN_SENT;
    sock__owner_acts(si, sk, key, direct);
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
    si->sport = HS_RD(direct, sk, __sk_common.skc_num);
    if (si->role == HS_ROLE_ACTIVE) sock__connected(sk, key, si, now, direct);
    return 0;
  }

  /* TCP_CLOSE from a connection state. */
  si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (!si) counter__inc(HS_CNT_CLOSE_UNTRACKED);
  else if (si->role == HS_ROLE_PASSIVE && !(si->flags & HS_F_OWNER) && (si->flags & HS_F_ESTABLISHED))
    counter__inc(HS_CNT_PASSIVE_NO_OWNER);
  event__emit_close(sk, si, oldstate, now, direct);
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
static __always_inline int handle_sock_io(struct sock* sk, const bool direct) {
  /* The classic tracepoints carry the protocol in their record (checked by the caller): no probe read here. */
  if (!sk || (direct && sk->sk_protocol != IPPROTO_TCP)) return 0;
  __u64 key = (__u64)sk;
  struct sock_info* si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (si) sock__owner_acts(si, sk, key, direct);
  return 0;
}

/* ---- BTF-typed raw tracepoints (preferred: no tracefs, ~8 ns per call) ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(btf_inet_sock_set_state, struct sock* sk, int oldstate, int newstate) {
  return handle_set_state(sk, oldstate, newstate, true);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(btf_tcp_send_reset, const struct sock* sk) { return handle_reset(sk, HS_F_RST_SENT); }

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(btf_tcp_receive_reset, struct sock* sk) { return handle_reset(sk, HS_F_RST_RECV); }

SEC("tp_btf/sock_send_length")
int BPF_PROG(btf_sock_send_length, struct sock* sk, int ret, int flags) { return handle_sock_io(sk, true); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(btf_sock_recv_length, struct sock* sk, int ret, int flags) { return handle_sock_io(sk, true); }

/* ---- fexit (BPF trampolines: Debian's kernels have them; some kernels, ours included, do not) ---- */

/* The socket accept() hands to its caller, in the accepting task: the passive owner at accept, for kernels
 * without sock_send_length/sock_recv_length (6.1; they came in 6.3). The agent loads it only there, and only
 * where trampolines work (a failed load is retried without it). The return value is read with bpf_get_func_ret
 * (5.17+), so one program serves both signatures (6.10 replaced flags/err/kern with struct proto_accept_arg);
 * it is a plain scalar, hence the probe-read path. Only sockets in tcp_socks are touched. */
SEC("fexit/inet_csk_accept")
int fexit_inet_csk_accept(unsigned long long* ctx) {
  __u64 ret = 0;
  if (bpf_get_func_ret(ctx, &ret) || !ret) return 0;
  struct sock* sk = (struct sock*)ret;
  __u64 key = (__u64)sk;
  struct sock_info* si = bpf_map_lookup_elem(&tcp_socks, &key);
  if (si) sock__owner_acts(si, sk, key, false);
  return 0;
}

/* ---- classic tracepoints (fallback where tp_btf cannot attach; need tracefs) ---- */

SEC("tracepoint/sock/inet_sock_set_state")
int tp_inet_sock_set_state(struct trace_event_raw_inet_sock_set_state* ctx) {
  return handle_set_state((struct sock*)BPF_CORE_READ(ctx, skaddr), BPF_CORE_READ(ctx, oldstate),
                          BPF_CORE_READ(ctx, newstate), false);
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
  return ctx->protocol == IPPROTO_TCP ? handle_sock_io((struct sock*)ctx->sk, false) : 0;
}

SEC("tracepoint/sock/sock_recv_length")
int tp_sock_recv_length(struct hs_tp_sock_length_ctx* ctx) {
  return ctx->protocol == IPPROTO_TCP ? handle_sock_io((struct sock*)ctx->sk, false) : 0;
}
