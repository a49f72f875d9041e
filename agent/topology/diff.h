#pragma once
// `hostscope topology diff A B`: what changed in who-talks-to-whom between two windows of the topology (usually two
// windows of the node's history). An edge appeared (only in B), vanished (only in A), or changed beyond a threshold:
// its connection rate, its failure ratio or its connect latency. Windows may differ in length, so counts of A are
// scaled to B's length before they are compared. Changes are sorted by impact: the number of connection attempts
// (in B's window) the change is about. See docs/topology.md, "Diff".
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/topology_model.h"

namespace hostscope::topology {

struct DiffOptions {
  double rate_change = 0.5;      // relative change of attempts/s that counts (0.5: -50% or +50%)
  uint64_t min_attempts = 10;    // rate and latency changes need this many attempts in the busier window
  double failure_change = 0.05;  // absolute change of the failure ratio (failed / attempts) that counts
  double latency_factor = 2.0;   // p90 connect latency grew or shrank by at least this factor
};

// One window's side of a changed edge; an absent side (appeared/vanished) has attempts == 0 and present == false.
struct DiffSide {
  bool present = false;
  uint64_t connections = 0, failed = 0, resets = 0;
  double attempts_per_s = 0;
  double failure_ratio = 0;  // failed / (connections + failed)
  uint64_t latency_samples = 0, p90_us = 0;
};

struct EdgeChange {
  EdgeEnd client, server;  // identities as B shows them (A's when the edge vanished)
  uint16_t port = 0;
  Protocol protocol = Protocol::Tcp;
  // "appeared", "vanished", or any of "rate", "failures", "latency" (an edge can change in several ways at once).
  std::vector<std::string> kinds;
  DiffSide before, after;
  double impact = 0;  // attempts (in B's window) concerned: sort key, highest first
};

struct WindowSpan {
  uint64_t from_ns = 0, to_ns = 0;
  double seconds() const { return to_ns > from_ns ? double(to_ns - from_ns) / 1e9 : 0; }
};

struct TopologyDiff {
  WindowSpan a, b;
  std::vector<EdgeChange> changes;
  size_t edges_a = 0, edges_b = 0, unchanged = 0;
};

TopologyDiff diff_topology(const TopologySnapshot& a, WindowSpan wa, const TopologySnapshot& b, WindowSpan wb,
                           const DiffOptions& o = {});

std::string render_diff_table(const TopologyDiff& d);
nlohmann::json diff_to_json(const TopologyDiff& d);

}  // namespace hostscope::topology
