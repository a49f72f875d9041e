#pragma once
// Topology series from a snapshot: one label set per edge (src/dst service, namespace and address, the server's
// listening port, node). Built at scrape time: an edge that expired from the store is absent from the snapshot,
// so its series disappear. The number of series is capped; edges beyond the cap are refused whole (oldest
// edges are kept, so a series once exported keeps its continuity) and counted.
#include <atomic>
#include <cstdint>
#include <string>

#include "common/topology_model.h"
#include "exporters/exposition.h"

namespace hostscope::exporters {

struct TopologyExportStats {
  uint64_t edges = 0;            // edges exported
  uint64_t series = 0;           // series written
  uint64_t series_refused = 0;   // series not written because of the cap
};

// Writes every topology family into `out`. `max_series` caps the series written (0: nothing is written).
TopologyExportStats write_topology(Exposition& out, const topology::TopologySnapshot& snap, const std::string& node,
                                   uint64_t max_series);

// The node label of an edge end: service or network name, the remote address for external nodes.
std::string end_name(const topology::EdgeEnd& e);
// The address label of an edge end: its own address (external ends; network ends keyed by address, EdgeEnd::
// exact_address); empty where only the most recently seen one is known (service ends, network ends by network).
std::string end_address(const topology::EdgeEnd& e);

}  // namespace hostscope::exporters
