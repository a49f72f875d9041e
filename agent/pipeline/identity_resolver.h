#pragma once
// Identity resolution, the pipeline's second stage: who owns each connection event and, when the other end is on
// this host, who the peer is. The process identity stack: process hooks (bpf/process.bpf.c) feed the process
// table, Go offsets flow to the TCP tracer's go_procs map, and the peer pid the kernel put on an event is named.
#include <memory>
#include <optional>
#include <string_view>
#include <nlohmann/json.hpp>

#include "agent/bpf/process_tracer.h"
#include "agent/identity/local_endpoints.h"
#include "agent/identity/process_lookup.h"
#include "agent/pipeline/process_reader.h"
#include "common/connection.h"
#include "agent/topology/topology.h"
#include "common/topology_model.h"

namespace hostscope::pipeline {

// Identity of the local owner of an event, and of the local peer when the other end is on this host. It holds the
// process table's identities rather than copies of their names (resolved for every event); the topology's endpoints
// are built from it only where a topology is kept.
struct ResolvedEvent {
  std::shared_ptr<const identity::ProcessIdentity> owner;  // null: the process table does not know the owner
  std::shared_ptr<const identity::ProcessIdentity> peer;   // the local peer, when the table knows it
  std::optional<uint32_t> peer_pid;                        // the local peer's pid, when the kernel paired the two ends
  uint32_t pid = 0;                                        // the event's owner pid
  // The owner's comm when the kernel knew the owner and the table did not (points into the event, which lives as
  // long as the batch this value belongs to).
  std::string_view comm;

  std::string_view service() const;  // the owner's service, else its comm, else ""
  // The ends for the topology: views into `owner`/`peer` (and the event's comm), valid as long as this value.
  topology::EndpointRef local_endpoint() const;
  std::optional<topology::EndpointRef> peer_endpoint() const;
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

// Without process identity: the service is the owner's comm.
std::unique_ptr<IdentityResolver> make_comm_resolver();

struct IdentitySettings {
  std::string kubelet_root = "/";
  std::string config_file;  // YAML with service_rules: ("" for none)
  size_t max_processes = 32768;
  uint32_t ring_bytes = 4u << 20;  // proc_events ring buffer (power of two, page multiple)
};

// The process table behind identity (falls back to the owner's comm while the table does not know a pid).
class ProcessIdentityResolver : public IdentityResolver {
 public:
  ProcessIdentityResolver(IdentitySettings s, bpf::AttachMode mode) : s_(std::move(s)), mode_(mode) {}
  ~ProcessIdentityResolver() override;
  Status start(int go_procs_fd) override;
  void stop() override;
  void begin_batch() override;
  ResolvedEvent resolve(const events::ConnectionEvent& e) override;
  nlohmann::json services_json() override;
  identity::LocalEndpoints::Processes processes() override;
  std::shared_ptr<const identity::LocalEndpointsSnapshot> local_endpoints() override;
  nlohmann::json health_json() override;

 private:
  IdentitySettings s_;
  bpf::AttachMode mode_;  // of the process hooks: the pipeline's attach mode
  std::unique_ptr<identity::ProcessTable> table_;
  std::unique_ptr<bpf::ProcessTracer> tracer_;
  std::unique_ptr<ProcessReader> reader_;
  std::unique_ptr<identity::ProcessLookup> lookup_;
  identity::LocalEndpoints endpoints_;  // read on demand (policy catalogue, metrics), refreshed on exec/exit
  std::vector<std::string> degraded_;
};

}  // namespace hostscope::pipeline
