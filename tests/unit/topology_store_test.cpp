// The live topology store: edge keys, same-host stitching, naming of remote peers, bounds, DNAT bookkeeping,
// anomaly flags (with an injected clock) and snapshot filters. No root, no kernel.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <map>
#include <random>

#include "agent/topology/topology.h"

namespace hostscope::topology {
namespace {

using events::ConnectionEvent;
using events::Kind;
using events::Outcome;
using events::Role;

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kT0 = 1'700'000'000ull * kSec;

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// One socket's view: local address/port first, like the tracer reports it.
ConnectionEvent ev(Kind kind, Role role, const char* local, uint16_t lport, const char* remote, uint16_t rport,
                   uint32_t netns = 4026531840u) {
  ConnectionEvent e;
  e.kind = kind;
  e.role = role;
  e.saddr = ip(local);
  e.daddr = ip(remote);
  e.sport = lport;
  e.dport = rport;
  e.netns = netns;
  e.open_seen = true;
  e.established = true;
  e.outcome = kind == Kind::Close ? Outcome::Closed : Outcome::None;
  return e;
}

ConnectionEvent closed(ConnectionEvent e, uint64_t sent, uint64_t received, Outcome o = Outcome::Closed) {
  e.kind = Kind::Close;
  e.outcome = o;
  e.bytes_sent = sent;
  e.bytes_received = received;
  return e;
}

Endpoint svc(std::string name, std::string ns = "", std::string pod = "") { return Endpoint{name, ns, pod, 42}; }

// The (workload, Go module) pair of a process as the process table builds it: one object per process.
std::shared_ptr<const EndIdentity> end_identity(std::string workload, std::string go_module) {
  return std::make_shared<const EndIdentity>(EndIdentity{std::move(workload), std::move(go_module)});
}

// A process in a pod of a workload, built from a Go module (docs/topology.md: edge ends keep the latest of both).
Endpoint pod_svc(std::string name, std::string pod, std::string workload, std::string go_module) {
  return Endpoint{name, "shop", std::move(pod), 42, end_identity(std::move(workload), std::move(go_module))};
}

// A connection from this node's client to a remote server port, seen once at its close (no open: not active).
ConnectionEvent remote_close(uint16_t port) {
  auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, "10.0.0.10", port);
  e.open_seen = false;
  return e;
}

const EdgeSnapshot* find_edge(const TopologySnapshot& s, std::string_view client, std::string_view server,
                              uint16_t port) {
  for (const auto& e : s.edges)
    if (e.client.service == client && e.server.service == server && e.port == port) return &e;
  return nullptr;
}

TEST(TopologyStore, RemoteServerEdgeCountsOneConnection) {
  Topology t({}, kT0);
  auto open = ev(Kind::Open, Role::Active, "10.0.0.5", 40001, "93.184.216.34", 443);
  open.connect_latency_ns = 2'000'000;
  t.ingest(open, svc("web"), std::nullopt, kT0);
  auto snap1 = t.snapshot(kT0);
  ASSERT_EQ(snap1.edges.size(), 1u);
  EXPECT_EQ(snap1.edges[0].active, 1u);
  t.ingest(closed(open, 1000, 5000), svc("web"), std::nullopt, kT0 + kSec);

  auto s = t.snapshot(kT0 + kSec);
  ASSERT_EQ(s.edges.size(), 1u);
  const auto& e = s.edges[0];
  EXPECT_EQ(e.client.service, "web");
  EXPECT_EQ(e.client.address, "10.0.0.5");
  EXPECT_EQ(e.server.kind, NodeKind::External);
  EXPECT_EQ(e.server.service, "external");
  EXPECT_EQ(e.server.address, "93.184.216.34");
  EXPECT_EQ(e.port, 443);
  EXPECT_EQ(e.connections, 1u);
  EXPECT_EQ(e.closed, 1u);
  EXPECT_EQ(e.active, 0u);
  EXPECT_EQ(e.bytes_sent, 1000u);
  EXPECT_EQ(e.bytes_received, 5000u);
  EXPECT_EQ(e.latency.samples, 1u);
  EXPECT_NEAR(double(e.latency.p50_us), 2000.0, 2000.0 * 0.13);
  EXPECT_EQ(e.first_seen_ns, kT0);
  EXPECT_EQ(e.last_seen_ns, kT0 + kSec);
  EXPECT_EQ(s.counters.events, 2u);
  ASSERT_EQ(s.nodes.size(), 2u);
  EXPECT_EQ(t.connection_count(), 0u);
  // The snapshot taken before is a copy: later events did not reach into it.
  EXPECT_EQ(snap1.edges[0].closed, 0u);
}

TEST(TopologyStore, PassiveSideKeysByListeningPortNotEphemeral) {
  Topology t({}, kT0);
  for (uint16_t port = 50000; port < 50100; ++port) {
    auto e = ev(Kind::Open, Role::Passive, "10.0.0.5", 8080, "203.0.113.7", port);
    t.ingest(e, svc("api"), std::nullopt, kT0);
    t.ingest(closed(e, 10, 20), svc("api"), std::nullopt, kT0);
  }
  auto s = t.snapshot(kT0);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].port, 8080);
  EXPECT_EQ(s.edges[0].server.service, "api");
  EXPECT_EQ(s.edges[0].client.address, "203.0.113.7");
  EXPECT_EQ(s.edges[0].connections, 100u);
  // Passive side: bytes received are what the client sent.
  EXPECT_EQ(s.edges[0].bytes_sent, 100u * 20);
  EXPECT_EQ(s.edges[0].bytes_received, 100u * 10);
}

TEST(TopologyStore, FailuresByReasonAndResets) {
  Topology t({}, kT0);
  auto base = ev(Kind::Close, Role::Active, "10.0.0.5", 40000, "10.0.0.9", 5432);
  auto refused = base;
  refused.established = false;
  refused.outcome = Outcome::Refused;
  auto timedout = refused;
  timedout.sport = 40001;
  timedout.outcome = Outcome::TimedOut;
  auto reset = base;
  reset.sport = 40002;
  reset.outcome = Outcome::ResetReceived;
  reset.open_seen = false;  // its open predates us: counted at close
  for (auto* e : {&refused, &refused, &timedout, &reset}) t.ingest(*e, svc("app"), std::nullopt, kT0);
  auto s = t.snapshot(kT0);
  ASSERT_EQ(s.edges.size(), 1u);
  const auto& e = s.edges[0];
  EXPECT_EQ(e.failed.at("refused"), 2u);
  EXPECT_EQ(e.failed.at("timed_out"), 1u);
  EXPECT_EQ(e.failed_total(), 3u);
  EXPECT_EQ(e.connections, 1u);
  EXPECT_EQ(e.closed, 1u);
  EXPECT_EQ(e.resets, 1u);
  EXPECT_EQ(e.active, 0u);
}

// The four events of one loopback connection, in every order that keeps each socket's open before its close.
TEST(TopologyStore, SameHostConnectionIsOneEdgeCountedOnceInAnyOrder) {
  auto a_open = ev(Kind::Open, Role::Active, "127.0.0.1", 45000, "127.0.0.1", 8080);
  a_open.connect_latency_ns = 50'000;
  auto p_open = ev(Kind::Open, Role::Passive, "127.0.0.1", 8080, "127.0.0.1", 45000);
  auto a_close = closed(a_open, 300, 700);
  a_close.retransmits = 1;
  a_close.srtt_us = 40;
  auto p_close = closed(p_open, 700, 300);
  p_close.retransmits = 2;
  p_close.srtt_us = 40;
  const Endpoint client = svc("frontend", "shop", "frontend-1"), server = svc("cart", "shop", "cart-7");

  std::vector<int> order = {0, 1, 2, 3};  // 0 a_open, 1 a_close, 2 p_open, 3 p_close
  int orders = 0;
  do {
    auto pos = [&](int x) { return std::find(order.begin(), order.end(), x) - order.begin(); };
    if (pos(0) > pos(1) || pos(2) > pos(3)) continue;
    ++orders;
    for (bool peer_known : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "order " << order[0] << order[1] << order[2] << order[3]
                                        << " peer_known=" << peer_known);
      Topology t({}, kT0);
      uint64_t now = kT0;
      // Without a peer identity the store still stitches by tuple, but only the first event's view names the
      // edge; keep the first event the active one for that case (the identity resolver normally gives the peer).
      if (!peer_known && order[0] != 0) continue;
      for (int x : order) {
        now += 1000;
        switch (x) {
          case 0: t.ingest(a_open, client, peer_known ? std::optional(server) : std::nullopt, now); break;
          case 1: t.ingest(a_close, client, peer_known ? std::optional(server) : std::nullopt, now); break;
          case 2: t.ingest(p_open, server, peer_known ? std::optional(client) : std::nullopt, now); break;
          case 3: t.ingest(p_close, server, peer_known ? std::optional(client) : std::nullopt, now); break;
        }
      }
      auto s = t.snapshot(now);
      ASSERT_EQ(s.edges.size(), 1u);
      const auto& e = s.edges[0];
      EXPECT_EQ(e.client.service, "frontend");
      EXPECT_EQ(e.client.ns, "shop");
      EXPECT_EQ(e.client.pod, "frontend-1");
      // Without the peer's identity the active side waits for the passive one, which names the server.
      EXPECT_EQ(e.server.service, "cart");
      EXPECT_EQ(e.server.pod, "cart-7");
      EXPECT_EQ(e.port, 8080);
      EXPECT_EQ(e.connections, 1u);
      EXPECT_EQ(e.closed, 1u);
      EXPECT_EQ(e.active, 0u);
      EXPECT_EQ(e.bytes_sent, 300u);
      EXPECT_EQ(e.bytes_received, 700u);
      EXPECT_EQ(e.retransmits, 3u);
      EXPECT_EQ(e.latency.samples, 1u);
      EXPECT_EQ(s.counters.stitched, 1u);
      EXPECT_EQ(t.connection_count(), 0u) << "both sides closed: nothing left to wait for";
    }
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(orders, 6);
}

// Workload and Go module are attributes of an edge end like its pod: the latest seen, not part of the key, so a new
// rollout (another pod, another module version) stays the same edge. Both sides of a same-host connection fill in
// their own end and, with the peer's identity, the other one.
TEST(TopologyStore, EdgeEndsKeepTheLatestWorkloadAndGoModule) {
  Topology t({}, kT0);
  auto client_v1 = pod_svc("frontend", "frontend-7c9d8-abcde", "frontend", "github.com/acme/frontend@v1.0.0");
  auto client_v2 = pod_svc("frontend", "frontend-5f6b7-fghij", "frontend", "github.com/acme/frontend@v1.1.0");
  auto server = pod_svc("cart", "cart-0", "cart", "github.com/acme/cart@v2.3.4");
  auto a1 = ev(Kind::Open, Role::Active, "10.0.0.5", 41000, "10.0.0.5", 8080);
  auto p1 = ev(Kind::Open, Role::Passive, "10.0.0.5", 8080, "10.0.0.5", 41000);
  t.set_local_addresses({ip("10.0.0.5")});
  t.ingest(a1, client_v1, server, kT0 + 1);
  t.ingest(p1, server, client_v1, kT0 + 2);
  auto s = t.snapshot(kT0 + 2);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].client.workload, "frontend");
  EXPECT_EQ(s.edges[0].client.go_module, "github.com/acme/frontend@v1.0.0");
  EXPECT_EQ(s.edges[0].server.workload, "cart");
  EXPECT_EQ(s.edges[0].server.go_module, "github.com/acme/cart@v2.3.4");

  // The next connection comes from the new version; the server side alone reports it this time.
  auto p2 = ev(Kind::Open, Role::Passive, "10.0.0.5", 8080, "10.0.0.5", 41001);
  t.ingest(p2, server, client_v2, kT0 + 3);
  s = t.snapshot(kT0 + 3);
  ASSERT_EQ(s.edges.size(), 1u) << "a new module version is the same edge";
  EXPECT_EQ(s.edges[0].connections, 2u);
  EXPECT_EQ(s.edges[0].client.pod, "frontend-5f6b7-fghij");
  EXPECT_EQ(s.edges[0].client.go_module, "github.com/acme/frontend@v1.1.0");
  EXPECT_EQ(s.edges[0].server.go_module, "github.com/acme/cart@v2.3.4");

  // A process that is not Go (or not in a pod) clears them: the end shows what was seen last, not a mix.
  auto a3 = ev(Kind::Open, Role::Active, "10.0.0.5", 41002, "10.0.0.5", 8080);
  auto plain_client = pod_svc("frontend", "", "", "");
  t.ingest(a3, plain_client, server, kT0 + 4);
  s = t.snapshot(kT0 + 4);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].client.workload, "");
  EXPECT_EQ(s.edges[0].client.go_module, "");
  EXPECT_EQ(s.edges[0].server.workload, "cart");
}

// Edge ends keep no strings of their own for workload and Go module: each distinct pair is interned once in the store
// (a 2-byte id per edge end), shared by every edge end that shows it, whichever process object it came from, and let
// go when the last edge showing it goes. The snapshot shows the strings.
TEST(TopologyStore, EdgesWithTheSameWorkloadAndGoModuleShareOneInternedPair) {
  TopologyConfig cfg;
  cfg.edge_idle_timeout_ns = 60 * kSec;
  Topology t(cfg, kT0);
  // Two replicas of one Deployment: two processes, two identity objects, one pair.
  auto replica_a = pod_svc("frontend", "frontend-7c9d8-abcde", "frontend", "github.com/acme/frontend@v1.0.0");
  auto replica_b = pod_svc("frontend", "frontend-7c9d8-fghij", "frontend", "github.com/acme/frontend@v1.0.0");
  ASSERT_NE(replica_a.identity, replica_b.identity);
  t.ingest(remote_close(443), replica_a, std::nullopt, kT0 + 1);
  t.ingest(remote_close(5432), replica_b, std::nullopt, kT0 + 2);
  t.ingest(remote_close(5432), replica_a, std::nullopt, kT0 + 3);  // the same pair again: no change
  EXPECT_EQ(t.edge_count(), 2u);
  EXPECT_EQ(t.identity_count(), 1u) << "one entry for both edges' client ends";
  auto s = t.snapshot(kT0 + 3);
  for (uint16_t port : {443, 5432}) {
    const auto* e = find_edge(s, "frontend", "external", port);
    ASSERT_NE(e, nullptr) << port;
    EXPECT_EQ(e->client.workload, "frontend");
    EXPECT_EQ(e->client.go_module, "github.com/acme/frontend@v1.0.0");
    EXPECT_EQ(e->server.workload, "") << "an external server has none";
    EXPECT_EQ(e->server.go_module, "");
  }
  EXPECT_EQ(s.counters.identities_dropped, 0u);

  // One edge moves to the next version: two pairs in use; back again: one.
  auto v2 = pod_svc("frontend", "frontend-5f6b7-klmno", "frontend", "github.com/acme/frontend@v1.1.0");
  t.ingest(remote_close(443), v2, std::nullopt, kT0 + 4);
  EXPECT_EQ(t.identity_count(), 2u);
  EXPECT_EQ(find_edge(t.snapshot(kT0 + 4), "frontend", "external", 443)->client.go_module,
            "github.com/acme/frontend@v1.1.0");
  EXPECT_EQ(find_edge(t.snapshot(kT0 + 4), "frontend", "external", 5432)->client.go_module,
            "github.com/acme/frontend@v1.0.0");
  t.ingest(remote_close(5432), v2, std::nullopt, kT0 + 5);
  EXPECT_EQ(t.identity_count(), 1u) << "v1.0.0's last edge end moved on: its entry is gone";

  // Expired edges let their pairs go.
  t.tick(kT0 + 5 + 61 * kSec);
  EXPECT_EQ(t.edge_count(), 0u);
  EXPECT_EQ(t.identity_count(), 0u);
}

// The interning table is bounded (max_identities): an end with a new pair while it is full shows none, counted as
// identities_dropped; a place freed by the last end of a pair is taken by the next new pair.
TEST(TopologyStore, InternedPairsAreBoundedAndDropsCounted) {
  TopologyConfig cfg;
  cfg.max_identities = 2;
  Topology t(cfg, kT0);
  t.ingest(remote_close(1), pod_svc("a", "a-0", "a", "example.com/a@v1"), std::nullopt, kT0 + 1);
  t.ingest(remote_close(2), pod_svc("b", "b-0", "b", ""), std::nullopt, kT0 + 2);
  t.ingest(remote_close(3), pod_svc("c", "c-0", "", "example.com/c@v1"), std::nullopt, kT0 + 3);
  EXPECT_EQ(t.identity_count(), 2u);
  auto s = t.snapshot(kT0 + 3);
  EXPECT_EQ(s.counters.identities_dropped, 1u);
  EXPECT_EQ(t.counters().identities_dropped, 1u);
  const auto* c = find_edge(s, "c", "external", 3);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->client.pod, "c-0");
  EXPECT_EQ(c->client.go_module, "") << "not kept: the table is full";
  EXPECT_EQ(find_edge(s, "a", "external", 1)->client.go_module, "example.com/a@v1");
  EXPECT_EQ(find_edge(s, "b", "external", 2)->client.workload, "b");

  // b's only end moves to another pair: its place goes to that pair at once.
  t.ingest(remote_close(2), pod_svc("b", "b-1", "b", "example.com/b@v2"), std::nullopt, kT0 + 4);
  EXPECT_EQ(t.identity_count(), 2u);
  EXPECT_EQ(t.counters().identities_dropped, 1u);
  EXPECT_EQ(find_edge(t.snapshot(kT0 + 4), "b", "external", 2)->client.go_module, "example.com/b@v2");
  // A process with neither frees a place; c's next event takes it.
  t.ingest(remote_close(1), Endpoint{"a", "shop", "a-1", 42}, std::nullopt, kT0 + 5);
  EXPECT_EQ(t.identity_count(), 1u);
  t.ingest(remote_close(3), pod_svc("c", "c-0", "", "example.com/c@v1"), std::nullopt, kT0 + 6);
  EXPECT_EQ(t.identity_count(), 2u);
  EXPECT_EQ(find_edge(t.snapshot(kT0 + 6), "c", "external", 3)->client.go_module, "example.com/c@v1");
}

// A fresh agent: the client's open arrives before the server's accept, and nothing names 127.0.0.1:8080 yet.
// The connection waits for its passive side instead of being fixed as external:127.0.0.1.
TEST(TopologyStore, ActiveOpenBeforePassiveOpenToALocalServerNamesTheServer) {
  auto a_open = ev(Kind::Open, Role::Active, "127.0.0.1", 45000, "127.0.0.1", 8080);
  a_open.connect_latency_ns = 50'000;
  auto p_open = ev(Kind::Open, Role::Passive, "127.0.0.1", 8080, "127.0.0.1", 45000);
  auto a_close = closed(a_open, 300, 700);
  auto p_close = closed(p_open, 700, 300);
  const Endpoint client = svc("web", "", "web-1"), server = svc("cart", "", "cart-2");
  for (bool active_closes_first : {true, false}) {
    SCOPED_TRACE(active_closes_first ? "active open, passive open, active close, passive close"
                                     : "active open, passive open, passive close, active close");
    Topology t({}, kT0);
    t.ingest(a_open, client, std::nullopt, kT0 + 1);
    EXPECT_EQ(t.snapshot(kT0 + 1).edges.size(), 0u) << "held until the server side names it";
    EXPECT_EQ(t.connection_count(), 1u);
    t.ingest(p_open, server, std::nullopt, kT0 + 2);
    auto mid = t.snapshot(kT0 + 2);
    ASSERT_EQ(mid.edges.size(), 1u);
    EXPECT_EQ(mid.edges[0].client.service, "web");
    EXPECT_EQ(mid.edges[0].server.service, "cart");
    EXPECT_EQ(mid.edges[0].active, 1u);
    EXPECT_EQ(mid.edges[0].connections, 1u);
    if (active_closes_first) {
      t.ingest(a_close, client, std::nullopt, kT0 + 3);
      t.ingest(p_close, server, client, kT0 + 4);
    } else {
      t.ingest(p_close, server, client, kT0 + 3);
      t.ingest(a_close, client, server, kT0 + 4);
    }
    auto s = t.snapshot(kT0 + 4);
    ASSERT_EQ(s.edges.size(), 1u);
    const auto& e = s.edges[0];
    EXPECT_EQ(e.client.service, "web");
    EXPECT_EQ(e.client.pod, "web-1");
    EXPECT_EQ(e.server.kind, NodeKind::Service);
    EXPECT_EQ(e.server.service, "cart");
    EXPECT_EQ(e.server.pod, "cart-2");
    EXPECT_EQ(e.server.address, "127.0.0.1");
    EXPECT_EQ(e.port, 8080);
    EXPECT_EQ(e.connections, 1u);
    EXPECT_EQ(e.closed, 1u);
    EXPECT_EQ(e.active, 0u);
    EXPECT_EQ(e.bytes_sent, 300u);
    EXPECT_EQ(e.bytes_received, 700u);
    EXPECT_EQ(e.latency.samples, 1u);
    EXPECT_EQ(s.counters.events, 4u);
    EXPECT_EQ(s.counters.stitched, 1u);
    EXPECT_EQ(t.connection_count(), 0u);
    // The listener is learned now: the next connection is attributed at once, without waiting.
    auto next = ev(Kind::Open, Role::Active, "127.0.0.1", 45001, "127.0.0.1", 8080);
    t.ingest(next, client, std::nullopt, kT0 + 5);
    auto after = t.snapshot(kT0 + 5);
    ASSERT_EQ(after.edges.size(), 1u);
    EXPECT_EQ(after.edges[0].connections, 2u);
    EXPECT_EQ(after.edges[0].active, 1u);
  }
}

// The server's accept comes after the client already closed; then the whole connection is replayed once.
TEST(TopologyStore, HeldConnectionClosedBeforeAcceptIsCountedOnce) {
  Topology t({}, kT0);
  t.set_local_addresses({ip("192.168.7.10")});
  auto a_open = ev(Kind::Open, Role::Active, "192.168.7.10", 50000, "192.168.7.10", 9000);
  auto p_open = ev(Kind::Open, Role::Passive, "192.168.7.10", 9000, "192.168.7.10", 50000);
  t.ingest(a_open, svc("scraper"), std::nullopt, kT0);
  t.ingest(closed(a_open, 10, 4000), svc("scraper"), std::nullopt, kT0 + 1);
  EXPECT_EQ(t.edge_count(), 0u);
  t.ingest(p_open, svc("metrics"), svc("scraper"), kT0 + 2);
  t.ingest(closed(p_open, 4000, 10), svc("metrics"), svc("scraper"), kT0 + 3);
  auto s = t.snapshot(kT0 + 3);
  ASSERT_EQ(s.edges.size(), 1u);
  const auto* e = find_edge(s, "scraper", "metrics", 9000);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->connections, 1u);
  EXPECT_EQ(e->closed, 1u);
  EXPECT_EQ(e->active, 0u);
  EXPECT_EQ(e->bytes_sent, 10u);
  EXPECT_EQ(e->bytes_received, 4000u);
  EXPECT_EQ(t.connection_count(), 0u);
}

// A server in another network namespace of this node, in a network named by the config: same as loopback.
// The peer identity given on the active side's close names the server as well.
TEST(TopologyStore, HeldConnectionToANamedNetworkIsNamedByThePeerOrThePassiveSide) {
  TopologyConfig cfg;
  cfg.networks = *NetworkMap::build({{"pods", {"10.213.0.0/16"}}});
  Topology t(cfg, kT0);
  t.set_local_addresses({ip("10.213.9.1")});
  auto a1 = ev(Kind::Open, Role::Active, "10.213.9.1", 40000, "10.213.9.2", 7000, 1);
  auto p1 = ev(Kind::Open, Role::Passive, "10.213.9.2", 7000, "10.213.9.1", 40000, 2);
  t.ingest(a1, svc("web"), std::nullopt, kT0);
  t.ingest(p1, svc("db"), svc("web"), kT0 + 1);
  t.ingest(closed(a1, 5, 6), svc("web"), svc("db"), kT0 + 2);
  t.ingest(closed(p1, 6, 5), svc("db"), svc("web"), kT0 + 3);
  auto a2 = ev(Kind::Open, Role::Active, "10.213.9.1", 40001, "10.213.9.2", 7001, 1);
  t.ingest(a2, svc("web"), std::nullopt, kT0 + 4);
  EXPECT_EQ(t.snapshot(kT0 + 4).edges.size(), 1u) << "7001 has no learned listener yet: held";
  t.ingest(closed(a2, 1, 2), svc("web"), svc("cache"), kT0 + 5);  // the peer index found the server socket
  auto s = t.snapshot(kT0 + 5);
  ASSERT_EQ(s.edges.size(), 2u);
  const auto* db = find_edge(s, "web", "db", 7000);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->connections, 1u);
  EXPECT_EQ(db->bytes_sent, 5u);
  EXPECT_EQ(db->bytes_received, 6u);
  const auto* cache = find_edge(s, "web", "cache", 7001);
  ASSERT_NE(cache, nullptr);
  EXPECT_EQ(cache->connections, 1u);
  EXPECT_EQ(cache->closed, 1u);
  EXPECT_EQ(cache->bytes_received, 2u);
}

// Once topo-db's listener in the pod namespace is known, later connections to it are attributed at once; they
// are still same-host connections, so the passive side's close, arriving after the active one, is not counted
// again (in either arrival order, with or without the peer identity).
TEST(TopologyStore, ConnectionToALocalListenerInAnotherNamespaceIsCountedOnce) {
  for (bool peer_on_passive : {false, true}) {
    SCOPED_TRACE(peer_on_passive ? "peer identity on the passive side" : "no peer identity");
    Topology t({}, kT0);
    const std::optional<Endpoint> web = peer_on_passive ? std::optional(svc("web")) : std::nullopt;
    for (uint16_t i = 0; i < 3; ++i) {
      auto a = ev(Kind::Open, Role::Active, "10.213.9.1", uint16_t(40000 + i), "10.213.9.2", 7000, 1);
      auto p = ev(Kind::Open, Role::Passive, "10.213.9.2", 7000, "10.213.9.1", uint16_t(40000 + i), 2);
      uint64_t now = kT0 + i * 10;
      if (i == 0) {  // the first one teaches the listener
        t.ingest(p, svc("db"), web, now);
        t.ingest(a, svc("web"), std::nullopt, now + 1);
      } else {
        t.ingest(a, svc("web"), std::nullopt, now);
        t.ingest(p, svc("db"), web, now + 1);
      }
      t.ingest(closed(a, 100, 200), svc("web"), std::nullopt, now + 2);
      t.ingest(closed(p, 200, 100), svc("db"), web, now + 3);
    }
    auto s = t.snapshot(kT0 + 100);
    const auto* e = find_edge(s, peer_on_passive ? "web" : "external", "db", 7000);
    ASSERT_NE(e, nullptr) << "first connection named by its first (passive) event";
    const auto* later = peer_on_passive ? e : find_edge(s, "web", "db", 7000);
    ASSERT_NE(later, nullptr);
    uint64_t conns = 0, closes = 0, sent = 0;
    for (auto& x : s.edges) {
      conns += x.connections;
      closes += x.closed;
      sent += x.bytes_sent;
    }
    EXPECT_EQ(conns, 3u);
    EXPECT_EQ(closes, 3u);
    EXPECT_EQ(sent, 300u);
    EXPECT_EQ(later->connections, peer_on_passive ? 3u : 2u);
    EXPECT_EQ(t.connection_count(), 0u);
  }
}

// Nothing on this node answers (the passive event was lost, or the address is DNATed away): after the hold
// linger the connection is attributed from what is known, counted once, and later ones are not held again.
// A connect that never established is never held.
TEST(TopologyStore, UnansweredHoldIsAttributedAfterTheLingerAndNotHeldAgain) {
  TopologyConfig cfg;
  cfg.hold_linger_ns = 2 * kSec;
  Topology t(cfg, kT0);
  auto a = ev(Kind::Open, Role::Active, "127.0.0.1", 41000, "127.0.0.1", 5555);
  t.ingest(a, svc("web"), std::nullopt, kT0);
  t.ingest(closed(a, 7, 8), svc("web"), std::nullopt, kT0 + 1);
  t.tick(kT0 + kSec);
  EXPECT_EQ(t.edge_count(), 0u);
  t.tick(kT0 + 3 * kSec);
  auto s = t.snapshot(kT0 + 3 * kSec);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].server.kind, NodeKind::External);
  EXPECT_EQ(s.edges[0].server.address, "127.0.0.1");
  EXPECT_EQ(s.edges[0].connections, 1u);
  EXPECT_EQ(s.edges[0].closed, 1u);
  EXPECT_EQ(s.edges[0].bytes_sent, 7u);
  auto b = ev(Kind::Open, Role::Active, "127.0.0.1", 41001, "127.0.0.1", 5555);
  t.ingest(b, svc("web"), std::nullopt, kT0 + 4 * kSec);
  EXPECT_EQ(t.snapshot(kT0 + 4 * kSec).edges[0].active, 1u) << "not held a second time";

  auto refused = ev(Kind::Close, Role::Active, "127.0.0.1", 41002, "127.0.0.1", 6666);
  refused.established = false;
  refused.open_seen = false;
  refused.outcome = Outcome::Refused;
  t.ingest(refused, svc("web"), std::nullopt, kT0 + 5 * kSec);
  auto r = t.snapshot(kT0 + 5 * kSec);
  ASSERT_EQ(r.edges.size(), 2u);
  EXPECT_EQ(r.edges[1].port, 6666);
  EXPECT_EQ(r.edges[1].failed.at("refused"), 1u);
}

// Held connections count against max_connections; making room attributes them instead of dropping counts.
TEST(TopologyStore, HeldConnectionsAreBoundedByTheConnectionLimit) {
  TopologyConfig cfg;
  cfg.max_connections = 64;
  Topology t(cfg, kT0);
  for (uint16_t p = 0; p < 1000; ++p)
    t.ingest(ev(Kind::Open, Role::Active, "127.0.0.1", uint16_t(40000 + p), "127.0.0.1", uint16_t(1000 + p)),
             svc("c"), {}, kT0 + p);
  EXPECT_LE(t.connection_count(), 64u);
  auto s = t.snapshot(kT0 + 1000);
  uint64_t total = 0;
  for (auto& e : s.edges) total += e.connections;
  EXPECT_EQ(total + t.connection_count(), 1000u) << "every connection is either counted or still held";
}

TEST(TopologyStore, SameHostOnlyOneSideSeenCountsOnceAndForgetsAfterLinger) {
  TopologyConfig cfg;
  cfg.close_linger_ns = 5 * kSec;
  Topology t(cfg, kT0);
  auto p_open = ev(Kind::Open, Role::Passive, "10.1.0.4", 6379, "10.1.0.9", 51000);
  t.ingest(p_open, svc("redis"), svc("worker"), kT0);
  t.ingest(closed(p_open, 10, 20), svc("redis"), svc("worker"), kT0 + 1);
  EXPECT_EQ(t.connection_count(), 1u) << "waits for the other socket";
  t.tick(kT0 + 10 * kSec);
  EXPECT_EQ(t.connection_count(), 0u);
  auto s = t.snapshot(kT0 + 10 * kSec);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].client.service, "worker");
  EXPECT_EQ(s.edges[0].server.service, "redis");
  EXPECT_EQ(s.edges[0].connections, 1u);
  EXPECT_EQ(s.edges[0].closed, 1u);
  EXPECT_EQ(s.edges[0].bytes_sent, 20u);
}

TEST(TopologyStore, LoopbackInDifferentNamespacesAreDifferentConnections) {
  Topology t({}, kT0);
  for (uint32_t ns : {1u, 2u}) {
    auto a = ev(Kind::Open, Role::Active, "127.0.0.1", 45000, "127.0.0.1", 80, ns);
    t.ingest(a, svc("c"), svc("s"), kT0);
  }
  auto s = t.snapshot(kT0);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].connections, 2u);
  EXPECT_EQ(s.edges[0].active, 2u);
}

TEST(TopologyStore, ListenerLearnedFromPassiveSideNamesLaterClients) {
  Topology t({}, kT0);
  auto p = ev(Kind::Open, Role::Passive, "192.168.1.10", 9000, "192.168.1.20", 40000);
  t.ingest(p, svc("metrics"), std::nullopt, kT0);
  // Another local client, no peer identity: the learned listener names the server.
  auto a = ev(Kind::Open, Role::Active, "192.168.1.10", 41000, "192.168.1.10", 9000);
  t.ingest(a, svc("scraper"), std::nullopt, kT0);
  auto s = t.snapshot(kT0);
  EXPECT_NE(find_edge(s, "scraper", "metrics", 9000), nullptr);
}

// A server process dies: the connections still in its accept queue close with no owner. Those ownerless passive
// closes must not rename its learned listener to "unknown", or the refused connects that follow land on a new
// edge (with no baseline, so the failure burst is never flagged) instead of the edge that was steady.
TEST(TopologyStore, OwnerlessPassiveCloseKeepsTheListenersName) {
  Topology t({}, kT0);
  auto p = ev(Kind::Open, Role::Passive, "10.231.7.2", 8088, "10.231.7.1", 40000);
  t.ingest(p, svc("api"), std::nullopt, kT0);
  auto orphan = closed(ev(Kind::Close, Role::Passive, "10.231.7.2", 8088, "10.231.7.1", 40001), 0, 0,
                       Outcome::ResetSent);
  t.ingest(orphan, Endpoint{}, std::nullopt, kT0);  // no owner: nobody accepted it
  auto refused = ev(Kind::Close, Role::Active, "10.231.7.1", 40002, "10.231.7.2", 8088);
  refused.established = false;
  refused.outcome = Outcome::Refused;
  t.ingest(refused, svc("web"), std::nullopt, kT0);
  auto s = t.snapshot(kT0);
  auto* e = find_edge(s, "web", "api", 8088);
  ASSERT_NE(e, nullptr) << "the refused connect is on web -> api";
  EXPECT_EQ(e->failed.at("refused"), 1u);
  EXPECT_EQ(find_edge(s, "web", "unknown", 8088), nullptr);
}

TEST(TopologyStore, UnknownRoleIsInferredFromPorts) {
  Topology t({}, kT0);
  auto e = ev(Kind::Close, Role::Unknown, "10.0.0.5", 22, "198.51.100.1", 53000);
  e.open_seen = false;
  t.ingest(e, svc("sshd"), std::nullopt, kT0);
  auto s = t.snapshot(kT0);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].server.service, "sshd");
  EXPECT_EQ(s.edges[0].port, 22);
}

TEST(TopologyStore, NamedNetworksLongestPrefixWinsV4AndV6) {
  TopologyConfig cfg;
  auto nets = NetworkMap::build({{"cluster-pods", {"10.244.0.0/16", "fd00:10::/32"}},
                                 {"monitoring", {"10.244.7.0/24"}},
                                 {"corp", {"10.0.0.0/8"}}});
  ASSERT_TRUE(nets) << nets.error().str();
  cfg.networks = *nets;
  cfg.hold_linger_ns = 0;  // naming only: waiting for a local passive side is tested on its own below
  Topology t(cfg, kT0);
  struct Case {
    const char* local;
    const char* remote;
    const char* want;
  } cases[] = {{"10.1.0.2", "10.244.3.4", "cluster-pods"},
               {"10.1.0.2", "10.244.7.9", "monitoring"},
               {"10.1.0.2", "10.9.9.9", "corp"},
               {"fd00:1::2", "fd00:10::5", "cluster-pods"}};
  for (auto& c : cases) t.ingest(ev(Kind::Open, Role::Active, c.local, 40000, c.remote, 80), svc("x"), {}, kT0);
  auto s = t.snapshot(kT0);
  ASSERT_EQ(s.edges.size(), 3u);
  for (auto& c : cases) {
    const auto* e = find_edge(s, "x", c.want, 80);
    ASSERT_NE(e, nullptr) << c.remote;
    EXPECT_EQ(e->server.kind, NodeKind::Network);
  }
  EXPECT_EQ(find_edge(s, "x", "cluster-pods", 80)->connections, 2u);
}

// topology.network_ends: with `address`, an end inside a named network is its own node per address, still of kind
// Network and named after the network, and its address is the one the edge used (not the most recently seen).
TopologySnapshot two_addresses_of_one_network(NetworkEnds mode) {
  TopologyConfig cfg;
  cfg.networks = *NetworkMap::build({{"cluster-pods", {"10.244.0.0/16"}}});
  cfg.network_ends = mode;
  cfg.hold_linger_ns = 0;  // naming only: held connections are tested on their own
  Topology t(cfg, kT0);
  auto conn = [&](const ConnectionEvent& open, uint64_t sent, uint64_t received, uint64_t at) {
    t.ingest(open, svc("web"), {}, at);
    t.ingest(closed(open, sent, received), svc("web"), {}, at);
  };
  conn(ev(Kind::Open, Role::Active, "10.1.0.2", 40000, "10.244.1.5", 80), 10, 20, kT0);
  conn(ev(Kind::Open, Role::Active, "10.1.0.2", 40001, "10.244.2.6", 80), 30, 40, kT0 + 1);
  conn(ev(Kind::Open, Role::Passive, "10.1.0.2", 8080, "10.244.3.7", 50000), 5, 6, kT0 + 2);
  return t.snapshot(kT0 + 2);
}

TEST(TopologyStore, NetworkEndsNetworkMergesAddressesOfANetwork) {
  auto s = two_addresses_of_one_network(NetworkEnds::Network);
  ASSERT_EQ(s.edges.size(), 2u);
  const auto* e = find_edge(s, "web", "cluster-pods", 80);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->connections, 2u);
  EXPECT_EQ(e->bytes_sent, 40u);
  EXPECT_EQ(e->server.address, "10.244.2.6") << "the most recently seen";
  EXPECT_FALSE(e->server.exact_address);
  EXPECT_EQ(node_id(e->server), "network:cluster-pods");
  EXPECT_EQ(s.nodes.size(), 2u);  // web, cluster-pods
}

TEST(TopologyStore, NetworkEndsAddressKeepsOneEdgePerAddress) {
  auto s = two_addresses_of_one_network(NetworkEnds::Address);
  ASSERT_EQ(s.edges.size(), 3u);
  std::map<std::string, const EdgeSnapshot*> to_server;
  for (const auto& e : s.edges) {
    const EdgeEnd& remote = e.server.service == "web" ? e.client : e.server;
    EXPECT_EQ(remote.kind, NodeKind::Network);
    EXPECT_EQ(remote.service, "cluster-pods");
    EXPECT_TRUE(remote.exact_address);
    EXPECT_EQ(node_id(remote), "network:cluster-pods@" + remote.address);
    if (e.client.service == "web") to_server[e.server.address] = &e;
  }
  ASSERT_EQ(to_server.size(), 2u);
  ASSERT_TRUE(to_server.count("10.244.1.5"));
  ASSERT_TRUE(to_server.count("10.244.2.6"));
  EXPECT_EQ(to_server["10.244.1.5"]->connections, 1u);
  EXPECT_EQ(to_server["10.244.1.5"]->bytes_sent, 10u);
  EXPECT_EQ(to_server["10.244.2.6"]->bytes_sent, 30u);
  const auto* in = find_edge(s, "cluster-pods", "web", 8080);
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->client.address, "10.244.3.7");
  EXPECT_FALSE(in->server.exact_address) << "a service end's address is the most recently seen";
  EXPECT_EQ(s.nodes.size(), 4u);  // web and three addresses
}

// Held connections (docs/topology.md, 2) behave the same: the passive side names the server; an unanswered hold is
// attributed after hold_linger to the network end of the address it dialled.
TEST(TopologyStore, NetworkEndsAddressHeldConnectionsAreNamedAsBefore) {
  TopologyConfig cfg;
  cfg.networks = *NetworkMap::build({{"pods", {"10.213.0.0/16"}}});
  cfg.network_ends = NetworkEnds::Address;
  Topology t(cfg, kT0);
  t.set_local_addresses({ip("10.213.9.1")});
  auto a1 = ev(Kind::Open, Role::Active, "10.213.9.1", 40000, "10.213.9.2", 7000, 1);
  auto p1 = ev(Kind::Open, Role::Passive, "10.213.9.2", 7000, "10.213.9.1", 40000, 2);
  t.ingest(a1, svc("web"), std::nullopt, kT0);
  EXPECT_EQ(t.snapshot(kT0).edges.size(), 0u) << "held";
  t.ingest(p1, svc("db"), std::nullopt, kT0 + 1);
  t.ingest(closed(a1, 5, 6), svc("web"), std::nullopt, kT0 + 2);
  t.ingest(closed(p1, 6, 5), svc("db"), std::nullopt, kT0 + 3);
  auto a2 = ev(Kind::Open, Role::Active, "10.213.9.1", 40001, "10.213.7.7", 7001, 1);
  t.ingest(a2, svc("web"), std::nullopt, kT0 + 4);
  t.tick(kT0 + 4 + cfg.hold_linger_ns);
  auto s = t.snapshot(kT0 + 4 + cfg.hold_linger_ns);
  ASSERT_EQ(s.edges.size(), 2u);
  const auto* db = find_edge(s, "web", "db", 7000);
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->connections, 1u);
  EXPECT_EQ(db->closed, 1u);
  EXPECT_EQ(db->bytes_sent, 5u);
  const auto* unanswered = find_edge(s, "web", "pods", 7001);
  ASSERT_NE(unanswered, nullptr);
  EXPECT_EQ(unanswered->connections, 1u);
  EXPECT_EQ(unanswered->server.address, "10.213.7.7");
  EXPECT_TRUE(unanswered->server.exact_address);
}

// Per-address network ends count against max_remote_nodes with the external ones; beyond it they fold into their
// network's own node, whose address is not exact.
TEST(TopologyStore, NetworkEndsAddressAreBoundedByTheRemoteNodeLimit) {
  TopologyConfig cfg;
  cfg.networks = *NetworkMap::build({{"pods", {"10.244.0.0/16"}}});
  cfg.network_ends = NetworkEnds::Address;
  cfg.max_remote_nodes = 8;
  cfg.hold_linger_ns = 0;
  Topology t(cfg, kT0);
  for (int i = 0; i < 50; ++i) {
    std::string addr = "10.244.0." + std::to_string(i + 1);
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, addr.c_str(), 443);
    e.open_seen = false;
    t.ingest(e, svc("crawler"), std::nullopt, kT0);
  }
  auto s = t.snapshot(kT0);
  EXPECT_EQ(s.edges.size(), 9u);  // 8 addresses + the network
  EXPECT_EQ(s.counters.node_overflow, 42u);
  auto folded = std::find_if(s.edges.begin(), s.edges.end(), [](auto& e) { return !e.server.exact_address; });
  ASSERT_NE(folded, s.edges.end());
  EXPECT_EQ(folded->server.service, "pods");
  EXPECT_EQ(folded->connections, 42u);
  EXPECT_EQ(node_id(folded->server), "network:pods");
}

TEST(TopologyStore, NetworkMapRejectsBadCidrsWithNames) {
  auto bad = NetworkMap::build({{"pods", {"10.244.0.0/33"}}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("pods"), std::string::npos);
  EXPECT_NE(bad.error().message.find("10.244.0.0/33"), std::string::npos);
  EXPECT_FALSE(NetworkMap::build({{"x", {"10.0.0.1/8"}}})) << "host bits set";
  EXPECT_FALSE(NetworkMap::build({{"x", {"not-an-ip"}}}));
  EXPECT_FALSE(NetworkMap::build({{"x", {"10.0.0.0/"}}}));
  EXPECT_TRUE(NetworkMap::build({{"x", {"::/0", "0.0.0.0/0", "192.0.2.1"}}}));
}

// Millions of short connections from random ephemeral ports to a few edges: the store does not grow.
TEST(TopologyStore, MemoryStaysFlatUnderEphemeralPortChurn) {
  Topology t({}, kT0);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> port(32768, 60999), which(0, 3);
  const char* servers[] = {"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"};
  const Endpoint client = svc("loadgen");
  size_t edges_after_first = 0, nodes_after_first = 0;
  uint64_t now = kT0;
  for (int i = 0; i < 500'000; ++i) {
    int w = which(rng);
    auto o = ev(Kind::Open, Role::Active, "10.0.0.2", uint16_t(port(rng)), servers[w], uint16_t(80 + w % 2));
    now += 1000;
    t.ingest(o, client, std::nullopt, now);
    t.ingest(closed(o, 100, 200), client, std::nullopt, now);
    if (i == 1000) {
      edges_after_first = t.edge_count();
      nodes_after_first = t.node_count();
    }
  }
  EXPECT_EQ(edges_after_first, 4u);
  EXPECT_EQ(nodes_after_first, 5u);
  EXPECT_EQ(t.edge_count(), 4u);
  EXPECT_EQ(t.node_count(), 5u);
  EXPECT_EQ(t.connection_count(), 0u);
  auto s = t.snapshot(now);
  uint64_t total = 0;
  for (auto& e : s.edges) total += e.connections;
  EXPECT_EQ(total, 500'000u);
  EXPECT_EQ(s.counters.events, 1'000'000u);
  for (auto& e : s.edges) EXPECT_EQ(e.client.service, "loadgen");
}

TEST(TopologyStore, EdgeLimitEvictsAndCounts) {
  TopologyConfig cfg;
  cfg.max_edges = 16;
  Topology t(cfg, kT0);
  for (uint16_t p = 1; p <= 100; ++p) {
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, "10.0.0.10", p);
    e.open_seen = false;
    t.ingest(e, svc("scanner"), std::nullopt, kT0 + p);
    ASSERT_LE(t.edge_count(), 16u);
  }
  auto s = t.snapshot(kT0 + 200);
  EXPECT_GT(s.counters.edges_evicted, 0u);
  EXPECT_EQ(s.counters.edges_evicted + s.edges.size(), 100u);
  // The most recent edge survived: eviction takes the least recently seen.
  EXPECT_NE(find_edge(s, "scanner", "external", 100), nullptr);
}

// A tracked connection remembers its edge between events; when that edge is evicted while the connection is open,
// its later events must land on the edge named again, not on the evicted one.
TEST(TopologyStore, OpenConnectionOutlivesItsEvictedEdge) {
  TopologyConfig cfg;
  cfg.max_edges = 16;
  Topology t(cfg, kT0);
  auto open = ev(Kind::Open, Role::Active, "10.0.0.2", 41000, "10.0.0.99", 5432);
  t.ingest(open, svc("app"), std::nullopt, kT0);
  t.ingest(closed(open, 10, 20), svc("app"), std::nullopt, kT0 + 1);  // a second event uses the remembered edge
  t.ingest(open = ev(Kind::Open, Role::Active, "10.0.0.2", 41001, "10.0.0.99", 5432), svc("app"), std::nullopt, kT0 + 2);
  for (uint16_t p = 1; p <= 100; ++p) {
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, "10.0.0.10", p);
    e.open_seen = false;
    t.ingest(e, svc("scanner"), std::nullopt, kT0 + 10 + p);
  }
  ASSERT_EQ(find_edge(t.snapshot(kT0 + 200), "app", "external", 5432), nullptr) << "the app's edge was not evicted";
  t.ingest(closed(open, 100, 200), svc("app"), std::nullopt, kT0 + 300);
  auto s = t.snapshot(kT0 + 300);
  const auto* e = find_edge(s, "app", "external", 5432);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->closed, 1u);
  EXPECT_EQ(e->bytes_sent, 100u);
  EXPECT_EQ(e->bytes_received, 200u);
}

TEST(TopologyStore, RemoteNodeLimitFoldsIntoOverflowNode) {
  TopologyConfig cfg;
  cfg.max_remote_nodes = 8;
  Topology t(cfg, kT0);
  for (int i = 0; i < 50; ++i) {
    std::string addr = "198.51.100." + std::to_string(i + 1);
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, addr.c_str(), 443);
    e.open_seen = false;
    t.ingest(e, svc("crawler"), std::nullopt, kT0);
  }
  auto s = t.snapshot(kT0);
  EXPECT_EQ(s.edges.size(), 9u);  // 8 addresses + external:*
  EXPECT_EQ(s.counters.node_overflow, 42u);
  uint64_t total = 0;
  for (auto& e : s.edges) total += e.connections;
  EXPECT_EQ(total, 50u) << "overflow keeps counting the traffic";
  auto overflow = std::find_if(s.edges.begin(), s.edges.end(), [](auto& e) { return e.server.address == "*"; });
  ASSERT_NE(overflow, s.edges.end());
  EXPECT_EQ(overflow->connections, 42u);
}

TEST(TopologyStore, ConnectionLimitEvictsTrackingNotCounts) {
  TopologyConfig cfg;
  cfg.max_connections = 64;
  Topology t(cfg, kT0);
  for (uint16_t p = 0; p < 1000; ++p)
    t.ingest(ev(Kind::Open, Role::Active, "10.0.0.2", uint16_t(40000 + p), "10.0.0.10", 80), svc("c"), {}, kT0 + p);
  EXPECT_LE(t.connection_count(), 64u);
  auto s = t.snapshot(kT0 + 1000);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].connections, 1000u);
  EXPECT_EQ(s.edges[0].active, t.connection_count()) << "active counts tracked connections only";
  EXPECT_EQ(s.counters.connections_evicted, 1000u - t.connection_count());
}

TEST(TopologyStore, IdleEdgesExpireOnTick) {
  TopologyConfig cfg;
  cfg.edge_idle_timeout_ns = 60 * kSec;
  Topology t(cfg, kT0);
  auto idle = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, "10.0.0.10", 80);
  idle.open_seen = false;
  t.ingest(idle, svc("a"), {}, kT0);
  auto open = ev(Kind::Open, Role::Active, "10.0.0.2", 40001, "10.0.0.11", 80);
  t.ingest(open, svc("b"), {}, kT0);  // stays open: never expires while active
  t.tick(kT0 + 30 * kSec);
  EXPECT_EQ(t.edge_count(), 2u);
  t.tick(kT0 + 61 * kSec);
  EXPECT_EQ(t.edge_count(), 1u);
  EXPECT_EQ(t.counters().edges_expired, 1u);
  EXPECT_EQ(t.node_count(), 2u);
}

TEST(TopologyStore, SnapshotFilters) {
  Topology t({}, kT0);
  auto add = [&](const char* client, const char* ns, const char* remote, uint16_t port, uint64_t at) {
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, remote, port);
    e.open_seen = false;
    t.ingest(e, svc(client, ns), {}, at);
  };
  add("a", "prod", "10.0.0.10", 80, kT0);
  add("b", "prod", "10.0.0.11", 443, kT0 + 10 * kSec);
  add("c", "dev", "10.0.0.12", 80, kT0 + 20 * kSec);
  auto count = [&](uint64_t since, std::string service, std::string ns, std::optional<uint16_t> port) {
    SnapshotFilter f;
    f.since_ns = since;
    f.service = service;
    f.ns = ns;
    f.port = port;
    return t.snapshot(kT0 + 30 * kSec, f).edges.size();
  };
  EXPECT_EQ(count(0, "", "", {}), 3u);
  EXPECT_EQ(count(kT0 + 5 * kSec, "", "", {}), 2u);
  EXPECT_EQ(count(0, "b", "", {}), 1u);
  EXPECT_EQ(count(0, "external", "", {}), 3u);
  EXPECT_EQ(count(0, "", "prod", {}), 2u);
  EXPECT_EQ(count(0, "", "", 80), 2u);
  EXPECT_EQ(count(0, "", "prod", 80), 1u);
  SnapshotFilter only_c;
  only_c.service = "c";
  auto s = t.snapshot(kT0, only_c);
  EXPECT_EQ(s.nodes.size(), 2u) << "only nodes of the kept edges";
}

// ---- DNAT -------------------------------------------------------------------------------------------------

class FakeConntrack : public ConntrackResolver {
 public:
  std::map<std::pair<std::string, uint16_t>, Destination> nat;  // by dialled address:port
  std::atomic<int> calls{0};
  std::mutex mu;
  std::condition_variable cv;
  bool blocked = false;

  Result<std::optional<Destination>> actual_destination(const FlowTuple& t) override {
    ++calls;
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return !blocked; });
    auto it = nat.find({format_addr(t.dst), t.dport});
    if (it == nat.end()) return std::optional<Destination>{Destination{t.dst, t.dport}};
    return std::optional<Destination>{it->second};
  }
};

TEST(TopologyStore, DnatRecordsDialedAndActual) {
  auto fake = std::make_unique<FakeConntrack>();
  fake->nat[{"10.96.0.10", 80}] = Destination{ip("10.244.1.5"), 8080};
  NatWorker worker(std::move(fake));
  Topology t({}, kT0);
  t.set_nat_worker(&worker);
  auto o = ev(Kind::Open, Role::Active, "10.244.0.3", 40000, "10.96.0.10", 80);
  t.ingest(o, svc("frontend"), {}, kT0);
  t.ingest(closed(o, 1, 1), svc("frontend"), {}, kT0);
  auto plain = ev(Kind::Open, Role::Active, "10.244.0.3", 40001, "10.0.0.50", 443);
  t.ingest(plain, svc("frontend"), {}, kT0);
  worker.wait_idle();
  t.tick(kT0 + kSec);
  auto s = t.snapshot(kT0 + kSec);
  const auto* e = find_edge(s, "frontend", "external", 80);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->dialed, "10.96.0.10:80");
  EXPECT_EQ(e->actual, std::vector<std::string>{"10.244.1.5:8080"});
  const auto* p = find_edge(s, "frontend", "external", 443);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->dialed.empty()) << "not translated";
  EXPECT_EQ(s.counters.nat_requests, 2u);
  EXPECT_EQ(s.counters.nat_translated, 1u);
  auto c = worker.counters();
  EXPECT_EQ(c.translated, 1u);
  EXPECT_EQ(c.lookups, 2u);
}

TEST(TopologyStore, NatQueueIsBoundedAndNeverBlocksIngest) {
  auto fake = std::make_unique<FakeConntrack>();
  FakeConntrack* f = fake.get();
  f->blocked = true;  // the resolver hangs: ingest must still go on
  NatWorkerConfig wc;
  wc.queue_capacity = 4;
  NatWorker worker(std::move(fake), wc);
  Topology t({}, kT0);
  t.set_nat_worker(&worker);
  for (uint16_t p = 0; p < 100; ++p)
    t.ingest(ev(Kind::Open, Role::Active, "10.0.0.2", uint16_t(40000 + p), "10.96.0.1", 443), svc("c"), {}, kT0);
  auto s = t.snapshot(kT0);
  EXPECT_EQ(s.edges[0].connections, 100u);
  EXPECT_EQ(s.counters.nat_requests, 100u);
  // At most one lookup in flight plus a full queue; the rest were dropped and counted.
  EXPECT_GE(s.counters.nat_dropped, 100u - 5u);
  EXPECT_EQ(worker.counters().dropped, s.counters.nat_dropped);
  {
    std::lock_guard lk(f->mu);
    f->blocked = false;
  }
  f->cv.notify_all();
  worker.wait_idle();
  EXPECT_EQ(worker.counters().lookups, 100u - s.counters.nat_dropped);
  t.set_nat_worker(nullptr);
}

// ---- anomalies (injected clock) -----------------------------------------------------------------------------

AnomalyConfig fast_anomaly() {
  AnomalyConfig a;
  a.window_ns = kSec;
  a.min_samples = 20;
  a.baseline_windows = 5;
  a.new_edge_warmup_ns = 0;
  return a;
}

// Drives one edge window by window: `attempts` connects per window, `failures` of them refused,
// each successful one with `latency_us`.
struct Driver {
  Topology& t;
  uint64_t now = kT0;
  uint16_t port = 30000;
  // One connect at `at`: refused, or established with `latency_us` and closed.
  void attempt(uint64_t at, bool refused, uint64_t latency_us) {
    auto e = ev(Kind::Open, Role::Active, "10.0.0.2", ++port, "10.0.0.10", 80);
    if (refused) {
      e = ev(Kind::Close, Role::Active, "10.0.0.2", port, "10.0.0.10", 80);
      e.established = false;
      e.outcome = Outcome::Refused;
    } else {
      e.connect_latency_ns = latency_us * 1000;
    }
    t.ingest(e, svc("client"), {}, at);
    if (!refused) t.ingest(closed(e, 1, 1), svc("client"), {}, at);
  }
  void window(int attempts, int failures, uint64_t latency_us) {
    for (int i = 0; i < attempts; ++i) attempt(now + uint64_t(i) * (kSec / 100), i < failures, latency_us);
    now += kSec;
    t.tick(now);
  }
  std::vector<AnomalyFlag> flags() { return t.snapshot(now).edges.at(0).anomalies; }
};

TEST(TopologyAnomaly, FailureRateJumpIsFlaggedWithinAWindow) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  Topology t(cfg, kT0);
  Driver d{t};
  for (int w = 0; w < 10; ++w) d.window(40, w % 3 == 0 ? 1 : 0, 500);  // ~1% failures, some noise
  auto before = d.flags();
  EXPECT_TRUE(std::none_of(before.begin(), before.end(), [](auto& f) { return f.reason == "failure_rate"; }));
  uint64_t jump_end = d.now + kSec;
  d.window(40, 20, 500);  // 50% failures
  auto after = d.flags();
  auto it = std::find_if(after.begin(), after.end(), [](auto& f) { return f.reason == "failure_rate"; });
  ASSERT_NE(it, after.end());
  EXPECT_EQ(it->first_ns, jump_end) << "named by the end of the window that jumped";
  // Raised as soon as the window had min_samples attempts past the threshold: its first 20, all refused.
  EXPECT_DOUBLE_EQ(it->value, 1.0);
  EXPECT_LT(it->baseline, 0.05);
  EXPECT_GE(t.counters().anomalies, 1u);
  // A second bad window directly after extends the same flag instead of adding one.
  d.window(40, 30, 500);
  auto again = d.flags();
  EXPECT_EQ(std::count_if(again.begin(), again.end(), [](auto& f) { return f.reason == "failure_rate"; }), 1);
  EXPECT_EQ(std::find_if(again.begin(), again.end(), [](auto& f) { return f.reason == "failure_rate"; })->windows, 2u);
}

// Issue 18: a failure burst is flagged within its first min_samples attempts, not when its window ends. The server
// dies 0.9 s into a window: the rest of that window is not enough (5 of 45 failed), the next one is flagged at its
// 20th attempt, 0.2 s in, long before it ends.
TEST(TopologyAnomaly, FailureBurstIsFlaggedBeforeItsWindowEnds) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  Topology t(cfg, kT0);
  Driver d{t};
  for (int w = 0; w < 8; ++w) d.window(50, 0, 500);
  auto failure_flags = [&](uint64_t at) {
    auto f = t.snapshot(at).edges.at(0).anomalies;
    return std::count_if(f.begin(), f.end(), [](auto& x) { return x.reason == "failure_rate"; });
  };
  auto attempt = [&](uint64_t at, bool refused) { d.attempt(at, refused, 500); };
  // Every 10 ms: healthy for 0.9 s, then refused.
  const uint64_t start = d.now, step = kSec / 100;
  uint64_t at = start;
  for (int i = 0; i < 90; ++i, at += step) attempt(at, false);
  for (int i = 0; i < 10; ++i, at += step) attempt(at, true);
  EXPECT_EQ(failure_flags(at), 0) << "10 of 100 failed in the first window: under the threshold";
  // The next window: the 20th refused attempt is judged at the 21st event, 0.2 s in.
  for (int i = 0; i < 21; ++i, at += step) attempt(at, true);
  EXPECT_LT(at, start + 2 * kSec) << "still inside the second window";
  EXPECT_EQ(failure_flags(at), 1) << "flagged 0.3 s after the burst started, before the window ended";
  auto f = t.snapshot(at).edges.at(0).anomalies;
  auto it = std::find_if(f.begin(), f.end(), [](auto& x) { return x.reason == "failure_rate"; });
  EXPECT_EQ(it->first_ns, start + 2 * kSec);
  // The rest of the window and its end raise nothing more.
  for (int i = 0; i < 50; ++i, at += step) attempt(at, true);
  t.tick(start + 2 * kSec);
  EXPECT_EQ(failure_flags(start + 2 * kSec), 1);
}

TEST(TopologyAnomaly, LatencyJumpIsFlagged) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  Topology t(cfg, kT0);
  Driver d{t};
  for (int w = 0; w < 8; ++w) d.window(30, 0, 1000 + (w % 2) * 100);
  EXPECT_TRUE(d.flags().empty() || d.flags()[0].reason == "new_edge");
  d.window(30, 0, 9000);
  auto f = d.flags();
  auto it = std::find_if(f.begin(), f.end(), [](auto& x) { return x.reason == "connect_latency"; });
  ASSERT_NE(it, f.end());
  EXPECT_DOUBLE_EQ(it->value, 9000.0);
  EXPECT_NEAR(it->baseline, 1050.0, 100.0);
}

TEST(TopologyAnomaly, TooFewSamplesOrNoBaselineIsNeverFlagged) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  Topology t(cfg, kT0);
  Driver d{t};
  d.window(40, 20, 500);  // bad from the start: no baseline yet
  for (int w = 0; w < 6; ++w) d.window(40, 0, 500);
  d.window(10, 10, 500);  // all failed, but under min_samples
  auto f = d.flags();
  EXPECT_TRUE(std::none_of(f.begin(), f.end(), [](auto& x) { return x.reason == "failure_rate"; }));
}

TEST(TopologyAnomaly, SteadyNoiseIsNotFlagged) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  Topology t(cfg, kT0);
  Driver d{t};
  for (int w = 0; w < 40; ++w) d.window(40, (w * 7) % 5, 800 + (w * 37) % 300);
  auto f = d.flags();
  EXPECT_TRUE(std::none_of(f.begin(), f.end(), [](auto& x) { return x.reason != "new_edge"; }));
}

TEST(TopologyAnomaly, NewEdgeOnlyAfterWarmupAndOnlyIfNeverSeen) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  cfg.anomaly.new_edge_warmup_ns = 60 * kSec;
  cfg.edge_idle_timeout_ns = 10 * kSec;
  Topology t(cfg, kT0);
  auto one = [&](uint16_t port, uint64_t at) {
    auto e = ev(Kind::Close, Role::Active, "10.0.0.2", 40000, "10.0.0.10", port);
    e.open_seen = false;
    t.ingest(e, svc("c"), {}, at);
  };
  one(80, kT0 + kSec);  // during warm-up
  one(81, kT0 + 61 * kSec);
  auto s = t.snapshot(kT0 + 61 * kSec);
  EXPECT_TRUE(find_edge(s, "c", "external", 80)->anomalies.empty());
  const auto& flags = find_edge(s, "c", "external", 81)->anomalies;
  ASSERT_EQ(flags.size(), 1u);
  EXPECT_EQ(flags[0].reason, "new_edge");
  EXPECT_EQ(flags[0].first_ns, kT0 + 61 * kSec);
  // Port 80's edge expires and comes back: it is not new.
  t.tick(kT0 + 100 * kSec);
  one(80, kT0 + 101 * kSec);
  auto s2 = t.snapshot(kT0 + 101 * kSec);
  EXPECT_TRUE(find_edge(s2, "c", "external", 80)->anomalies.empty());
}

TEST(TopologyAnomaly, DisabledMeansNoFlags) {
  TopologyConfig cfg;
  cfg.anomaly = fast_anomaly();
  cfg.anomaly.enabled = false;
  Topology t(cfg, kT0);
  Driver d{t};
  for (int w = 0; w < 8; ++w) d.window(30, 0, 500);
  d.window(30, 30, 500);
  EXPECT_TRUE(t.snapshot(d.now).edges.at(0).anomalies.empty());
}

TEST(LatencyHistogram, BucketsAreContiguousAndQuantilesClose) {
  for (size_t b = 0; b + 1 < LatencyHistogram::kBuckets; ++b)
    EXPECT_EQ(LatencyHistogram::bucket_high(b), LatencyHistogram::bucket_low(b + 1)) << b;
  for (uint64_t v : {0ull, 1ull, 3ull, 4ull, 5ull, 7ull, 8ull, 100ull, 1023ull, 1024ull, 123456789ull}) {
    size_t b = LatencyHistogram::bucket_of(v);
    EXPECT_LE(LatencyHistogram::bucket_low(b), v);
    EXPECT_LT(v, LatencyHistogram::bucket_high(b));
  }
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 1000; ++v) h.add(v * 10);  // uniform 10us..10ms
  EXPECT_NEAR(double(h.quantile(0.5)), 5000.0, 5000.0 * 0.13);
  EXPECT_NEAR(double(h.quantile(0.9)), 9000.0, 9000.0 * 0.13);
  EXPECT_NEAR(double(h.quantile(0.99)), 9900.0, 9900.0 * 0.13);
  EXPECT_EQ(LatencyHistogram().quantile(0.5), 0u);
}

// The plain table every bucket count is kept in, as the histogram was before it kept few buckets sparsely.
struct ReferenceHistogram {
  std::array<uint64_t, LatencyHistogram::kBuckets> counts{};
  void add(uint64_t us) { ++counts[LatencyHistogram::bucket_of(us)]; }
  uint64_t quantile(double q) const {
    uint64_t total = 0;
    for (auto c : counts) total += c;
    if (total == 0) return 0;
    uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(total)))), seen = 0;
    for (size_t b = 0; b < counts.size(); ++b) {
      seen += counts[b];
      if (seen >= rank)
        return b < 4 ? b : (LatencyHistogram::bucket_low(b) + LatencyHistogram::bucket_high(b) - 1) / 2;
    }
    return 0;
  }
  std::vector<uint64_t> export_buckets() const {
    std::vector<uint64_t> out;
    for (uint64_t bound : LatencyHistogram::kExportBoundsUs) {
      uint64_t below = 0;
      for (size_t b = 0; b < counts.size(); ++b)
        if (LatencyHistogram::bucket_high(b) <= bound) below += counts[b];
      out.push_back(below);
    }
    return out;
  }
};

TEST(LatencyHistogram, SparseAndDenseFormsAnswerLikeThePlainTable) {
  std::mt19937_64 rng(15);
  for (int round = 0; round < 20; ++round) {
    LatencyHistogram h;
    ReferenceHistogram ref;
    // Few distinct latencies first (sparse), then spread over every bucket (dense).
    const int spread_after = round * 10;
    for (int i = 0; i < 400; ++i) {
      uint64_t us = i < spread_after ? 50 + rng() % 3 * 40 : rng() >> (rng() % 64);
      h.add(us);
      ref.add(us);
      for (double q : {0.0, 0.5, 0.9, 0.99, 1.0}) ASSERT_EQ(h.quantile(q), ref.quantile(q)) << round << " " << i << " q" << q;
      ASSERT_EQ(h.export_buckets(), ref.export_buckets()) << round << " " << i;
    }
    EXPECT_TRUE(h.dense());
  }
  LatencyHistogram few;
  for (uint64_t us = 1; us <= 100'000; us *= 2) few.add(us);  // 17 buckets: one past the sparse form
  EXPECT_TRUE(few.dense());
  LatencyHistogram one;
  one.add(70);
  EXPECT_FALSE(one.dense());
}

TEST(LatencyHistogram, CountsPastTheSparseWordKeepCounting) {
  LatencyHistogram h;
  const uint64_t n = (1u << 24) + 5;  // one bucket's count outgrows the 24 bits of a sparse word
  for (uint64_t i = 0; i < n; ++i) h.add(100);
  h.add(5000);
  EXPECT_EQ(h.count(), n + 1);
  EXPECT_EQ(h.export_buckets().front(), 0u);  // below 16 us
  EXPECT_EQ(h.export_buckets()[3], n);        // below 128 us
  EXPECT_EQ(h.export_buckets().back(), n + 1);
  const size_t b = LatencyHistogram::bucket_of(100);
  EXPECT_EQ(h.quantile(0.99), (LatencyHistogram::bucket_low(b) + LatencyHistogram::bucket_high(b) - 1) / 2);
}

}  // namespace
}  // namespace hostscope::topology
