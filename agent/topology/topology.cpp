#include "agent/topology/topology.h"

#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace hostscope::topology {

// Keys of the least recently seen eighth (at least one) of a table whose values carry `last_ns`: evicting in
// batches keeps the cost of a full table amortised instead of paying a scan per insert.
template <typename Map>
std::vector<typename Map::key_type> least_recent_eighth(const Map& m) {
  std::vector<std::pair<uint64_t, const typename Map::key_type*>> order;
  order.reserve(m.size());
  for (auto& [k, v] : m) order.emplace_back(v.last_ns, &k);
  size_t n = std::max<size_t>(1, order.size() / 8);
  std::nth_element(order.begin(), order.begin() + ptrdiff_t(n - 1), order.end(),
                   [](auto& a, auto& b) { return a.first < b.first; });
  std::vector<typename Map::key_type> keys;
  for (size_t i = 0; i < n && i < order.size(); ++i) keys.push_back(*order[i].second);
  return keys;
}


using events::Kind;
using events::Outcome;
using events::Role;

namespace {

constexpr uint8_t kActiveSide = 1, kPassiveSide = 2;
constexpr double kSrttAlpha = 1.0 / 8;  // the kernel's own srtt gain
constexpr size_t kTrimAfterEntries = 4096;  // edges and connections removed by one tick before the heap is trimmed

size_t hash_addr(const IpAddr& a) {
  uint64_t lo = 0, hi = 0;
  std::memcpy(&lo, a.bytes.data(), 8);
  std::memcpy(&hi, a.bytes.data() + 8, 8);
  return std::hash<uint64_t>{}(lo * 0x9e3779b97f4a7c15ull ^ hi ^ uint64_t(a.family));
}

// The overflow node: where new nodes go once a node limit is reached, so the edge count stays bounded and the
// traffic is still counted.
NodeKey overflow_node() { return NodeKey{NodeKind::External, "external", "", "*"}; }

// A node of one remote address (external, or a named network's in `network_ends: address`): bounded by
// max_remote_nodes.
bool is_remote_node(const NodeKey& k) {
  return k.kind == NodeKind::External ? !(k == overflow_node()) : k.kind == NodeKind::Network && !k.address.empty();
}

}  // namespace

size_t Topology::ConnKeyHash::operator()(const ConnKey& k) const noexcept {
  size_t h = hash_addr(k.caddr);
  h = h * 31 + hash_addr(k.saddr);
  return h ^ (size_t(k.cport) << 32) ^ (size_t(k.sport) << 16) ^ k.netns;
}

size_t Topology::ListenKeyHash::operator()(const ListenKey& k) const noexcept {
  return hash_addr(k.addr) ^ (size_t(k.port) << 32) ^ k.netns;
}

Topology::Topology(TopologyConfig cfg, uint64_t start_ns)
    : cfg_(std::move(cfg)), start_ns_(start_ns), identities_(cfg_.max_identities) {}

Topology::~Topology() = default;

void Topology::set_local_addresses(std::vector<IpAddr> addrs) {
  std::lock_guard lk(mu_);
  local_addrs_ = std::move(addrs);
}

void Topology::set_nat_worker(NatWorker* worker) {
  std::lock_guard lk(mu_);
  nat_ = worker;
}

bool Topology::is_local_address(const IpAddr& a) const {
  if (is_loopback(a)) return true;
  return std::find(local_addrs_.begin(), local_addrs_.end(), a) != local_addrs_.end();
}

// Sockets that predate the agent have no role. The side whose port is a known listener is the server; otherwise
// the lower port is taken as the listening one (ephemeral ports are high).
Role Topology::infer_role(const events::ConnectionEvent& ev) const {
  uint32_t ns = is_loopback(ev.saddr) ? ev.netns : 0;
  if (listeners_.count(ListenKey{ev.saddr, ev.sport, ns})) return Role::Passive;
  if (listeners_.count(ListenKey{ev.daddr, ev.dport, ns})) return Role::Active;
  return ev.sport < ev.dport ? Role::Passive : Role::Active;
}

Endpoint EndpointRef::owned() const {
  return Endpoint{std::string(service), std::string(ns), std::string(pod), pid, identity ? *identity : nullptr};
}

NodeKey Topology::service_node(const EndpointRef& e) const {
  return NodeKey{NodeKind::Service, e.service.empty() ? std::string("unknown") : std::string(e.service), std::string(e.ns), ""};
}

NodeKey Topology::remote_server_node(const IpAddr& a, uint16_t port, uint32_t netns) const {
  if (auto it = listeners_.find(ListenKey{a, port, is_loopback(a) ? netns : 0}); it != listeners_.end())
    return it->second;
  return remote_client_node(a);
}

NodeKey Topology::remote_client_node(const IpAddr& a) const {
  if (auto name = cfg_.networks.lookup(a))
    return NodeKey{NodeKind::Network, std::string(*name), "",
                   cfg_.network_ends == NetworkEnds::Address ? format_addr(a) : std::string()};
  return NodeKey{NodeKind::External, "external", "", format_addr(a)};
}

NodeKey Topology::admit_node(NodeKey k, uint64_t now) {
  if (nodes_.count(k)) return k;
  bool folded = false;
  if (is_remote_node(k) && remote_nodes_ >= cfg_.max_remote_nodes) {
    ++counters_.node_overflow;
    if (k.kind != NodeKind::Network) return overflow_node();
    k.address.clear();  // a per-address network end folds into its network's node
    if (nodes_.count(k)) return k;
    folded = true;
  }
  if (nodes_.size() >= cfg_.max_nodes) {
    sweep_edges(now);
    if (nodes_.size() >= cfg_.max_nodes) {
      if (!folded) ++counters_.node_overflow;
      return overflow_node();
    }
  }
  return k;
}

void Topology::release_node(const NodeKey& k) {
  auto it = nodes_.find(k);
  if (it == nodes_.end()) return;
  if (--it->second == 0) {
    if (is_remote_node(k)) --remote_nodes_;
    nodes_.erase(it);
  }
}

void Topology::remove_edge(std::unordered_map<EdgeKey, EdgeState, EdgeKeyHash>::iterator it) {
  NodeKey c = it->first.client, s = it->first.server;
  identities_.release(it->second.client_identity);
  identities_.release(it->second.server_identity);
  edges_.erase(it);
  ++edge_removals_;
  release_node(c);
  release_node(s);
}

// Drops the edges with no open connection that have been idle longer than edge_idle_timeout (counted as expired).
void Topology::expire_idle_edges(uint64_t now) {
  for (auto it = edges_.begin(); it != edges_.end();) {
    auto& e = it->second;
    if (e.active == 0 && e.last_ns + cfg_.edge_idle_timeout_ns < now) {
      ++counters_.edges_expired;
      auto next = std::next(it);
      remove_edge(it);
      it = next;
    } else {
      ++it;
    }
  }
}

// Frees room: idle edges first, then the least recently seen eighth, so the cost is amortised over many inserts.
void Topology::sweep_edges(uint64_t now) {
  expire_idle_edges(now);
  if (edges_.size() < cfg_.max_edges && nodes_.size() < cfg_.max_nodes) return;
  std::vector<EdgeKey> victims = least_recent_eighth(edges_);
  for (auto& k : victims) {
    auto it = edges_.find(k);
    if (it == edges_.end()) continue;
    ++counters_.edges_evicted;
    remove_edge(it);
  }
}

void Topology::remember_edge(const EdgeKey& key, EdgeState& e, uint64_t now) {
  size_t h = EdgeKeyHash{}(key);
  if (known_edges_.count(h)) return;
  if (cfg_.max_known_edges == 0) return;
  if (known_edges_.size() >= cfg_.max_known_edges) {
    known_edges_.erase(known_order_.front());
    known_order_.pop_front();
  }
  known_edges_.insert(h);
  known_order_.push_back(h);
  if (cfg_.anomaly.enabled && now >= start_ns_ + cfg_.anomaly.new_edge_warmup_ns) {
    if (merge_flag(e.flags, AnomalyFlag{"new_edge", now, now, 1, 0, 0}, 0, cfg_.anomaly.max_flags_per_edge))
      ++counters_.anomalies;
  }
}

Topology::EdgeState* Topology::edge_for(const EdgeKey& wanted, uint64_t now) {
  if (auto it = edges_.find(wanted); it != edges_.end()) return &it->second;
  if (edges_.size() >= cfg_.max_edges) sweep_edges(now);
  EdgeKey key = wanted;
  key.client = admit_node(std::move(key.client), now);
  key.server = admit_node(std::move(key.server), now);
  if (!(key == wanted))
    if (auto it = edges_.find(key); it != edges_.end()) return &it->second;
  for (const NodeKey* n : {&key.client, &key.server}) {
    auto [it, fresh] = nodes_.try_emplace(*n, 0);
    ++it->second;
    if (fresh && is_remote_node(*n)) ++remote_nodes_;
  }
  auto [it, _] = edges_.try_emplace(key);
  EdgeState& e = it->second;
  e.key = &it->first;
  e.first_ns = now;
  e.last_ns = now;
  remember_edge(key, e, now);
  return &e;
}

Topology::Conn* Topology::new_conn(const ConnKey& k, uint64_t now) {
  if (cfg_.max_connections == 0) return nullptr;
  if (conns_.size() >= cfg_.max_connections) evict_conns(now);
  auto [it, _] = conns_.try_emplace(k);
  it->second.last_ns = now;
  return &it->second;
}

void Topology::evict_conns(uint64_t now) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.linger_until_ns && it->second.linger_until_ns <= now)
      it = conns_.erase(it);
    else
      ++it;
  }
  if (conns_.size() < cfg_.max_connections) return;
  std::vector<ConnKey> victims = least_recent_eighth(conns_);
  for (auto& k : victims) {
    auto it = conns_.find(k);
    if (it == conns_.end()) continue;
    if (it->second.held) {
      // Its traffic still counts: attribute it from what is known before forgetting it.
      release_held(k, it->second, std::nullopt, now);
      it = conns_.find(k);
      if (it == conns_.end()) continue;
    }
    // An evicted open connection no longer counts as active; its close will still be counted as a close.
    if (it->second.counted_open && !it->second.counted_close)
      if (auto e = edges_.find(it->second.edge); e != edges_.end() && e->second.active > 0) --e->second.active;
    ++counters_.connections_evicted;
    conns_.erase(it);
  }
}

void Topology::learn_listener(const ListenKey& k, const NodeKey& node) {
  auto it = listeners_.find(k);
  if (it != listeners_.end()) {
    if (!(it->second == node)) it->second = node;
    return;
  }
  if (cfg_.max_listeners == 0) return;
  if (listeners_.size() >= cfg_.max_listeners) listeners_.erase(listeners_.begin());
  listeners_.emplace(k, node);
}

void Topology::learn_listener(const ListenKey& k, const EndpointRef& local) {
  // Every passive event names its listener: compared in place, so the common case (learned already) copies nothing.
  if (auto it = listeners_.find(k); it != listeners_.end()) {
    const NodeKey& n = it->second;
    // An ownerless passive event (a connection nobody accepted: its server died with it in the accept queue) says
    // nothing about who listens there; it must not turn a named listener into "unknown".
    if (local.service.empty() && n.kind == NodeKind::Service) return;
    if (n.kind == NodeKind::Service && n.name == (local.service.empty() ? std::string_view("unknown") : local.service) &&
        n.ns == local.ns && n.address.empty())
      return;
  }
  learn_listener(k, service_node(local));
}

void Topology::add_failure(EdgeState& e, Outcome o) {
  ++e.failed[size_t(o) & 7];
  e.detector.record_attempt(true);
}

void Topology::ingest(const events::ConnectionEvent& ev, const Endpoint& local,
                      const std::optional<Endpoint>& local_peer, uint64_t now_ns) {
  const EndpointRef l(local);
  std::optional<EndpointRef> p;
  if (local_peer) p.emplace(*local_peer);
  std::lock_guard lk(mu_);
  ingest_locked(ev, l, p ? &*p : nullptr, now_ns);
}

void Topology::ingest_batch(std::span<const IngestItem> items, uint64_t now_ns) {
  std::lock_guard lk(mu_);
  for (const auto& i : items)
    if (i.event) ingest_locked(*i.event, i.local, i.local_peer ? &*i.local_peer : nullptr, now_ns);
}

Topology::EventView Topology::view_of(const events::ConnectionEvent& ev, const EndpointRef* peer) const {
  EventView v;
  Role role = ev.role == Role::Unknown ? infer_role(ev) : ev.role;
  v.active = role == Role::Active;
  v.side = v.active ? kActiveSide : kPassiveSide;
  v.loop = is_loopback(ev.saddr) || is_loopback(ev.daddr);
  // The connection seen from the client: both sockets of a same-host connection produce the same key.
  v.ck.caddr = v.active ? ev.saddr : ev.daddr;
  v.ck.cport = v.active ? ev.sport : ev.dport;
  v.ck.saddr = v.active ? ev.daddr : ev.saddr;
  v.ck.sport = v.active ? ev.dport : ev.sport;
  v.ck.netns = v.loop ? ev.netns : 0;
  v.same_host = peer != nullptr || v.loop || is_local_address(ev.daddr);
  if (!v.same_host && v.active) {
    // A server learned from its own passive events is on this node (in another network namespace): its socket will
    // report this connection too.
    auto it = listeners_.find(ListenKey{ev.daddr, ev.dport, 0});
    v.same_host = it != listeners_.end() && it->second.kind == NodeKind::Service;
  }
  return v;
}

// The first event of a connection names its edge. An active socket dialling an address where the server may
// live on this node, with no listener learned there yet, cannot name the server: its passive side (which
// arrives later, at its first send or receive) can. Such connections wait instead of being fixed as external.
bool Topology::should_hold(const events::ConnectionEvent& ev, const EventView& v, const EndpointRef* peer) const {
  if (!v.active || peer || cfg_.hold_linger_ns == 0) return false;
  if (ev.kind == Kind::Close && !ev.established) return false;  // never established: no passive side will come
  if (listeners_.count(ListenKey{ev.daddr, ev.dport, v.loop ? ev.netns : 0})) return false;
  return is_local_address(ev.daddr) || cfg_.networks.lookup(ev.daddr).has_value();
}

void Topology::hold(const events::ConnectionEvent& ev, const EndpointRef& local, const ConnKey& ck, Conn& conn,
                    uint64_t now) {
  if (!conn.held) {
    // held_order_ may hold stale keys; bounding it by max_connections keeps it as bounded as conns_.
    while (!held_order_.empty() && held_order_.size() >= std::max<size_t>(1, cfg_.max_connections)) {
      ConnKey k = held_order_.front();
      held_order_.pop_front();
      if (auto it = conns_.find(k); it != conns_.end() && it->second.held && !(k == ck))
        release_held(k, it->second, std::nullopt, now);
    }
    conn.held = std::make_unique<Held>();
    conn.held->until_ns = now + cfg_.hold_linger_ns;
    conn.same_host = true;
    held_order_.push_back(ck);
  }
  Held& h = *conn.held;
  h.local = local.owned();
  conn.last_ns = now;
  events::ConnectionEvent copy = ev;
  copy.role = Role::Active;  // replayed later, when learned listeners could make port inference disagree
  auto same = std::find_if(h.events.begin(), h.events.end(), [&](const auto& x) { return x.kind == ev.kind; });
  if (same != h.events.end())
    *same = copy;
  else if (h.events.size() < kMaxHeldEvents)
    h.events.push_back(copy);
}

void Topology::release_held(const ConnKey& ck, Conn& conn, std::optional<NodeKey> server, uint64_t now) {
  std::unique_ptr<Held> held = std::move(conn.held);
  if (!held) return;
  const EndpointRef local(held->local);
  EdgeKey key;
  key.client = service_node(local);
  key.port = ck.sport;
  if (server) {
    key.server = std::move(*server);
  } else {
    key.server = remote_server_node(ck.saddr, ck.sport, ck.netns);
    // Nothing on this node answered there: remember that, so later connections to it are not held again.
    ListenKey lk{ck.saddr, ck.sport, is_loopback(ck.saddr) ? ck.netns : 0};
    if (!listeners_.count(lk)) learn_listener(lk, key.server);
  }
  conn.edge = std::move(key);
  conn.edge_state = nullptr;
  for (const auto& ev : held->events) {
    EventView v = view_of(ev, nullptr);
    account(ev, local, nullptr, v, &conn, edge_for(conn.edge, now), now);
  }
}

void Topology::release_expired_holds(uint64_t now) {
  while (!held_order_.empty()) {
    auto it = conns_.find(held_order_.front());
    if (it != conns_.end() && it->second.held) {
      if (it->second.held->until_ns > now) break;
      ConnKey k = it->first;
      release_held(k, it->second, std::nullopt, now);
    }
    held_order_.pop_front();
  }
}

void Topology::ingest_locked(const events::ConnectionEvent& ev, const EndpointRef& local, const EndpointRef* peer,
                             uint64_t now) {
  ++counters_.events;
  if ((ev.saddr.family != Family::V4 && ev.saddr.family != Family::V6) || ev.daddr.family != ev.saddr.family) {
    ++counters_.dropped;
    return;
  }
  if (!held_order_.empty()) release_expired_holds(now);
  const EventView v = view_of(ev, peer);
  if (!v.active) learn_listener(ListenKey{ev.saddr, ev.sport, v.loop ? ev.netns : 0}, local);

  auto cit = conns_.find(v.ck);
  Conn* conn = cit == conns_.end() ? nullptr : &cit->second;
  if (conn && conn->held) {
    if (v.active && !peer) {
      hold(ev, local, v.ck, *conn, now);  // still nothing new about the server
      return;
    }
    // The passive side, or the identity of the peer, names the server now.
    release_held(v.ck, *conn, service_node(v.active ? *peer : local), now);
  }
  if (!conn && should_hold(ev, v, peer)) {
    conn = new_conn(v.ck, now);
    if (conn) {
      hold(ev, local, v.ck, *conn, now);
      return;
    }
  }

  EdgeState* e;
  if (conn) {
    // The first side's event fixed the edge; the other side only adds what it alone knows.
    if (conn->edge_state && conn->edge_gen == edge_removals_) {
      e = conn->edge_state;
    } else {
      e = edge_for(conn->edge, now);
      conn->edge_state = e;
      conn->edge_gen = edge_removals_;
    }
    if (((conn->sides_open | conn->sides_closed) & v.side) == 0) ++counters_.stitched;
    if (v.same_host) conn->same_host = true;  // e.g. the passive side, seen after the active one
  } else {
    EdgeKey key;
    if (v.active) {
      key.client = service_node(local);
      key.server = peer ? service_node(*peer) : remote_server_node(ev.daddr, ev.dport, ev.netns);
      key.port = ev.dport;
    } else {
      key.client = peer ? service_node(*peer) : remote_client_node(ev.daddr);
      key.server = service_node(local);
      key.port = ev.sport;
    }
    e = edge_for(key, now);
  }
  account(ev, local, peer, v, conn, e, now);
}

void Topology::account(const events::ConnectionEvent& ev, const EndpointRef& local, const EndpointRef* peer,
                       const EventView& v, Conn* conn, EdgeState* e, uint64_t now) {
  const bool active = v.active;
  const ConnKey& ck = v.ck;
  // Starts tracking this connection. Making room may release held connections onto edges and evict edges, so
  // `e` is looked up again if any edge went away meanwhile.
  auto track = [&]() -> Conn* {
    if (conns_.size() < cfg_.max_connections) return new_conn(ck, now);
    EdgeKey key = *e->key;
    uint64_t removals = edge_removals_;
    Conn* c = new_conn(ck, now);
    if (removals != edge_removals_) e = edge_for(key, now);
    return c;
  };
  e->last_ns = now;
  counters_.anomalies += e->detector.roll(now, cfg_.anomaly, e->flags);

  // The end's pod, workload and Go module as this event names them; compared first so the common case (the same
  // process again) writes nothing. Workload and Go module are one interned pair, kept once for every edge end.
  auto keep = [this](std::string& pod, EndIdentities::Id& identity, const EndpointRef& ep) {
    static const std::shared_ptr<const EndIdentity> none;
    if (pod != ep.pod) pod = ep.pod;
    identities_.assign(identity, ep.identity ? *ep.identity : none);
  };
  if (active) {
    keep(e->client_pod, e->client_identity, local);
    e->client_addr = ev.saddr;
    if (peer) keep(e->server_pod, e->server_identity, *peer);
    if (!e->server_addr_from_server) e->server_addr = ev.daddr;
  } else {
    keep(e->server_pod, e->server_identity, local);
    e->server_addr = ev.saddr;
    e->server_addr_from_server = true;
    if (peer) keep(e->client_pod, e->client_identity, *peer);
    e->client_addr = ev.daddr;
  }

  auto count_open = [&](Conn* c) {
    ++e->connections;
    ++e->active;
    e->detector.record_attempt(false);
    if (c) c->counted_open = true;
  };

  if (ev.kind == Kind::Open) {
    if (!conn) {
      conn = track();
      if (conn) {
        conn->edge = *e->key;
        conn->edge_state = e;
        conn->edge_gen = edge_removals_;
        conn->same_host = v.same_host;
      }
      count_open(conn);
    } else if (!conn->counted_open) {
      count_open(conn);
    }
    if (conn) {
      conn->sides_open |= v.side;
      conn->last_ns = now;
    }
    if (active && ev.connect_latency_ns) {
      if (!e->latency) e->latency = std::make_unique<LatencyHistogram>();
      uint64_t us = *ev.connect_latency_ns / 1000;
      e->latency->add(us);
      e->detector.record_latency(double(us));
    }
    if (active && nat_ && !v.loop) {
      ++counters_.nat_requests;
      if (!nat_->submit(NatRequest{FlowTuple{ev.saddr, ev.daddr, ev.sport, ev.dport, Protocol::Tcp}, *e->key}))
        ++counters_.nat_dropped;
    }
    return;
  }

  // Close.
  const bool first_close = !conn || !conn->counted_close;
  if (first_close) {
    if (!ev.established && is_connect_failure(ev.outcome)) {
      add_failure(*e, ev.outcome);
    } else {
      // A close whose open we never ingested: count it as opened unless the kernel says the open was reported
      // (then the open event was lost or its tracking evicted, both counted elsewhere).
      bool counted = conn ? conn->counted_open : ev.open_seen;
      if (!counted) {
        ++e->connections;
        e->detector.record_attempt(false);
      } else if (conn && e->active > 0) {
        --e->active;
      }
      ++e->closed;
      if (is_reset(ev.outcome)) ++e->resets;
      if (!conn && active && ev.connect_latency_ns && !ev.open_seen) {
        if (!e->latency) e->latency = std::make_unique<LatencyHistogram>();
        e->latency->add(*ev.connect_latency_ns / 1000);
      }
    }
    if (!conn && active && nat_ && !v.loop && !ev.open_seen && ev.established) {
      ++counters_.nat_requests;
      if (!nat_->submit(NatRequest{FlowTuple{ev.saddr, ev.daddr, ev.sport, ev.dport, Protocol::Tcp}, *e->key}))
        ++counters_.nat_dropped;
    }
  }

  // Bytes: each side reports the same stream; add only what exceeds what was already added.
  uint64_t c2s = active ? ev.bytes_sent : ev.bytes_received;
  uint64_t s2c = active ? ev.bytes_received : ev.bytes_sent;
  if (conn) {
    if (c2s > conn->c2s) {
      e->c2s += c2s - conn->c2s;
      conn->c2s = c2s;
    }
    if (s2c > conn->s2c) {
      e->s2c += s2c - conn->s2c;
      conn->s2c = s2c;
    }
  } else {
    e->c2s += c2s;
    e->s2c += s2c;
  }
  // Each socket retransmits its own segments, so both sides' counts add up.
  e->retransmits += ev.retransmits;
  if (ev.srtt_us) e->srtt_us = e->srtt_us == 0 ? ev.srtt_us : e->srtt_us + kSrttAlpha * (ev.srtt_us - e->srtt_us);

  if (!conn && v.same_host && ev.established) {
    // Wait a while for the other socket of this connection so it is not counted again.
    conn = track();
    if (conn) {
      conn->edge = *e->key;
      conn->edge_state = e;
      conn->edge_gen = edge_removals_;
      conn->same_host = true;
      conn->counted_open = true;
      conn->c2s = c2s;
      conn->s2c = s2c;
    }
  }
  if (!conn) return;
  conn->counted_close = true;
  conn->sides_closed |= v.side;
  conn->last_ns = now;
  bool other_pending = conn->same_host && conn->sides_closed != (kActiveSide | kPassiveSide);
  if (other_pending) {
    conn->linger_until_ns = now + cfg_.close_linger_ns;
  } else {
    conns_.erase(ck);
  }
}

void Topology::apply_nat(const std::vector<NatResult>& results) {
  std::lock_guard lk(mu_);
  for (const auto& r : results) {
    auto it = edges_.find(r.edge);
    if (it == edges_.end()) continue;
    auto& e = it->second;
    ++counters_.nat_translated;
    e.dialed = r.dialed.str();
    std::string actual = r.actual.str();
    auto pos = std::find(e.actual.begin(), e.actual.end(), actual);
    if (pos != e.actual.end()) continue;
    if (e.actual.size() >= cfg_.max_backends_per_edge) e.actual.erase(e.actual.begin());
    e.actual.push_back(std::move(actual));
  }
}

void Topology::tick(uint64_t now_ns) {
  NatWorker* w;
  {
    std::lock_guard lk(mu_);
    w = nat_;
  }
  if (w) apply_nat(w->take_results());
  std::unique_lock lk(mu_);
  const size_t edges_before = edges_.size(), conns_before = conns_.size();
  release_expired_holds(now_ns);
  for (auto& [_, e] : edges_) counters_.anomalies += e.detector.roll(now_ns, cfg_.anomaly, e.flags);
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->second.linger_until_ns && it->second.linger_until_ns <= now_ns)
      it = conns_.erase(it);
    else
      ++it;
  }
  expire_idle_edges(now_ns);
  const size_t freed = (edges_before - std::min(edges_before, edges_.size())) +
                       (conns_before - std::min(conns_before, conns_.size()));
  lk.unlock();
  // glibc keeps the freed entries for reuse, scattered through the heap; after a large expiry give the pages back.
  if (freed >= kTrimAfterEntries) malloc_trim(0);
}

EdgeSnapshot Topology::snapshot_edge(const EdgeState& e) const {
  static const EndIdentity kNone;
  EdgeSnapshot s;
  const EdgeKey& k = *e.key;
  const EndIdentity* ci = identities_.get(e.client_identity);
  const EndIdentity* si = identities_.get(e.server_identity);
  if (!ci) ci = &kNone;
  if (!si) si = &kNone;
  // A node keyed by its address (external, or a per-address network end) shows that address; others the last seen.
  s.client = EdgeEnd{k.client.kind, k.client.name, k.client.ns, e.client_pod,
                     k.client.address.empty() ? format_addr(e.client_addr) : k.client.address,
                     ci->workload, ci->go_module, k.client.kind == NodeKind::Network && !k.client.address.empty()};
  s.server = EdgeEnd{k.server.kind, k.server.name, k.server.ns, e.server_pod,
                     k.server.address.empty() ? format_addr(e.server_addr) : k.server.address,
                     si->workload, si->go_module, k.server.kind == NodeKind::Network && !k.server.address.empty()};
  s.port = k.port;
  s.protocol = k.protocol;
  s.connections = e.connections;
  s.closed = e.closed;
  for (size_t i = 0; i < e.failed.size(); ++i)
    if (e.failed[i]) s.failed[std::string(outcome_name(Outcome(i)))] = e.failed[i];
  s.resets = e.resets;
  s.active = e.active;
  s.bytes_sent = e.c2s;
  s.bytes_received = e.s2c;
  if (e.latency) {
    s.latency = e.latency->summary();
  }
  s.srtt_us = static_cast<uint32_t>(std::lround(e.srtt_us));
  s.retransmits = e.retransmits;
  s.first_seen_ns = e.first_ns;
  s.last_seen_ns = e.last_ns;
  s.dialed = e.dialed;
  s.actual = e.actual;
  s.anomalies = e.flags;
  return s;
}

TopologySnapshot Topology::snapshot(uint64_t now_ns, const SnapshotFilter& f) const {
  TopologySnapshot s;
  {
    std::lock_guard lk(mu_);
    s.taken_ns = now_ns;
    s.counters = counters_locked();
    s.edges.reserve(edges_.size());
    for (const auto& [_, e] : edges_) {
      EdgeSnapshot es = snapshot_edge(e);
      if (!matches(es, f)) continue;
      if (f.latency_buckets && e.latency) {
        es.latency_buckets = e.latency->export_buckets();
        es.latency_sum_us = e.latency->sum_us();
      }
      s.edges.push_back(std::move(es));
    }
  }
  canonicalize(s);  // sorting runs outside the lock
  return s;
}

TopologyCounters Topology::counters_locked() const {
  TopologyCounters c = counters_;
  c.identities_dropped = identities_.dropped();
  return c;
}

TopologyCounters Topology::counters() const {
  std::lock_guard lk(mu_);
  return counters_locked();
}

size_t Topology::edge_count() const {
  std::lock_guard lk(mu_);
  return edges_.size();
}

size_t Topology::node_count() const {
  std::lock_guard lk(mu_);
  return nodes_.size();
}

size_t Topology::connection_count() const {
  std::lock_guard lk(mu_);
  return conns_.size();
}

size_t Topology::identity_count() const {
  std::lock_guard lk(mu_);
  return identities_.size();
}

}  // namespace hostscope::topology
