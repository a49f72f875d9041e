#pragma once
// The agent's configuration file (/etc/hostscope/config.yaml). Every key is documented in docs/config.md with its
// default. Loading validates everything and reports each problem as file:line:column; a file with any error is
// rejected whole.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/bpf/tcp_tracer.h"
#include "agent/topology/networks.h"
#include "common/result.h"
#include "policy/reconcile_config.h"

namespace hostscope::daemon {

inline constexpr const char* kDefaultConfigPath = "/etc/hostscope/config.yaml";
inline constexpr const char* kDefaultSocketPath = "/run/hostscope/hostscope.sock";

struct Config {
  std::string source;  // file the config came from ("" for defaults)
  std::string node_name;

  struct Kernel {
    bpf::AttachMode attach = bpf::AttachMode::Auto;  // auto | btf | classic (bpf::parse_attach_mode)
    uint32_t socket_table_size = 65536;
    // tcp_edges entries: per-edge counters kept in the kernel (docs/aggregation.md). 0: off (the default until the
    // daemon reads its topology from them).
    uint32_t edge_table_size = 0;
    uint32_t ring_buffer_mb = 8;
    uint32_t process_ring_buffer_mb = 4;  // exec/fork/exit events; smaller rings lost exec events in a go build burst
  } kernel;

  struct Api {
    std::string socket = kDefaultSocketPath;
    std::string group = "hostscope";
    uint32_t max_request_bytes = 64 * 1024;
    uint32_t max_clients = 16;
    uint32_t stream_queue = 8192;  // events buffered per streaming client; a client whose queue fills is dropped
    uint32_t request_timeout_ms = 2000;  // a client must send its request within this; a reply write must progress
    uint32_t max_snapshots = 2;          // topology snapshots served at once (memory); others wait, then "busy"
  } api;

  struct Metrics {                       // Prometheus /metrics (docs/metrics.md)
    std::string listen = "127.0.0.1:9477";  // "" disables the endpoint
    uint32_t max_series = 50000;         // cap on topology series; refused series are counted
  } metrics;

  struct Events {                        // JSON lines of connection events for log shippers (docs/events.md)
    std::string output = "none";         // none | stdout | file
    std::string file = "/var/log/hostscope/events.jsonl";
    uint32_t max_file_mb = 100;          // rotate at this size
    uint32_t max_files = 5;              // rotated files kept
    uint32_t queue = 65536;              // lines buffered before drops are counted
  } events;

  struct Topology {
    uint32_t max_edges = 20000;
    uint32_t max_nodes = 5000;
    uint32_t idle_expiry_seconds = 600;
    uint32_t max_identities = 4096;  // interned (workload, Go module) pairs of edge ends (docs/topology.md, "Bounds")
    // A remote end in a named network: one node per network, or per (network, address) (docs/topology.md).
    topology::NetworkEnds network_ends = topology::NetworkEnds::Network;
  } topology;

  std::map<std::string, std::vector<std::string>> networks;  // name -> CIDRs

  struct Identity {
    std::string kubelet_root = "/";
    uint32_t max_processes = 32768;
  } identity;

  struct History {                      // topology history on the node (docs/topology.md, "History")
    bool enabled = false;
    std::string path = "/var/lib/hostscope/history.db";
    uint64_t retention_ns = 7ull * 86400 * 1'000'000'000;  // rows older than this are deleted (1h .. 400d)
    uint64_t max_bytes = 256ull << 20;   // pages in use; the oldest rows go first (1 MiB .. 1 TiB)
  } history;

  policy::ReconcileConfig policy;  // `policy:` (docs/policy-git.md); no source = the agent does not manage policy

  YAML::Node service_rules;  // validated by identity::load_service_rules
  YAML::Node raw;            // the whole document, for sections owned by other components (policy, metrics)
};

// A configuration file larger than this is refused before it is read.
inline constexpr size_t kMaxConfigBytes = 4u << 20;

// Parses and validates; errors name file:line:column. `name` is used in messages.
Result<Config> parse_config(const std::string& text, const std::string& name);
// Reads a regular file of at most kMaxConfigBytes (type and size checked first), then parse_config.
Result<Config> load_config(const std::string& path);

}  // namespace hostscope::daemon
