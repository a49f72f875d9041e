#pragma once
// The cluster's topology from every node's series: remote addresses are named by the endpoint info of the node that
// owns them, and the two observations of one cross-node connection (the client's node: web -> 10.244.1.5:8080, the
// server's node: 10.244.0.7 -> api:8080) become one edge web -> api:8080, counted once. Pure functions.
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

#include "agent/cluster/series.h"
#include "common/topology_model.h"

namespace hostscope::cluster {

// Per-second rates of an edge (top --cluster), by (client node id, server node id, port).
struct EdgeRates {
  double open_per_s = 0, bytes_per_s = 0;
};
using RateKey = std::tuple<std::string, std::string, uint16_t>;

struct ClusterTopology {
  topology::TopologySnapshot snapshot;  // canonical order; EdgeSnapshot::observed_by holds the per-node breakdown
  std::map<RateKey, EdgeRates> rates;
};

// Rules (docs/kubernetes.md "Cluster view"):
// * an end with an address (EndLabels::address) owned by a known endpoint with a service is that service (its
//   namespace, pod, workload); with several owners in the window the current one wins (then the first in name
//   order) and the edge is flagged address_reused; an address nobody owns stays an external (or network) end;
// * an address several services hold now (host-network services on a node address) names the one that the other
//   node's observation of the same connection names, else it stays the address;
// * observations with the same named ends and port are one edge; its counts are the sum of the observations made
//   on the client's side (the client end is local to the observing node) when there is any, else of the server's
//   side, so a connection seen by both agents is counted once.
ClusterTopology join(const ClusterSeries& in, uint64_t taken_ns);

}  // namespace hostscope::cluster
