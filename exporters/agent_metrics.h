#pragma once
// Agent health as plain values (filled by the daemon from Pipeline::health() and its components) and the
// families written from it. Plain values keep exporters independent of agent/daemon.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "exporters/exposition.h"

namespace hostscope::exporters {

struct MapUsage {
  std::string name;
  uint64_t entries = 0, capacity = 0;
};

// Connection events received from the kernel with one type and outcome (label values as written).
struct EventCount {
  std::string type;     // open | close
  std::string outcome;  // none | closed | refused | ...
  uint64_t n = 0;
};

struct AgentHealth {
  std::string version;
  std::map<std::string, uint64_t> lost_by_source;  // kernel_ring_buffer, kernel_reentry, user_space_queue, ...
  uint64_t tracked_sockets = 0;    // sockets in the kernel socket table
  uint64_t tracked_connections = 0;  // connections the topology store tracks
  uint64_t topology_identities = 0;  // (workload, Go module) pairs the topology store keeps for edge ends
  uint64_t tracked_processes = 0;  // processes in the identity table
  std::vector<MapUsage> maps;      // BPF map occupancy
  uint64_t edge_table_overflow = 0;  // connection opens/closes the kernel edge table had no room for (sent as events)
  std::map<std::string, uint64_t> identity_hits, identity_misses;  // by cache
  std::map<std::string, uint64_t> topology;  // store counters (edges_expired, edges_evicted, ...)
  std::vector<EventCount> events;  // non-zero counts, in the order written (agent/daemon/event_counter.h)
};

// Every family of AgentHealth except the event counts.
void write_agent_health(Exposition& out, const AgentHealth& h, const std::string& node);
// hostscope_events_total (the family is written even without counts).
void write_event_counts(Exposition& out, const std::vector<EventCount>& counts);

}  // namespace hostscope::exporters
