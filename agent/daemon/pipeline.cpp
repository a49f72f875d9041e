#include "agent/daemon/pipeline.h"

#include <ifaddrs.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include "agent/topology/conntrack.h"
#include "agent/util/clock.h"
#include "agent/util/logging.h"

namespace hostscope::daemon {

namespace {

class CommResolver : public IdentityResolver {
 public:
  ResolvedEvent resolve(const events::ConnectionEvent& e) override {
    ResolvedEvent r;
    r.local.pid = e.pid;
    r.local.service = e.owner_known ? std::string(e.comm_view()) : std::string();
    return r;
  }
};

std::vector<IpAddr> host_addresses() {
  std::vector<IpAddr> out;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return out;
  for (auto* i = ifa; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    IpAddr a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = Family::V4;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = Family::V6;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    out.push_back(a);
  }
  freeifaddrs(ifa);
  return out;
}

// Entries in a BPF hash map (walks its keys; bounded by the map's capacity).
uint64_t count_map_entries(int fd, uint64_t cap) {
  if (fd < 0) return 0;
  std::vector<uint8_t> key(64), next(64);  // the socket table's key is a u64 cookie; 64 covers any key
  uint64_t n = 0;
  void* prev = nullptr;
  while (n < cap && bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    ++n;
    key.swap(next);
    prev = key.data();
  }
  return n;
}

}  // namespace

std::unique_ptr<IdentityResolver> make_comm_resolver() { return std::make_unique<CommResolver>(); }

nlohmann::json Health::to_json() const {
  return {
      {"attach_mode", attach_mode},
      {"hooks", hooks},
      {"degraded", degraded},
      {"events_delivered", events_delivered},
      {"kernel",
       {{"events", kernel.events},
        {"lost_ringbuf", kernel.ringbuf_dropped},
        {"lost_reentry", kernel.prog_recursion_misses},
        {"socket_table_full", kernel.socket_table_full},
        {"close_untracked", kernel.close_untracked},
        {"passive_owner_unknown", kernel.passive_owner_unknown},
        {"peer_evicted", kernel.peer_evicted},
        {"goid_read_failed", kernel.goid_read_failed}}},
      {"identity", identity},
      {"subscribers", subscribers},
      {"tracked_connections", tracked_connections},
      {"socket_table", {{"entries", socket_table_entries}, {"capacity", socket_table_capacity}}},
      {"subscriber_lines_dropped", subscriber_lines_dropped},
      {"topology",
       {{"events", topology.events},
        {"stitched", topology.stitched},
        {"dropped", topology.dropped},
        {"edges_expired", topology.edges_expired},
        {"edges_evicted", topology.edges_evicted},
        {"connections_evicted", topology.connections_evicted},
        {"node_overflow", topology.node_overflow},
        {"anomalies", topology.anomalies}}},
  };
}

Pipeline::Pipeline(const Config& cfg, std::unique_ptr<IdentityResolver> resolver)
    : cfg_(cfg), resolver_(resolver ? std::move(resolver) : make_comm_resolver()) {
  topology::TopologyConfig tc;
  tc.max_edges = cfg.topology.max_edges;
  tc.max_nodes = cfg.topology.max_nodes;
  tc.edge_idle_timeout_ns = uint64_t(cfg.topology.idle_expiry_seconds) * 1'000'000'000ull;
  if (auto nm = topology::NetworkMap::build(cfg.networks)) tc.networks = std::move(*nm);
  else spdlog::error("networks: {}", nm.error().str());  // parse_config already validated every CIDR
  topo_ = std::make_unique<topology::Topology>(tc, clock_ns(CLOCK_REALTIME));
  topo_->set_local_addresses(host_addresses());
}

Pipeline::~Pipeline() { stop(); }

Status Pipeline::start() {
  bpf::TcpTracerOptions o;
  o.mode = cfg_.kernel.attach == "btf" ? bpf::AttachMode::Btf
           : cfg_.kernel.attach == "classic" ? bpf::AttachMode::Classic
                                             : bpf::AttachMode::Auto;
  o.socket_table_size = cfg_.kernel.socket_table_size;
  o.ring_bytes = cfg_.kernel.ring_buffer_mb << 20;
  o.emit_opens = true;  // the topology counts active connections and asks conntrack at open
  o.stitch_peers = true;
  auto t = bpf::TcpTracer::start(o);
  if (!t) return t.error();
  tracer_ = std::move(*t);
  if (auto ct = topology::NetfilterConntrack::open(); ct) {
    nat_ = std::make_unique<topology::NatWorker>(std::move(*ct));
    topo_->set_nat_worker(nat_.get());
  } else {
    degraded_.push_back(fmt::format("{}: DNAT'd destinations (ClusterIPs) show only the dialled address", ct.error().str()));
    spdlog::warn("degraded: {}", degraded_.back());
  }
  if (auto st = resolver_->start(tracer_->go_procs_fd()); !st) return st;
  reader_ = std::make_unique<pipeline::TcpReader>(
      *tracer_, [this](std::span<const events::ConnectionEvent> b) { on_batch(b); },
      [this](const bpf::KernelCounters& c) {
        // About once a second even when no events arrive: close anomaly windows, expire idle edges and held
        // connections, apply finished conntrack lookups.
        uint64_t now = clock_ns(CLOCK_REALTIME);
        if (now - last_tick_ns_.load() >= 1'000'000'000ull) {
          topo_->tick(now);
          last_tick_ns_ = now;
        }
        std::lock_guard lk(health_mu_);
        if (c.ringbuf_dropped > last_kernel_.ringbuf_dropped)
          spdlog::warn("lost {} events (ring buffer full)", c.ringbuf_dropped - last_kernel_.ringbuf_dropped);
        if (c.prog_recursion_misses > last_kernel_.prog_recursion_misses)
          spdlog::warn("kernel skipped {} hook runs (events lost)", c.prog_recursion_misses - last_kernel_.prog_recursion_misses);
        last_kernel_ = c;
      });
  return reader_->start();
}

void Pipeline::stop() {
  if (reader_) reader_->stop();  // kept: its counters stay readable after stop
  if (nat_) {
    topo_->set_nat_worker(nullptr);
    nat_->stop();
    nat_.reset();
  }
  if (resolver_) resolver_->stop();
}

void Pipeline::on_batch(std::span<const events::ConnectionEvent> batch) {
  uint64_t now = clock_ns(CLOCK_REALTIME);
  resolved_.clear();
  items_.clear();
  resolved_.reserve(batch.size());
  resolver_->begin_batch();
  for (const auto& e : batch) resolved_.push_back(resolver_->resolve(e));
  for (size_t i = 0; i < batch.size(); i++)
    items_.push_back({&batch[i], &resolved_[i].local, resolved_[i].peer ? &*resolved_[i].peer : nullptr});
  topo_->ingest_batch(items_, now);
  if (now - last_tick_ns_.load() >= 1'000'000'000ull) {
    topo_->tick(now);
    last_tick_ns_ = now;
  }
  std::lock_guard lk(subs_mu_);
  for (auto& [id, s] : subs_) s(batch, resolved_);
}

topology::TopologySnapshot Pipeline::snapshot(const topology::SnapshotFilter& f) const {
  return topo_->snapshot(clock_ns(CLOCK_REALTIME), f);
}

Health Pipeline::health() const {
  Health h;
  if (tracer_) {
    h.kernel = tracer_->counters();
    h.attach_mode = std::string(bpf::to_string(tracer_->mode()));
    for (const auto& c : tracer_->hooks()) h.hooks[c.hook] = std::string(bpf::to_string(c.mode));
    h.degraded = tracer_->degraded();
  }
  h.degraded.insert(h.degraded.end(), degraded_.begin(), degraded_.end());
  if (reader_) h.events_delivered = reader_->delivered();
  h.topology = topo_->counters();
  h.tracked_connections = topo_->connection_count();
  if (tracer_) {
    h.socket_table_capacity = tracer_->socket_table_size();
    std::lock_guard lk(sockets_mu_);
    auto now = std::chrono::steady_clock::now();
    if (sockets_counted_at_ == std::chrono::steady_clock::time_point{} || now - sockets_counted_at_ >= std::chrono::seconds(1)) {
      sockets_counted_ = count_map_entries(tracer_->socket_table_fd(), h.socket_table_capacity);
      sockets_counted_at_ = now;
    }
    h.socket_table_entries = sockets_counted_;
  }
  h.identity = resolver_->health_json();
  std::lock_guard lk(subs_mu_);
  h.subscribers = subs_.size() - internal_subs_.size();
  return h;
}

uint64_t Pipeline::subscribe(EventSubscriber s, bool internal) {
  std::lock_guard lk(subs_mu_);
  subs_[next_sub_] = std::move(s);
  if (internal) internal_subs_.insert(next_sub_);
  return next_sub_++;
}

void Pipeline::unsubscribe(uint64_t id) {
  std::lock_guard lk(subs_mu_);
  subs_.erase(id);
  internal_subs_.erase(id);
}

void append_event_json(fmt::memory_buffer& out, const events::ConnectionEvent& e, const ResolvedEvent& r) {
  events::EventIdentity id;
  id.service = r.local.service;
  if (r.peer) {
    if (r.peer->pid) id.peer_pid = r.peer->pid;
    id.peer_service = r.peer->service;
  }
  events::append_json(out, e, &id);
}

}  // namespace hostscope::daemon
