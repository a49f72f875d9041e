#pragma once
// Agent health as plain values (filled by the daemon from Pipeline::health() and its components) and the
// families written from it. Plain values keep exporters independent of agent/daemon.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/connection.h"
#include "exporters/exposition.h"

namespace hostscope::exporters {

struct MapUsage {
  std::string name;
  uint64_t entries = 0, capacity = 0;
};

struct AgentHealth {
  std::string version;
  std::map<std::string, uint64_t> lost_by_source;  // kernel_ring_buffer, kernel_reentry, user_space_queue, ...
  uint64_t tracked_sockets = 0;    // sockets in the kernel socket table
  uint64_t tracked_connections = 0;  // connections the topology store tracks
  uint64_t tracked_processes = 0;  // processes in the identity table
  std::vector<MapUsage> maps;      // BPF map occupancy
  std::map<std::string, uint64_t> identity_hits, identity_misses;  // by cache
  std::map<std::string, uint64_t> topology;  // store counters (edges_expired, edges_evicted, ...)
};

// Counts events by kind and outcome. count() runs in the kernel reader thread: relaxed atomics only.
class EventCounter {
 public:
  void count(std::span<const events::ConnectionEvent> batch);
  uint64_t get(events::Kind k, events::Outcome o) const;
  void write(Exposition& out) const;

 private:
  static constexpr size_t kOutcomes = 8;
  std::array<std::atomic<uint64_t>, 2 * kOutcomes> n_{};
};

void write_agent_health(Exposition& out, const AgentHealth& h, const std::string& node);

}  // namespace hostscope::exporters
