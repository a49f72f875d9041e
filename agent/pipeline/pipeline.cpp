#include "agent/pipeline/pipeline.h"

#include <ifaddrs.h>
#include <bpf/bpf.h>
#include <netinet/in.h>

#include <algorithm>

#include "agent/topology/conntrack.h"
#include "agent/util/clock.h"
#include "agent/util/logging.h"

namespace hostscope::pipeline {

namespace {

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
        {"goid_read_failed", kernel.goid_read_failed},
        {"edge_table_full", kernel.edge_table_full}}},
      {"identity", identity},
      {"subscribers", subscribers},
      {"tracked_connections", tracked_connections},
      {"socket_table", {{"entries", socket_table_entries}, {"capacity", socket_table_capacity}}},
      {"edge_table",
       {{"entries", edge_table_entries}, {"capacity", edge_table_capacity}, {"overflow", kernel.edge_table_full}}},
      {"subscriber_lines_dropped", subscriber_lines_dropped},
      {"topology",
       {{"events", topology.events},
        {"stitched", topology.stitched},
        {"dropped", topology.dropped},
        {"edges_expired", topology.edges_expired},
        {"edges_evicted", topology.edges_evicted},
        {"connections_evicted", topology.connections_evicted},
        {"node_overflow", topology.node_overflow},
        {"anomalies", topology.anomalies},
        {"identities", topology_identities},
        {"identities_capacity", topology_identities_capacity},
        {"identities_dropped", topology.identities_dropped}}},
  };
}

Pipeline::Pipeline(PipelineOptions o) : opts_(std::move(o)) {
  if (opts_.identity) resolver_ = std::make_unique<ProcessIdentityResolver>(opts_.identity_settings, opts_.attach);
  else resolver_ = make_comm_resolver();
  if (opts_.topology) {
    topo_ = std::make_unique<topology::Topology>(opts_.topology_config, clock_ns(CLOCK_REALTIME));
    topo_->set_local_addresses(host_addresses());
  }
}

Pipeline::~Pipeline() { stop(); }

Status Pipeline::start() {
  bpf::TcpTracerOptions o;
  o.mode = opts_.attach;
  o.socket_table_size = opts_.socket_table_size;
  o.edge_table_size = opts_.edge_table_size;
  o.ring_bytes = opts_.ring_bytes;
  o.emit_opens = opts_.emit_opens || opts_.topology;  // the topology counts active connections and asks conntrack at open
  o.stitch_peers = opts_.identity;  // local peers are stitched in the kernel, so identity needs no open events
  auto t = bpf::TcpTracer::start(o);
  if (!t) return t.error();
  tracer_ = std::move(*t);
  if (topo_) start_nat();
  if (auto st = resolver_->start(tracer_->go_procs_fd()); !st) return st;
  reader_ = std::make_unique<pipeline::TcpReader>(
      *tracer_, [this](std::span<const events::ConnectionEvent> b) { on_batch(b); },
      [this](const bpf::KernelCounters& c) {
        tick(clock_ns(CLOCK_REALTIME));
        std::lock_guard lk(health_mu_);
        if (c.ringbuf_dropped > last_kernel_.ringbuf_dropped)
          spdlog::warn("lost {} events (ring buffer full; {} lost in total)", c.ringbuf_dropped - last_kernel_.ringbuf_dropped,
                       c.ringbuf_dropped);
        if (c.prog_recursion_misses > last_kernel_.prog_recursion_misses)
          spdlog::warn("kernel skipped {} hook runs (program re-entered on the same CPU; events lost)",
                       c.prog_recursion_misses - last_kernel_.prog_recursion_misses);
        if (c.socket_table_full > last_kernel_.socket_table_full)
          spdlog::warn("socket table full: {} connections not tracked", c.socket_table_full - last_kernel_.socket_table_full);
        if (c.edge_table_full > last_kernel_.edge_table_full)
          spdlog::warn("kernel edge table full: {} connection opens or closes sent as events instead (raise "
                       "kernel.edge_table_size)",
                       c.edge_table_full - last_kernel_.edge_table_full);
        last_kernel_ = c;
      });
  return reader_->start();
}

void Pipeline::start_nat() {
  auto ct = topology::NetfilterConntrack::open();
  if (!ct) {
    degraded_.push_back(fmt::format("{}: DNAT'd destinations (ClusterIPs) show only the dialled address", ct.error().str()));
    spdlog::warn("degraded: {}", degraded_.back());
    return;
  }
  nat_ = std::make_unique<topology::NatWorker>(std::move(*ct));
  topo_->set_nat_worker(nat_.get());
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
  if (opts_.keep_only) {
    // Copy only when something is filtered out: with an empty filter every event is kept, and the batch is
    // handed on as the reader delivered it.
    const auto& f = *opts_.keep_only;
    auto miss = std::find_if_not(batch.begin(), batch.end(), [&](const auto& e) { return f.match(e); });
    if (miss != batch.end()) {
      kept_.assign(batch.begin(), miss);
      for (auto it = miss + 1; it != batch.end(); ++it)
        if (f.match(*it)) kept_.push_back(*it);
      if (kept_.empty()) return;
      batch = kept_;
    }
  }
  uint64_t now = clock_ns(CLOCK_REALTIME);
  resolved_.clear();
  resolved_.reserve(batch.size());
  resolver_->begin_batch();
  for (const auto& e : batch) resolved_.push_back(resolver_->resolve(e));
  if (topo_) {
    // The ends are views into resolved_ (the process table's identities, kept alive by it): no names copied.
    items_.clear();
    for (size_t i = 0; i < batch.size(); i++)
      items_.push_back({&batch[i], resolved_[i].local_endpoint(), resolved_[i].peer_endpoint()});
    topo_->ingest_batch(items_, now);
    tick(now);
  }
  std::lock_guard lk(subs_mu_);
  for (auto& [id, s] : subs_) s(batch, resolved_);
}

// At most once a second, also when no events arrive (the reader's health call comes about once a second): close
// anomaly windows, expire idle edges and held connections, apply finished conntrack lookups.
void Pipeline::tick(uint64_t now) {
  if (topo_ && now - last_tick_ns_.load() >= 1'000'000'000ull) {
    topo_->tick(now);
    last_tick_ns_ = now;
  }
}

topology::TopologySnapshot Pipeline::snapshot(const topology::SnapshotFilter& f) const {
  return topo_ ? topo_->snapshot(clock_ns(CLOCK_REALTIME), f) : topology::TopologySnapshot{};
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
  if (topo_) {
    h.topology = topo_->counters();
    h.tracked_connections = topo_->connection_count();
    h.topology_identities = topo_->identity_count();
    h.topology_identities_capacity =
        std::min(opts_.topology_config.max_identities, topology::EndIdentities::kMaxEntries);
  }
  if (tracer_) {
    h.socket_table_capacity = tracer_->socket_table_size();
    std::lock_guard lk(sockets_mu_);
    auto now = std::chrono::steady_clock::now();
    // Entries are counted in the kernel as they are created (walking a table of up to 1M keys once a second
    // would cost a core); nothing deletes them yet.
    h.edge_table_capacity = tracer_->edge_table_size();
    h.edge_table_entries = std::min<uint64_t>(h.kernel.edges_created, h.edge_table_capacity);
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

events::EventIdentity event_identity(const ResolvedEvent& r) {
  events::EventIdentity id;
  id.service = r.service();
  if (r.peer) {
    if (r.peer->pid) id.peer_pid = r.peer->pid;
    id.peer_service = r.peer->service;
  } else if (r.peer_pid && *r.peer_pid) {
    id.peer_pid = r.peer_pid;
  }
  return id;
}

void append_event_json(fmt::memory_buffer& out, const events::ConnectionEvent& e, const ResolvedEvent& r) {
  auto id = event_identity(r);
  events::append_json(out, e, &id);
}

}  // namespace hostscope::pipeline
