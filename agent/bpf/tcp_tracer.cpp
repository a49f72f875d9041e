#include "agent/bpf/tcp_tracer.h"

#include "agent/bpf/libbpf_util.h"
#include "agent/util/logging.h"
#include "agent/util/mounts.h"
#include "counters.h"
#include "tcp_lifecycle.skel.h"

namespace hostscope::bpf {

HS_SKELETON_OPS(tcp_lifecycle);
using TcpSkel = Skeleton<tcp_lifecycle, tcp_lifecycle_ops>;

std::string_view to_string(AttachMode m) {
  switch (m) {
    case AttachMode::Btf: return "tp_btf";
    case AttachMode::Classic: return "tracepoint";
    default: return "auto";
  }
}

struct TcpTracer::Impl {
  TcpSkel skel;
  std::vector<Link> links;
};

TcpTracer::~TcpTracer() = default;

namespace {

struct ProgSet {
  bpf_program* set_state;
  bpf_program* send_reset;
  bpf_program* recv_reset;
  bpf_program* send_len;  // passive owners
  bpf_program* recv_len;
  std::vector<bpf_program*> all() const { return {set_state, send_reset, recv_reset, send_len, recv_len}; }
};

ProgSet btf_progs(tcp_lifecycle* s) {
  return {s->progs.btf_inet_sock_set_state, s->progs.btf_tcp_send_reset, s->progs.btf_tcp_receive_reset,
          s->progs.btf_sock_send_length, s->progs.btf_sock_recv_length};
}
ProgSet classic_progs(tcp_lifecycle* s) {
  return {s->progs.tp_inet_sock_set_state, s->progs.tp_tcp_send_reset, s->progs.tp_tcp_receive_reset,
          s->progs.tp_sock_send_length, s->progs.tp_sock_recv_length};
}

// One load+attach attempt in a given mode. Required: the state-change hook. Optional hooks degrade with a note.
Result<std::unique_ptr<TcpTracer::Impl>> try_mode(const TcpTracerOptions& o, AttachMode mode,
                                                  std::vector<std::string>& notes) {
  auto skel = TcpSkel::open("tcp_lifecycle");
  if (!skel) return skel.error();
  auto& s = *skel;
  ProgSet use = mode == AttachMode::Btf ? btf_progs(s.get()) : classic_progs(s.get());
  ProgSet off = mode == AttachMode::Btf ? classic_progs(s.get()) : btf_progs(s.get());
  for (auto* p : off.all()) bpf_program__set_autoload(p, false);
  s->rodata->emit_opens = o.emit_opens;
  s->rodata->stitch_peers = o.stitch_peers;
  s->rodata->hs_wakeup_bytes = o.wakeup_bytes;
  if (int err = bpf_map__set_max_entries(s->maps.tcp_socks, o.socket_table_size))
    return errorf_errno(err, "map tcp_socks resize to {}", o.socket_table_size);
  const uint32_t peers_size = o.stitch_peers ? o.socket_table_size : 1;  // unused without stitching
  if (int err = bpf_map__set_max_entries(s->maps.tcp_peers, peers_size))
    return errorf_errno(err, "map tcp_peers resize to {}", peers_size);
  if (int err = bpf_map__set_max_entries(s->maps.tcp_events, o.ring_bytes))
    return errorf_errno(err, "ring buffer tcp_events resize to {}", o.ring_bytes);
  if (auto st = s.load("tcp_lifecycle"); !st) return st.error();

  auto impl = std::make_unique<TcpTracer::Impl>();
  auto set_state = attach_program(use.set_state);
  if (!set_state) return set_state.error();
  impl->links.push_back(std::move(*set_state));
  for (auto* p : {use.send_reset, use.recv_reset}) {
    auto l = attach_program(p);
    if (!l) {
      notes.push_back(fmt::format("{}: resets are reported as plain closes", l.error().str()));
      continue;
    }
    impl->links.push_back(std::move(*l));
  }
  for (auto* p : {use.send_len, use.recv_len}) {
    auto l = attach_program(p);
    if (!l) {
      notes.push_back(fmt::format("{}: the server side of accepted connections gets its owner only when it closes "
                                  "(pid 0 when the peer closes first)",
                                  l.error().str()));
      continue;
    }
    impl->links.push_back(std::move(*l));
  }
  impl->skel = std::move(s);
  return impl;
}

}  // namespace

Result<std::unique_ptr<TcpTracer>> TcpTracer::start(const TcpTracerOptions& opts) {
  route_libbpf_logs();
  std::unique_ptr<TcpTracer> t(new TcpTracer());
  if (auto st = ensure_tracefs(); !st)
    t->degraded_.push_back(fmt::format("{}: classic tracepoints (fallback hooks) are unavailable",
                                       st.error().str()));

  auto attempt = [&](AttachMode m) {
    std::vector<std::string> notes;
    auto r = try_mode(opts, m, notes);
    if (r) {
      t->impl_ = std::move(*r);
      t->mode_ = m;
      t->degraded_.insert(t->degraded_.end(), notes.begin(), notes.end());
    }
    return r ? Status{} : Status{r.error()};
  };

  Status st = make_error("no attach mode tried");
  if (opts.mode != AttachMode::Classic) {
    st = attempt(AttachMode::Btf);
    if (!st && opts.mode == AttachMode::Btf) return st.error();
    if (!st)
      t->degraded_.push_back(fmt::format(
          "BTF tracepoints unavailable ({}); using classic tracepoints (slower per event)", st.error().str()));
  }
  if (!st) {
    st = attempt(AttachMode::Classic);
    if (!st) return st.error();
  }
  t->table_size_ = opts.socket_table_size;
  for (auto& d : t->degraded_) spdlog::warn("degraded: {}", d);
  spdlog::info("tcp_lifecycle attached with {} hooks", to_string(t->mode_));
  return t;
}

int TcpTracer::events_fd() const { return bpf_map__fd(impl_->skel->maps.tcp_events); }
int TcpTracer::go_procs_fd() const { return bpf_map__fd(impl_->skel->maps.go_procs); }
int TcpTracer::socket_table_fd() const { return bpf_map__fd(impl_->skel->maps.tcp_socks); }

KernelCounters TcpTracer::counters() const {
  auto v = read_percpu_counters(bpf_map__fd(impl_->skel->maps.counters), HS_CNT_MAX);
  KernelCounters c;
  c.ringbuf_dropped = v[HS_CNT_RB_DROPPED];
  c.events = v[HS_CNT_EVENTS];
  c.socket_table_full = v[HS_CNT_SOCK_TABLE_FULL];
  c.close_untracked = v[HS_CNT_CLOSE_UNTRACKED];
  c.passive_owner_unknown = v[HS_CNT_PASSIVE_NO_OWNER];
  c.peer_evicted = v[HS_CNT_PEER_EVICTED];
  c.goid_read_failed = v[HS_CNT_GOID_READ_FAIL];
  c.prog_recursion_misses = prog_recursion_misses(impl_->skel->obj);
  return c;
}

}  // namespace hostscope::bpf
