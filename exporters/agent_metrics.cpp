#include "exporters/agent_metrics.h"

namespace hostscope::exporters {

void write_event_counts(Exposition& out, const std::vector<EventCount>& counts) {
  out.family("hostscope_events_total", "counter", "TCP lifecycle events received from the kernel, by type and outcome.");
  for (auto& c : counts) out.sample("hostscope_events_total", Labels{{"type", c.type}, {"outcome", c.outcome}}, c.n);
}

void write_agent_health(Exposition& out, const AgentHealth& h, const std::string& node) {
  out.family("hostscope_build_info", "gauge", "Always 1; the agent's version and node.");
  out.sample("hostscope_build_info", Labels{{"version", h.version}, {"node", node}}, uint64_t{1});
  out.family("hostscope_lost_events_total", "counter",
             "Events lost before they were accounted, by where they were lost.");
  for (auto& [src, n] : h.lost_by_source) out.sample("hostscope_lost_events_total", Labels{{"source", src}}, n);
  out.family("hostscope_tracked_sockets", "gauge", "Sockets tracked in the kernel socket table.");
  out.sample("hostscope_tracked_sockets", {}, h.tracked_sockets);
  out.family("hostscope_tracked_connections", "gauge", "Connections tracked by the topology store.");
  out.sample("hostscope_tracked_connections", {}, h.tracked_connections);
  out.family("hostscope_topology_identities", "gauge",
             "Edge-end (workload, Go module) pairs the topology store keeps, each once.");
  out.sample("hostscope_topology_identities", {}, h.topology_identities);
  out.family("hostscope_tracked_processes", "gauge", "Processes in the identity table.");
  out.sample("hostscope_tracked_processes", {}, h.tracked_processes);
  out.family("hostscope_bpf_map_entries", "gauge", "Entries in each BPF map.");
  for (auto& m : h.maps) out.sample("hostscope_bpf_map_entries", Labels{{"map", m.name}}, m.entries);
  out.family("hostscope_bpf_map_capacity", "gauge", "Maximum entries of each BPF map.");
  for (auto& m : h.maps) out.sample("hostscope_bpf_map_capacity", Labels{{"map", m.name}}, m.capacity);
  out.family("hostscope_edge_table_overflow_total", "counter",
             "Connection opens and closes the kernel edge table (tcp_edges) had no room for; each was sent as an event "
             "instead, so none is lost.");
  out.sample("hostscope_edge_table_overflow_total", {}, h.edge_table_overflow);
  out.family("hostscope_identity_cache_hits_total", "counter", "Identity cache lookups answered, by cache.");
  for (auto& [c, n] : h.identity_hits) out.sample("hostscope_identity_cache_hits_total", Labels{{"cache", c}}, n);
  out.family("hostscope_identity_cache_misses_total", "counter", "Identity cache lookups not answered, by cache.");
  for (auto& [c, n] : h.identity_misses) out.sample("hostscope_identity_cache_misses_total", Labels{{"cache", c}}, n);
  out.family("hostscope_topology_store_total", "counter", "Topology store events (expiry, eviction, overflow), by kind.");
  for (auto& [k, n] : h.topology) out.sample("hostscope_topology_store_total", Labels{{"kind", k}}, n);
}

}  // namespace hostscope::exporters
