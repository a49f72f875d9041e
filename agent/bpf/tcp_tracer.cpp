#include "agent/bpf/tcp_tracer.h"

#include <bpf/bpf.h>

#include "agent/bpf/libbpf_util.h"
#include "agent/util/logging.h"
#include "agent/util/mounts.h"
#include "counters.h"
#include "tcp_lifecycle.skel.h"

namespace hostscope::bpf {

HS_SKELETON_OPS(tcp_lifecycle);
using TcpSkel = Skeleton<tcp_lifecycle, tcp_lifecycle_ops>;

std::string_view to_string(HookMode m) {
  switch (m) {
    case HookMode::Btf: return "tp_btf";
    case HookMode::Classic: return "tracepoint";
    case HookMode::Fexit: return "fexit";
    default: return "off";
  }
}

std::string_view to_string(AttachMode m) {
  switch (m) {
    case AttachMode::Btf: return "tp_btf";
    case AttachMode::Classic: return "tracepoint";
    default: return "auto";
  }
}

std::optional<AttachMode> parse_attach_mode(std::string_view name) {
  if (name == "auto") return AttachMode::Auto;
  if (name == "btf") return AttachMode::Btf;
  if (name == "classic") return AttachMode::Classic;
  return std::nullopt;
}

struct TcpTracer::Impl {
  TcpSkel skel;
  std::vector<Link> links;
};

TcpTracer::~TcpTracer() = default;

namespace {

// One kernel hook with its two programs: the BTF-typed one (cheaper: direct loads) and the classic twin.
struct Hook {
  const char* category;
  const char* event;
  bpf_program* btf;
  bpf_program* classic;
  const char* lost;  // what degrades without it; nullptr: required
};

const char* const kOwnerLost =
    "the server side of accepted connections gets its owner only when it closes (pid 0 when the peer closes first)";

std::vector<Hook> hooks_of(tcp_lifecycle* s) {
  const char* owner_lost = kOwnerLost;
  return {{"sock", "inet_sock_set_state", s->progs.btf_inet_sock_set_state, s->progs.tp_inet_sock_set_state, nullptr},
          {"tcp", "tcp_send_reset", s->progs.btf_tcp_send_reset, s->progs.tp_tcp_send_reset,
           "resets are reported as plain closes"},
          {"tcp", "tcp_receive_reset", s->progs.btf_tcp_receive_reset, s->progs.tp_tcp_receive_reset,
           "resets are reported as plain closes"},
          {"sock", "sock_send_length", s->progs.btf_sock_send_length, s->progs.tp_sock_send_length, owner_lost},
          {"sock", "sock_recv_length", s->progs.btf_sock_recv_length, s->progs.tp_sock_recv_length, owner_lost}};
}

// Which program of a hook to load. Auto chooses per hook, not per object: a kernel that lacks one tracepoint
// (6.1 has no sock_send_length, added in 6.3) keeps tp_btf for every hook it has, instead of the whole object
// failing to load (a tp_btf program naming a missing BTF type fails the load with ESRCH).
// A forced mode uses only that kind of hook, and still leaves off a hook this kernel does not have (an unreadable
// tracefs counts as having it: the attach then says why it failed).
HookMode choose(const Hook& h, AttachMode mode, const KernelHooks& kernel) {
  bool btf = kernel.btf_tracepoint(h.event);
  if (mode == AttachMode::Btf) return btf ? HookMode::Btf : HookMode::Off;
  bool classic = kernel.classic_tracepoint(h.category, h.event).value_or(mode == AttachMode::Classic);
  if (mode == AttachMode::Classic) return classic ? HookMode::Classic : HookMode::Off;
  if (btf) return HookMode::Btf;
  return classic ? HookMode::Classic : HookMode::Off;
}

// One load+attach attempt with the given mode (Auto: per hook). Required: the state-change hook. Optional hooks
// degrade with a note.
Result<std::unique_ptr<TcpTracer::Impl>> try_mode(const TcpTracerOptions& o, AttachMode mode,
                                                  const KernelHooks& kernel, bool with_accept,
                                                  std::vector<std::string>& notes, std::vector<HookChoice>& chosen) {
  auto skel = TcpSkel::open("tcp_lifecycle");
  if (!skel) return skel.error();
  auto& s = *skel;
  auto hooks = hooks_of(s.get());
  std::vector<HookMode> modes;
  for (const auto& h : hooks) {
    HookMode m = choose(h, mode, kernel);
    if (m == HookMode::Off && !h.lost)
      return make_error(fmt::format("neither tp_btf/{0} nor tracepoint {1}/{0} exists on this kernel", h.event,
                                    h.category));
    bpf_program__set_autoload(h.btf, m == HookMode::Btf);
    bpf_program__set_autoload(h.classic, m == HookMode::Classic);
    modes.push_back(m);
  }
  bpf_program__set_autoload(s->progs.fexit_inet_csk_accept, with_accept);
  s->rodata->emit_opens = o.emit_opens;
  s->rodata->stitch_peers = o.stitch_peers;
  s->rodata->aggregate_edges = o.edge_table_size > 0;
  s->data->events_wanted = o.events_wanted;
  s->rodata->hs_wakeup_bytes = o.wakeup_bytes;
  if (int err = bpf_map__set_max_entries(s->maps.tcp_socks, o.socket_table_size))
    return errorf_errno(err, "map tcp_socks resize to {}", o.socket_table_size);
  const uint32_t peers_size = o.stitch_peers ? o.socket_table_size : 1;  // unused without stitching
  if (int err = bpf_map__set_max_entries(s->maps.tcp_peers, peers_size))
    return errorf_errno(err, "map tcp_peers resize to {}", peers_size);
  const uint32_t edges_size = std::max(o.edge_table_size, 1u);  // unused without aggregation
  if (int err = bpf_map__set_max_entries(s->maps.tcp_edges, edges_size))
    return errorf_errno(err, "map tcp_edges resize to {}", edges_size);
  if (int err = bpf_map__set_max_entries(s->maps.tcp_events, o.ring_bytes))
    return errorf_errno(err, "ring buffer tcp_events resize to {}", o.ring_bytes);
  if (auto st = s.load("tcp_lifecycle"); !st) return st.error();

  auto impl = std::make_unique<TcpTracer::Impl>();
  if (with_accept) {
    auto l = attach_program(s->progs.fexit_inet_csk_accept);
    if (!l) return l.error();  // retried without it
    impl->links.push_back(std::move(*l));
  }
  for (size_t i = 0; i < hooks.size(); i++) {
    const auto& h = hooks[i];
    std::string key = fmt::format("{}/{}", h.category, h.event);
    if (modes[i] == HookMode::Off) {
      notes.push_back(fmt::format("neither tp_btf/{} nor tracepoint {} exists on this kernel: {}", h.event, key,
                                  with_accept && h.lost == kOwnerLost
                                      ? "the owner of accepted connections is taken at accept() instead "
                                        "(fexit/inet_csk_accept)"
                                      : h.lost));
      chosen.push_back({key, HookMode::Off});
      continue;
    }
    auto l = attach_program(modes[i] == HookMode::Btf ? h.btf : h.classic);
    if (!l) {
      if (!h.lost) return l.error();
      notes.push_back(fmt::format("{}: {}", l.error().str(), h.lost));
      chosen.push_back({key, HookMode::Off});
      continue;
    }
    if (mode == AttachMode::Auto && modes[i] == HookMode::Classic)
      notes.push_back(fmt::format("{}: classic tracepoint (tp_btf/{} is not in this kernel's BTF; slower per event)",
                                  key, h.event));
    chosen.push_back({key, modes[i]});
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

  KernelHooks kernel;
  // Where neither send/receive tracepoint exists (6.1), the passive owner comes from fexit/inet_csk_accept if the
  // kernel runs BPF trampolines; tried first there, and the load is retried without it when it fails.
  const bool want_accept = opts.mode != AttachMode::Classic && !kernel.btf_tracepoint("sock_send_length") &&
                           !kernel.btf_tracepoint("sock_recv_length");
  auto attempt = [&](AttachMode m) {
    std::vector<std::string> notes;
    std::vector<HookChoice> chosen;
    bool accept_hook = want_accept && m != AttachMode::Classic;
    auto r = try_mode(opts, m, kernel, accept_hook, notes, chosen);
    if (!r && accept_hook) {
      std::string why = r.error().str();
      notes.clear();
      chosen.clear();
      accept_hook = false;
      r = try_mode(opts, m, kernel, false, notes, chosen);
      if (r) notes.push_back(fmt::format("fexit/inet_csk_accept unavailable ({})", why));
    }
    if (r) {
      chosen.push_back({"fexit/inet_csk_accept", accept_hook ? HookMode::Fexit : HookMode::Off});
      t->impl_ = std::move(*r);
      t->hooks_ = std::move(chosen);
      // The mode of the required state-change hook names the tracer's mode.
      t->mode_ = t->hooks_.front().mode == HookMode::Btf ? AttachMode::Btf : AttachMode::Classic;
      t->degraded_.insert(t->degraded_.end(), notes.begin(), notes.end());
    }
    return r ? Status{} : Status{r.error()};
  };

  Status st = make_error("no attach mode tried");
  if (opts.mode != AttachMode::Classic) {
    // Auto chooses per hook from the kernel's BTF and tracefs; a forced Btf loads every tp_btf program.
    st = attempt(opts.mode);
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
  t->edge_table_size_ = opts.edge_table_size;
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
  c.edge_table_full = v[HS_CNT_EDGE_TABLE_FULL];
  c.edges_created = v[HS_CNT_EDGE_CREATED];
  c.prog_recursion_misses = prog_recursion_misses(impl_->skel->obj);
  return c;
}

static_assert(sizeof(hs_edge_key) == 56 && sizeof(hs_edge_counts) == (15 + HS_EDGE_LAT_BUCKETS) * 8,
              "bpf/edge_agg.h layout");

void TcpTracer::set_events_wanted(bool wanted) {
  // .data is mmapped: the programs read it at every use.
  __atomic_store_n(&impl_->skel->data->events_wanted, wanted, __ATOMIC_RELAXED);
}

Result<std::vector<KernelEdge>> TcpTracer::read_edges() const {
  std::vector<KernelEdge> out;
  if (!edge_table_size_) return out;
  const int fd = bpf_map__fd(impl_->skel->maps.tcp_edges);
  // Batches of up to 1024 entries; the kernel walks the table by bucket, `batch` is its cursor.
  constexpr uint32_t kBatch = 1024;
  std::vector<hs_edge_key> keys(kBatch);
  std::vector<hs_edge_counts> values(kBatch);
  uint64_t cursor = 0;
  bool first = true;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    uint32_t n = kBatch;
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &cursor, &cursor, keys.data(), values.data(), &n, &opts);
    first = false;
    const bool done = err && errno == ENOENT;  // the last batch (possibly with entries)
    if (err && !done) return errorf_errno(errno, "map tcp_edges batch lookup");
    for (uint32_t i = 0; i < n; i++) out.push_back({keys[i], values[i]});
    if (done) break;
    if (out.size() > edge_table_size_) return make_error("map tcp_edges batch lookup: more entries than its size");
  }
  return out;
}

}  // namespace hostscope::bpf
