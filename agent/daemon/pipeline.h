#pragma once
// The one event path of the agent: kernel -> reader -> identity -> topology -> outputs. Used by the daemon
// (`hostscope agent`) and, in-process, by CLI commands when no daemon is running (embedded mode).
// Outputs read snapshots or subscribe to the event stream; they never reach back into the reader.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <nlohmann/json.hpp>

#include "agent/bpf/tcp_tracer.h"
#include "agent/daemon/config.h"
#include "common/connection.h"
#include "agent/events/format.h"
#include "agent/identity/local_endpoints.h"
#include "agent/pipeline/tcp_reader.h"
#include "agent/topology/nat.h"
#include "agent/topology/topology.h"

namespace hostscope::daemon {

// Identity of the local owner of an event, and of the local peer when the other end is on this host.
struct ResolvedEvent {
  topology::Endpoint local;
  std::optional<topology::Endpoint> peer;
};
class IdentityResolver {
 public:
  virtual ~IdentityResolver() = default;
  // `go_procs_fd`: the TCP tracer's map of Go processes whose goroutine ids the kernel reads.
  virtual Status start(int go_procs_fd) { return {}; }
  virtual void stop() {}
  virtual void begin_batch() {}
  // Called in the reader thread for every event: must be cheap (cache lookups only).
  virtual ResolvedEvent resolve(const events::ConnectionEvent& e) = 0;
  virtual nlohmann::json services_json() { return nlohmann::json::array(); }
  // Live processes the resolver knows (empty without a process table).
  virtual identity::LocalEndpoints::Processes processes() { return {}; }
  // This node's pods'/containers' addresses and listening ports, cached (nullptr without a process table).
  virtual std::shared_ptr<const identity::LocalEndpointsSnapshot> local_endpoints() { return nullptr; }
  virtual nlohmann::json health_json() { return nlohmann::json::object(); }
};

// Fallback resolver: the service is the owner's comm (used until the process table knows more).
std::unique_ptr<IdentityResolver> make_comm_resolver();

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
  uint64_t socket_table_entries = 0, socket_table_capacity = 0;  // kernel socket table (BPF map tcp_socks)
  nlohmann::json identity = nlohmann::json::object();
  nlohmann::json to_json() const;
};

class Pipeline {
 public:
  using EventSubscriber = std::function<void(std::span<const events::ConnectionEvent>, std::span<const ResolvedEvent>)>;

  Pipeline(const Config& cfg, std::unique_ptr<IdentityResolver> resolver);
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
  void on_batch(std::span<const events::ConnectionEvent> batch);

  Config cfg_;
  std::unique_ptr<IdentityResolver> resolver_;
  std::unique_ptr<bpf::TcpTracer> tracer_;
  std::unique_ptr<pipeline::TcpReader> reader_;
  std::unique_ptr<topology::NatWorker> nat_;  // conntrack lookups for DNAT (ClusterIP) destinations
  std::unique_ptr<topology::Topology> topo_;
  std::vector<std::string> degraded_;
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

// JSON line (docs/events.md schema) for one resolved event.
void append_event_json(fmt::memory_buffer& out, const events::ConnectionEvent& e, const ResolvedEvent& r);

}  // namespace hostscope::daemon
