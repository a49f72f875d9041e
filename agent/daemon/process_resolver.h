#pragma once
// The identity stack behind every connection event: process hooks (bpf/process.bpf.c) feed the process table,
// Go offsets flow to the TCP tracer's go_procs map, and the peer pid the kernel put on an event is named. Used by the daemon's
// pipeline and by `hostscope connections`.
#include <memory>

#include "agent/bpf/process_tracer.h"
#include "agent/daemon/pipeline.h"
#include "agent/identity/resolver.h"

namespace hostscope::daemon {

struct IdentitySettings {
  std::string kubelet_root = "/";
  std::string config_file;  // YAML with service_rules: ("" for none)
  size_t max_processes = 32768;
  bpf::AttachMode mode = bpf::AttachMode::Auto;
  uint32_t ring_bytes = 4u << 20;  // proc_events ring buffer (power of two, page multiple)
};

class ProcessResolver : public IdentityResolver {
 public:
  explicit ProcessResolver(IdentitySettings s) : s_(std::move(s)) {}
  ~ProcessResolver() override;
  Status start(int go_procs_fd) override;
  void stop() override;
  void begin_batch() override;
  ResolvedEvent resolve(const events::ConnectionEvent& e) override;
  identity::ResolvedConnection resolve_connection(const events::ConnectionEvent& e);
  nlohmann::json services_json() override;
  identity::LocalEndpoints::Processes processes() override;
  std::shared_ptr<const identity::LocalEndpointsSnapshot> local_endpoints() override;
  nlohmann::json health_json() override;
  std::vector<std::string> degraded() const { return degraded_; }

 private:
  IdentitySettings s_;
  std::unique_ptr<identity::ProcessTable> table_;
  std::unique_ptr<bpf::ProcessTracer> tracer_;
  std::unique_ptr<bpf::ProcessReader> reader_;
  std::unique_ptr<identity::ConnectionResolver> resolver_;
  identity::LocalEndpoints endpoints_;  // read on demand (policy catalogue, metrics), refreshed on exec/exit
  std::vector<std::string> degraded_;
};

}  // namespace hostscope::daemon
