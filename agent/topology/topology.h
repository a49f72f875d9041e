#pragma once
// The live topology store: aggregates TCP connection events into service edges (docs/topology.md).
// Thread-safe: ingest, tick and snapshot take one internal lock; snapshots are plain copies.
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/connection.h"
#include "common/topology_model.h"
#include "agent/topology/end_identities.h"
#include "agent/topology/nat.h"
#include "agent/topology/networks.h"
#include "agent/topology/stats.h"

namespace hostscope::topology {

struct TopologyConfig {
  size_t max_nodes = 4096;          // all nodes; beyond it new nodes fold into the overflow node "external:*"
  size_t max_remote_nodes = 1024;   // external (per-address) nodes; beyond it they fold into "external:*"
  size_t max_edges = 16384;         // beyond it the least recently seen edges are evicted
  size_t max_connections = 65536;   // open (or lingering same-host) connections tracked for stitching/active
  size_t max_listeners = 16384;     // learned listening address:port -> service, to name local servers
  size_t max_known_edges = 65536;   // edge keys remembered after eviction, so "new edge" means never seen
  size_t max_backends_per_edge = 8;  // DNAT backends kept per edge
  // Distinct (workload, Go module) pairs shown by edge ends, each kept once (at most EndIdentities::kMaxEntries);
  // beyond it an end with a new pair shows none (`identities_dropped`).
  size_t max_identities = 4096;
  uint64_t edge_idle_timeout_ns = 600'000'000'000;  // an edge with no traffic and no open connection expires
  uint64_t close_linger_ns = 10'000'000'000;       // how long a closed same-host connection waits for its other side
  // How long a connection to a server that may live on this node (local address or named network) but is not
  // known yet waits for its passive side before it is attributed; 0 attributes at once (docs/topology.md, 2).
  uint64_t hold_linger_ns = 2'000'000'000;
  NetworkMap networks;
  // Address: a remote end in a named network is keyed by (network, address), so each address is its own node (counted
  // with the external ones against max_remote_nodes) and its EdgeEnd::address is exact; Network: one node per network.
  NetworkEnds network_ends = NetworkEnds::Network;
  AnomalyConfig anomaly;
};

// An Endpoint without its own copies: views into the identity it was made from (the process table's entry, or
// the event's comm), valid while that lives; the store copies only what it keeps. A batch names its ends through
// these, so resolving an event copies no strings.
struct EndpointRef {
  std::string_view service, ns, pod;
  uint32_t pid = 0;
  const std::shared_ptr<const EndIdentity>* identity = nullptr;  // null: neither workload nor Go module known

  EndpointRef() = default;
  EndpointRef(std::string_view service, std::string_view ns, std::string_view pod, uint32_t pid,
              const std::shared_ptr<const EndIdentity>* identity)
      : service(service), ns(ns), pod(pod), pid(pid), identity(identity) {}
  explicit EndpointRef(const Endpoint& e) : service(e.service), ns(e.ns), pod(e.pod), pid(e.pid), identity(&e.identity) {}
  Endpoint owned() const;
};

// One event with its identities. `local_peer` is set when the other end is on this node too.
struct IngestItem {
  const events::ConnectionEvent* event = nullptr;
  EndpointRef local;
  std::optional<EndpointRef> local_peer;
};

class Topology {
 public:
  // `start_ns` starts the new-edge warm-up (wall clock, same clock as the `now_ns` passed later).
  explicit Topology(TopologyConfig cfg = {}, uint64_t start_ns = 0);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // `local` owns the socket of the event; `local_peer` is the other end when it is also on this node.
  void ingest(const events::ConnectionEvent& ev, const Endpoint& local, const std::optional<Endpoint>& local_peer,
              uint64_t now_ns);
  void ingest_batch(std::span<const IngestItem> items, uint64_t now_ns);

  // This node's own addresses (besides loopback): a connection to one of them is same-host.
  void set_local_addresses(std::vector<IpAddr> addrs);
  // Conntrack lookups for active connections go to this worker (not owned; nullptr to detach).
  void set_nat_worker(NatWorker* worker);
  // Records DNAT answers (tick() does this for the attached worker).
  void apply_nat(const std::vector<NatResult>& results);

  // Call about once per anomaly window (1 s): closes anomaly windows, expires idle edges and lingering
  // connections, applies finished conntrack lookups.
  void tick(uint64_t now_ns);

  TopologySnapshot snapshot(uint64_t now_ns, const SnapshotFilter& f = {}) const;
  TopologyCounters counters() const;
  size_t edge_count() const;
  size_t node_count() const;
  size_t connection_count() const;
  size_t identity_count() const;  // (workload, Go module) pairs edge ends show, each kept once

 private:
  struct ConnKey {
    IpAddr caddr, saddr;
    uint16_t cport = 0, sport = 0;
    uint32_t netns = 0;  // only for loopback, where the same tuple exists in every namespace
    bool operator==(const ConnKey&) const = default;
  };
  struct ConnKeyHash {
    size_t operator()(const ConnKey& k) const noexcept;
  };
  struct EdgeState;
  static constexpr size_t kMaxHeldEvents = 2;  // an open and a close; a repeated kind replaces the earlier one
  // Events of a connection whose server is not known yet: the edge is named when its passive side (or the
  // peer's identity) arrives, or from what is known when hold_linger passes.
  struct Held {
    Endpoint local;                               // owner of the active socket (the client)
    std::vector<events::ConnectionEvent> events;  // its open and close, at most kMaxHeldEvents
    uint64_t until_ns = 0;
  };
  struct Conn {
    EdgeKey edge;  // unset while `held`
    // edges_' entry for `edge`, valid while edge_removals_ still equals `edge_gen` (the map's nodes do not move):
    // a connection's later events skip hashing the key's names.
    EdgeState* edge_state = nullptr;
    uint64_t edge_gen = 0;
    uint64_t c2s = 0, s2c = 0;  // bytes already added to the edge (the max over both sides' reports)
    uint64_t last_ns = 0;
    uint64_t linger_until_ns = 0;  // set once closed while the other side may still report
    bool counted_open = false, counted_close = false, same_host = false;
    uint8_t sides_open = 0, sides_closed = 0;  // bit 1 active, bit 2 passive
    std::unique_ptr<Held> held;
  };
  // What one event says about its connection, independent of the store's state.
  struct EventView {
    bool active = false;
    uint8_t side = 0;
    bool loop = false;
    bool same_host = false;
    ConnKey ck;
  };
  struct ListenKey {
    IpAddr addr;
    uint16_t port = 0;
    uint32_t netns = 0;
    bool operator==(const ListenKey&) const = default;
  };
  struct ListenKeyHash {
    size_t operator()(const ListenKey& k) const noexcept;
  };
  struct EdgeState {
    const EdgeKey* key = nullptr;  // the key of its entry in edges_ (node-based map: stable), not a second copy
    // The last identity attributes seen at each end (not part of the key): a rollout changes them, not the edge.
    std::string client_pod, server_pod;
    IpAddr client_addr, server_addr;
    bool server_addr_from_server = false;  // the server's own socket reported it (else: as dialled)
    // Workload and Go module of each end: ids in identities_ (2 bytes each, in what was padding before them).
    EndIdentities::Id client_identity = 0, server_identity = 0;
    uint64_t connections = 0, closed = 0, resets = 0, active = 0, c2s = 0, s2c = 0, retransmits = 0;
    std::array<uint64_t, 8> failed{};  // by events::Outcome
    std::unique_ptr<LatencyHistogram> latency;  // allocated on the first sample: passive-only edges have none
    double srtt_us = 0;
    uint64_t first_ns = 0, last_ns = 0;
    std::string dialed;
    std::vector<std::string> actual;
    AnomalyDetector detector;
    std::vector<AnomalyFlag> flags;
  };

  void ingest_locked(const events::ConnectionEvent& ev, const EndpointRef& local, const EndpointRef* peer, uint64_t now);
  EventView view_of(const events::ConnectionEvent& ev, const EndpointRef* peer) const;
  // Adds one event to its edge `e` (and to its tracked connection, when there is one).
  void account(const events::ConnectionEvent& ev, const EndpointRef& local, const EndpointRef* peer, const EventView& v,
               Conn* conn, EdgeState* e, uint64_t now);
  bool should_hold(const events::ConnectionEvent& ev, const EventView& v, const EndpointRef* peer) const;
  void hold(const events::ConnectionEvent& ev, const EndpointRef& local, const ConnKey& ck, Conn& conn, uint64_t now);
  // Names the held connection's edge (`server`, or from what is known now when nullopt) and replays its events.
  void release_held(const ConnKey& ck, Conn& conn, std::optional<NodeKey> server, uint64_t now);
  void release_expired_holds(uint64_t now);
  events::Role infer_role(const events::ConnectionEvent& ev) const;
  bool is_local_address(const IpAddr& a) const;
  NodeKey service_node(const EndpointRef& e) const;
  NodeKey remote_server_node(const IpAddr& a, uint16_t port, uint32_t netns) const;
  NodeKey remote_client_node(const IpAddr& a) const;
  NodeKey admit_node(NodeKey k, uint64_t now);
  EdgeState* edge_for(const EdgeKey& key, uint64_t now);
  void remove_edge(std::unordered_map<EdgeKey, EdgeState, EdgeKeyHash>::iterator it);
  void release_node(const NodeKey& k);
  void expire_idle_edges(uint64_t now);
  void sweep_edges(uint64_t now);
  Conn* new_conn(const ConnKey& k, uint64_t now);
  void evict_conns(uint64_t now);
  void learn_listener(const ListenKey& k, const NodeKey& node);
  void learn_listener(const ListenKey& k, const EndpointRef& local);  // names it service_node(local)
  void remember_edge(const EdgeKey& key, EdgeState& e, uint64_t now);
  void add_failure(EdgeState& e, events::Outcome o);
  EdgeSnapshot snapshot_edge(const EdgeState& e) const;
  TopologyCounters counters_locked() const;

  TopologyConfig cfg_;
  uint64_t start_ns_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<EdgeKey, EdgeState, EdgeKeyHash> edges_;
  std::unordered_map<NodeKey, uint32_t, NodeKeyHash> nodes_;  // node -> number of edges using it
  size_t remote_nodes_ = 0;
  std::unordered_map<ConnKey, Conn, ConnKeyHash> conns_;
  std::deque<ConnKey> held_order_;  // held connections in deadline order (entries may be stale), bounded
  uint64_t edge_removals_ = 0;      // bumped on every edge removal: an EdgeState* taken before may dangle
  std::unordered_map<ListenKey, NodeKey, ListenKeyHash> listeners_;
  std::unordered_set<size_t> known_edges_;
  std::deque<size_t> known_order_;
  std::vector<IpAddr> local_addrs_;
  NatWorker* nat_ = nullptr;
  EndIdentities identities_;  // what edges' client_identity/server_identity name
  TopologyCounters counters_;
};

}  // namespace hostscope::topology
