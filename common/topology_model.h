#pragma once
// The service topology model shared by the live store, its snapshots and every rendering (docs/topology.md).
// A node is a service (from identity), a named network (config `networks:`) or an external address; an edge is
// (client node -> server node, server port, protocol). Ephemeral client ports never become keys.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/connection.h"

namespace hostscope::topology {

// What an edge end shows of the process behind it besides its service and pod. Built once per process identity
// (the process table keeps it, shared by the processes it forks) and passed by pointer: events do not copy it, and
// the live store interns each distinct pair once (agent/topology/end_identities.h). Empty strings mean unknown.
struct EndIdentity {
  std::string workload;   // Kubernetes workload named after the pod ("frontend" for frontend-6d4f9b7c8-x7k2p)
  std::string go_module;  // Go main module "path@version" (the path alone when the version is "(devel)" or empty)
  bool operator==(const EndIdentity&) const = default;
  bool empty() const { return workload.empty() && go_module.empty(); }
};

// Identity of one local socket owner, filled by the identity resolver. Empty strings mean unknown.
struct Endpoint {
  std::string service;
  std::string ns;   // Kubernetes namespace
  std::string pod;  // Kubernetes pod
  uint32_t pid = 0;
  // Workload and Go module, shared with the process table (null: neither known). Brace initializers that stop at
  // `pid` leave it null (the {} keeps -Wmissing-field-initializers quiet).
  std::shared_ptr<const EndIdentity> identity{};
};

enum class NodeKind : uint8_t { Service, Network, External };
std::string_view to_string(NodeKind k);
std::optional<NodeKind> node_kind_from_string(std::string_view s);

enum class Protocol : uint8_t { Tcp = 6, Udp = 17 };
std::string_view to_string(Protocol p);
std::optional<Protocol> protocol_from_string(std::string_view s);

// Failure reasons as they appear in `failed {reason: count}` (the names of events::Outcome, "none" for None).
std::string_view outcome_name(events::Outcome o);
bool is_connect_failure(events::Outcome o);  // refused, timed_out, failed: never established
bool is_reset(events::Outcome o);            // reset_sent, reset_received

// Address text for rendering: empty for Family::None (an end not seen), IPv6 with brackets before a port.
std::string format_addr(const IpAddr& a);
std::string format_addr_port(const IpAddr& a, uint16_t port);  // 1.2.3.4:80, [::1]:80
// The inverse: "10.0.0.1:80" or "[fd00::1]:80" with a port 1..65535; nullopt for anything else.
std::optional<std::pair<IpAddr, uint16_t>> parse_addr_port(std::string_view s);
bool is_loopback(const IpAddr& a);

// The name of a node. `address` is set only for external nodes and, with `topology.network_ends: address`, for
// network nodes (one node per remote address, bounded).
struct NodeKey {
  NodeKind kind = NodeKind::Service;
  std::string name;  // service name, network name, or "external"
  std::string ns;    // services only
  std::string address;
  bool operator==(const NodeKey&) const = default;
  // Stable text id: "service:ns/name", "network:name", "network:name@10.244.1.5" (per address), "external:1.2.3.4".
  std::string id() const;
};

struct EdgeKey {
  NodeKey client;
  NodeKey server;
  uint16_t port = 0;  // the server's listening port
  Protocol protocol = Protocol::Tcp;
  bool operator==(const EdgeKey&) const = default;
};

struct NodeKeyHash {
  size_t operator()(const NodeKey& k) const noexcept;
};
struct EdgeKeyHash {
  size_t operator()(const EdgeKey& k) const noexcept;
};

// ---- snapshot types: plain values, copied out of the live store -------------------------------------------

struct AnomalyFlag {
  std::string reason;     // "failure_rate", "connect_latency", "new_edge"
  uint64_t first_ns = 0;  // first window flagged (wall clock)
  uint64_t last_ns = 0;   // latest window flagged
  uint32_t windows = 1;   // consecutive flagged windows merged into this flag
  double value = 0;       // the window's failure rate (0..1) or mean connect latency (us); 0 for new_edge
  double baseline = 0;    // the baseline it was compared with
  bool operator==(const AnomalyFlag&) const = default;
};

// One side of an edge as rendered: identity plus the last concrete pod/address seen.
struct EdgeEnd {
  NodeKind kind = NodeKind::Service;
  std::string service;  // service, network name, or "external"
  std::string ns;
  std::string pod;      // most recently seen pod
  std::string address;  // most recently seen address (server: where it was reached; client: its address)
  // Brace initializers that stop at `address` leave these empty (the {} keeps -Wmissing-field-initializers quiet).
  std::string workload{};   // most recently seen workload (EndIdentity::workload)
  std::string go_module{};  // most recently seen Go main module "path@version" (EndIdentity::go_module)
  // A network end keyed by its address (`topology.network_ends: address`): `address` is this end's own, part of its
  // node id, not the most recently seen. External ends' addresses are always their own.
  bool exact_address{};
  bool operator==(const EdgeEnd&) const = default;
};

struct LatencySummary {
  uint64_t samples = 0;
  uint64_t p50_us = 0, p90_us = 0, p99_us = 0;
  bool operator==(const LatencySummary&) const = default;
};

// Upper bounds (us) of the cumulative connect-latency buckets exported to Prometheus: powers of two, which are
// bucket boundaries of the store's histogram (agent/topology/stats.h), so an exported bucket holds exactly the
// samples below its bound.
inline constexpr std::array<uint64_t, 19> kLatencyExportBoundsUs = {
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288,
    1048576, 2097152, 4194304};

// The cluster view (`topology --cluster`, agent/cluster): what one node's agent counted for an edge. Both ends of a
// cross-node connection are observed, by the client's node and by the server's; only one side is counted
// (docs/kubernetes.md "Cluster view").
struct NodeObservation {
  std::string node;  // the agent's `node` label
  std::string side;  // "client" (the client end is on this node), "server", or "both" (same node)
  bool counted = false;  // its counts are the edge's
  uint64_t connections = 0, failed = 0, resets = 0, active = 0, bytes_sent = 0, bytes_received = 0;
  bool operator==(const NodeObservation&) const = default;
};

struct EdgeSnapshot {
  EdgeEnd client;
  EdgeEnd server;
  uint16_t port = 0;
  Protocol protocol = Protocol::Tcp;
  uint64_t connections = 0;  // established connections (opened)
  uint64_t closed = 0;       // established connections that ended (any outcome)
  std::map<std::string, uint64_t> failed;  // connect attempts that never established, by reason
  uint64_t resets = 0;                     // established connections ended by a reset (either way)
  uint64_t active = 0;                     // open now
  uint64_t bytes_sent = 0;                 // client -> server payload
  uint64_t bytes_received = 0;             // server -> client payload
  LatencySummary latency;                  // connect latency
  uint32_t srtt_us = 0;                    // EWMA of the sockets' smoothed RTT
  uint64_t retransmits = 0;
  uint64_t first_seen_ns = 0, last_seen_ns = 0;
  std::string dialed;               // DNAT: destination the client dialled ("10.96.0.10:80"); empty without NAT
  std::vector<std::string> actual;  // DNAT: backends conntrack reported (bounded)
  std::vector<AnomalyFlag> anomalies;
  // Verdict of the policy generation in force for this edge: "denied", "would-deny" (audit mode) or "" (allowed, or no
  // policy applied). Set by the CLI from <policy state>/gen-N.ir.json (agent/cli/policy_marks.h), not by the store.
  std::string policy;
  // Connect-latency histogram for exporters: cumulative counts below kLatencyExportBoundsUs and
  // the sum of all samples (us). Filled only when SnapshotFilter::latency_buckets asks; not in the JSON form.
  std::vector<uint64_t> latency_buckets;
  uint64_t latency_sum_us = 0;
  // Cluster view only (empty/false on one node's topology): the per-node breakdown, and whether an end's address
  // belonged to another pod earlier in the window (named by its most recent owner).
  std::vector<NodeObservation> observed_by{};
  bool address_reused = false;
  bool operator==(const EdgeSnapshot&) const = default;

  uint64_t failed_total() const;
};

struct NodeSnapshot {
  std::string id;
  NodeKind kind = NodeKind::Service;
  std::string service;
  std::string ns;
  std::string address;
  bool operator==(const NodeSnapshot&) const = default;
};

struct TopologyCounters {
  uint64_t events = 0;               // events ingested
  uint64_t stitched = 0;             // second-side events merged into an already counted same-host connection
  uint64_t dropped = 0;              // events that could not be attributed (unknown address family)
  uint64_t edges_expired = 0;        // idle edges removed
  uint64_t edges_evicted = 0;        // edges removed because max_edges was reached
  uint64_t connections_evicted = 0;  // tracked connections dropped because max_connections was reached
  uint64_t node_overflow = 0;        // edges folded into the overflow node because a node limit was reached
  uint64_t anomalies = 0;            // anomaly flags raised
  uint64_t nat_requests = 0;         // conntrack lookups queued
  uint64_t nat_dropped = 0;          // lookups not queued (queue full)
  uint64_t nat_translated = 0;       // lookups that found a DNAT
  uint64_t identities_dropped = 0;   // edge-end workload/Go module pairs not kept because max_identities was reached
  bool operator==(const TopologyCounters&) const = default;
};

struct TopologySnapshot {
  uint64_t taken_ns = 0;
  std::vector<NodeSnapshot> nodes;  // sorted by id
  std::vector<EdgeSnapshot> edges;  // sorted by client id, server id, port
  TopologyCounters counters;
  bool operator==(const TopologySnapshot&) const = default;
};

// Node identity of an edge end (what NodeSnapshot::id holds).
std::string node_id(const EdgeEnd& e);

struct SnapshotFilter {
  uint64_t since_ns = 0;  // keep edges last seen at or after this time
  std::string service;    // keep edges with this service at either end
  std::string ns;         // keep edges with this namespace at either end
  std::optional<uint16_t> port;
  bool latency_buckets = false;  // also fill EdgeSnapshot::latency_buckets/latency_sum_us (exporters)
  bool empty() const { return since_ns == 0 && service.empty() && ns.empty() && !port; }
};

bool matches(const EdgeSnapshot& e, const SnapshotFilter& f);
// Keeps the matching edges and only the nodes they reference. Counters are kept as they are.
TopologySnapshot filter(const TopologySnapshot& s, const SnapshotFilter& f);
// The same without copying the edges, for a snapshot that is already canonical (from the store, the history or
// from_json): an empty filter returns it as it is.
TopologySnapshot filter(TopologySnapshot&& s, const SnapshotFilter& f);
// Sorts edges and nodes into the canonical order and rebuilds `nodes` from the edges.
void canonicalize(TopologySnapshot& s);

}  // namespace hostscope::topology
