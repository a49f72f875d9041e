#pragma once
// The one event path of the agent: kernel -> reader -> identity -> topology -> subscribers. The daemon
// (`hostscope agent`) runs it, and so do the CLI commands when no daemon is running (embedded mode): `top` and
// `topology` with the topology on, `connections` with it off. Outputs read snapshots or subscribe to the event
// stream; they never reach back into the reader.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>

#include "agent/bpf/tcp_tracer.h"
#include "agent/events/filter.h"
#include "agent/events/format.h"
#include "agent/pipeline/identity_resolver.h"
#include "agent/pipeline/tcp_reader.h"
#include "common/connection.h"
#include "agent/topology/nat.h"
#include "agent/topology/topology.h"

namespace hostscope::pipeline {

// What the pipeline loads and keeps; the daemon fills it from its config (daemon::pipeline_options), the CLI
// from its flags.
struct PipelineOptions {
  bpf::AttachMode attach = bpf::AttachMode::Auto;
  uint32_t socket_table_size = 65536;
  uint32_t edge_table_size = 0;  // kernel per-edge counters (tcp_edges); 0: off
  uint32_t ring_bytes = 8u << 20;
  // The topology store (and conntrack lookups for DNAT'd destinations). Off: events flow to the subscribers only.
  bool topology = true;
  topology::TopologyConfig topology_config;
  // Open events are always read when the topology is on (it counts active connections and asks conntrack at open).
  bool emit_opens = true;
  // Off: no process hooks and no local peers; the service is the owner's comm.
  bool identity = true;
  IdentitySettings identity_settings;
  // Events outside it are dropped before identity and topology: `connections` resolves only what it shows.
  std::optional<events::ConnectionFilter> keep_only;
};

struct Health {
  bpf::KernelCounters kernel;
  std::string attach_mode;
  std::map<std::string, std::string> hooks;  // "sock/inet_sock_set_state" -> tp_btf | tracepoint | off
  std::vector<std::string> degraded;
  uint64_t events_delivered = 0;
  uint64_t subscribers = 0;
  uint64_t subscriber_lines_dropped = 0;
  topology::TopologyCounters topology;
  uint64_t tracked_connections = 0;                            // connections the topology store tracks
  uint64_t topology_identities = 0, topology_identities_capacity = 0;  // interned edge-end (workload, Go module) pairs
  uint64_t socket_table_entries = 0, socket_table_capacity = 0;  // kernel socket table (BPF map tcp_socks)
  uint64_t edge_table_entries = 0, edge_table_capacity = 0;      // kernel edge table (tcp_edges); capacity 0: off
  nlohmann::json identity = nlohmann::json::object();
  nlohmann::json to_json() const;
};

class Pipeline {
 public:
  using EventSubscriber = std::function<void(std::span<const events::ConnectionEvent>, std::span<const ResolvedEvent>)>;

  explicit Pipeline(PipelineOptions o);
  ~Pipeline();
  Status start();
  void stop();

  topology::TopologySnapshot snapshot(const topology::SnapshotFilter& f = {}) const;
  Health health() const;
  nlohmann::json services_json() { return resolver_->services_json(); }
  identity::LocalEndpoints::Processes processes() { return resolver_->processes(); }
  std::shared_ptr<const identity::LocalEndpointsSnapshot> local_endpoints() { return resolver_->local_endpoints(); }
  // Subscribers run in the reader thread after each batch; keep them cheap (format and enqueue).
  // `internal` subscribers (the agent's own exporters) are not counted in Health::subscribers.
  uint64_t subscribe(EventSubscriber s, bool internal = false);
  void unsubscribe(uint64_t id);

 private:
  void start_nat();
  void on_batch(std::span<const events::ConnectionEvent> batch);
  void tick(uint64_t now_ns);

  PipelineOptions opts_;
  std::unique_ptr<IdentityResolver> resolver_;
  std::unique_ptr<bpf::TcpTracer> tracer_;
  std::unique_ptr<pipeline::TcpReader> reader_;
  std::unique_ptr<topology::NatWorker> nat_;  // conntrack lookups for DNAT (ClusterIP) destinations
  std::unique_ptr<topology::Topology> topo_;  // null with the topology off
  std::vector<std::string> degraded_;
  std::vector<events::ConnectionEvent> kept_;  // the batch after keep_only
  std::vector<ResolvedEvent> resolved_;
  std::vector<topology::IngestItem> items_;
  mutable std::mutex subs_mu_;
  std::map<uint64_t, EventSubscriber> subs_;
  uint64_t next_sub_ = 1;
  std::set<uint64_t> internal_subs_;
  std::atomic<uint64_t> last_tick_ns_{0};
  mutable std::mutex health_mu_;
  bpf::KernelCounters last_kernel_;
  // Counting the kernel socket table walks its keys (one syscall per tracked socket): every health call (each
  // `top` refresh, each scrape) reuses a count for up to a second.
  mutable std::mutex sockets_mu_;
  mutable std::chrono::steady_clock::time_point sockets_counted_at_{};
  mutable uint64_t sockets_counted_ = 0;
};

// The identity fields of an event line (views into `r`).
events::EventIdentity event_identity(const ResolvedEvent& r);
// JSON line (docs/events.md schema) for one resolved event.
void append_event_json(fmt::memory_buffer& out, const events::ConnectionEvent& e, const ResolvedEvent& r);

}  // namespace hostscope::pipeline
