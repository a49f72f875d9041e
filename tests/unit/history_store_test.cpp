// The topology history store (agent/history): SQLite on a fake clock.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>

#include "agent/history/replay.h"
#include "agent/history/store.h"
#include "common/time_arg.h"
#include "common/topology_json.h"
#include "support/history_synth.h"

namespace hostscope::history {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kT0 = 1'700'000'000ull * 1'000'000'000ull / kHourNs * kHourNs;  // an hour boundary

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hs-history-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

IntervalRow row(const std::string& client, const std::string& server, uint16_t port, uint64_t start,
                uint64_t width = kMinuteNs) {
  IntervalRow r;
  r.start_ns = start;
  r.end_ns = start + width;
  r.client = {topology::NodeKind::Service, client, "shop", client + "-pod", "10.0.0.1"};
  r.server = {topology::NodeKind::Service, server, "shop", server + "-pod", "10.0.0.2"};
  r.port = port;
  r.connections = 10;
  r.closed = 9;
  r.failed_refused = 2;
  r.failed_timed_out = 1;
  r.resets = 1;
  r.active = 1;
  r.bytes_sent = 1000;
  r.bytes_received = 5000;
  r.retransmits = 3;
  r.srtt_us = 77;
  r.latency[3] = 8;   // [64, 128) us
  r.latency[10] = 2;  // [8192, 16384) us
  r.latency_sum_us = 8 * 100 + 2 * 10000;
  r.first_seen_ns = start + 1;
  r.last_seen_ns = start + width - 1;
  return r;
}

Store open_rw(const std::string& path, StoreOptions o = {}) {
  auto s = Store::open(path, o, false);
  EXPECT_TRUE(s) << (s ? "" : s.error().str());
  return std::move(*s);
}

int64_t sql_int(const std::string& path, const std::string& q) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, q.c_str(), -1, &st, nullptr);
  int64_t v = -1;
  if (st && sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

void sql_exec(const std::string& path, const std::string& q) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, q.c_str(), nullptr, nullptr, &err), SQLITE_OK) << (err ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

// Writes `rows` as one interval (all starting at kT0) and expects to read back exactly them, in edge-id order.
void expect_round_trip(Store& s, const std::vector<IntervalRow>& rows) {
  ASSERT_TRUE(s.write(rows, kT0 + kMinuteNs));
  auto back = s.rows(kT0, kT0 + kMinuteNs);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, rows);
}

// The topology of [from, to) added up from the stored rows themselves (Store::rows: minute rows where they are, never
// the 10-minute summaries), the way Store::topology adds them up: per stored identity in the rows' order, then the
// identities of one edge key in the order of their latest rows.
topology::TopologySnapshot sum_of_rows(Store& s, uint64_t from, uint64_t to) {
  auto rows = s.rows(from, to);
  EXPECT_TRUE(rows) << rows.error().str();
  struct PerIdentity {
    IntervalRow r;
    size_t last = 0;
  };
  std::map<std::string, PerIdentity> by_identity;
  size_t pos = 0;
  for (auto& r : *rows) {
    const std::string id = fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", edge_key(r), r.client.pod,
                                       r.client.address, r.client.workload, r.client.go_module, r.client.service,
                                       r.server.pod, r.server.address, r.server.workload, r.server.go_module,
                                       r.server.service, r.dialed, int(r.client.kind) * 10 + int(r.server.kind));
    auto [it, fresh] = by_identity.try_emplace(id, PerIdentity{r, pos});
    if (!fresh) merge_row(it->second.r, r);
    it->second.last = pos++;
  }
  std::vector<std::pair<size_t, IntervalRow*>> order;
  for (auto& [_, p] : by_identity) order.emplace_back(p.last, &p.r);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::map<std::string, IntervalRow> by_edge;
  for (const auto& [_, r] : order) {
    auto [it, fresh] = by_edge.try_emplace(edge_key(*r), *r);
    if (!fresh) merge_row(it->second, *r);
  }
  topology::TopologySnapshot snap;
  snap.taken_ns = to;
  for (const auto& [_, r] : by_edge) snap.edges.push_back(to_edge(r));
  topology::canonicalize(snap);
  return snap;
}

// Store::topology of [from, to) is exactly the sum of the stored rows, whatever it read (summaries or minute rows).
void expect_sum_of_rows(Store& s, uint64_t from, uint64_t to) {
  auto got = s.topology(from, to);
  ASSERT_TRUE(got) << got.error().str();
  const auto want = sum_of_rows(s, from, to);
  EXPECT_EQ(got->edges.size(), want.edges.size()) << "[+" << (from - kT0) / kMinuteNs << "m, +" << (to - kT0) / kMinuteNs << "m)";
  EXPECT_TRUE(*got == want) << "[+" << (from - kT0) / kMinuteNs << "m, +" << (to - kT0) / kMinuteNs << "m)";
}

TEST(HistoryStore, WriteReadRoundTrip) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  auto a = row("frontend", "cart", 8080, kT0);
  a.anomalies.push_back({"failure_rate", kT0 + 5, kT0 + 6, 1, 0.5, 0.01});
  a.dialed = "10.96.0.10:80";
  auto b = row("cart", "redis", 6379, kT0);
  b.client.kind = topology::NodeKind::Service;
  b.server = {topology::NodeKind::External, "external", "", "", "192.0.2.7"};
  // Ordered by start, tier, edge id (insertion order here).
  expect_round_trip(s, {a, b});

  // Reopened read-only: the same rows, and the same topology the live path would render.
  auto ro = Store::open(d.file("h.db"), {}, true);
  ASSERT_TRUE(ro) << ro.error().str();
  auto snap = ro->topology(kT0 + 30 * 1'000'000'000ull, kT0 + 30 * 1'000'000'000ull + 1);
  ASSERT_TRUE(snap) << snap.error().str();
  ASSERT_EQ(snap->edges.size(), 2u);
  const auto& e = snap->edges[1].client.service == "frontend" ? snap->edges[1] : snap->edges[0];
  EXPECT_EQ(e.connections, 10u);
  EXPECT_EQ(e.failed.at("refused"), 2u);
  EXPECT_EQ(e.failed.at("timed_out"), 1u);
  EXPECT_EQ(e.failed.count("failed"), 0u);
  EXPECT_EQ(e.latency.samples, 10u);
  EXPECT_EQ(e.latency.p50_us, 95u);     // midpoint of [64, 128)
  EXPECT_EQ(e.latency.p99_us, 12287u);  // midpoint of [8192, 16384)
  EXPECT_EQ(e.dialed, "10.96.0.10:80");
  ASSERT_EQ(e.anomalies.size(), 1u);
  EXPECT_EQ(e.anomalies[0].reason, "failure_rate");
  // The JSON form accepts it (every output format renders the model).
  auto back = topology::from_json(topology::to_json(*snap));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->edges.size(), 2u);

  auto st = ro->status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->rows, 2u);
  EXPECT_EQ(st->edges, 2u);
  EXPECT_EQ(st->oldest_ns, kT0);
  EXPECT_EQ(st->newest_ns, kT0 + kMinuteNs);
  EXPECT_EQ(st->counters.at("rows_written"), 2u);
  EXPECT_EQ(st->counters.at("intervals_written"), 1u);
  EXPECT_EQ(st->counters.at("last_write_ns"), kT0 + kMinuteNs);
  EXPECT_EQ(st->schema_version, kSchemaVersion);
}

// Workload and Go module are part of an edge's stored identity (a new module version is a new identity row) and come
// back in rows and in the topology, where rows of one edge still merge by node ids and the latest row's win.
TEST(HistoryStore, WorkloadAndGoModuleRoundTrip) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  auto a = row("frontend", "cart", 8080, kT0);
  a.client.workload = "frontend";
  a.client.go_module = "github.com/acme/frontend@v1.0.0";
  a.server.workload = "cart";
  a.server.go_module = "github.com/acme/cart";
  auto b = row("cart", "redis", 6379, kT0);  // neither: not in a pod, not Go
  expect_round_trip(s, {a, b});
  EXPECT_EQ(s.status()->edges, 2u);

  auto next = a;  // the client rolled out v1.1.0 in another pod
  next.start_ns += kMinuteNs;
  next.end_ns += kMinuteNs;
  next.first_seen_ns += kMinuteNs;
  next.last_seen_ns += kMinuteNs;
  next.client.pod = "frontend-2";
  next.client.go_module = "github.com/acme/frontend@v1.1.0";
  ASSERT_TRUE(s.write({next}, next.end_ns));
  EXPECT_EQ(s.status()->edges, 3u);
  auto rows = s.rows(kT0 + kMinuteNs, kT0 + 2 * kMinuteNs);
  ASSERT_TRUE(rows) << rows.error().str();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0], next);

  auto snap = s.topology(kT0, kT0 + 2 * kMinuteNs);
  ASSERT_TRUE(snap) << snap.error().str();
  ASSERT_EQ(snap->edges.size(), 2u);
  const auto& e = snap->edges[1].client.service == "frontend" ? snap->edges[1] : snap->edges[0];
  EXPECT_EQ(e.connections, 20u);
  EXPECT_EQ(e.client.workload, "frontend");
  EXPECT_EQ(e.client.go_module, "github.com/acme/frontend@v1.1.0");
  EXPECT_EQ(e.server.workload, "cart");
  EXPECT_EQ(e.server.go_module, "github.com/acme/cart");
  // The JSON form carries them.
  auto back = topology::from_json(topology::to_json(*snap));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(*back, *snap);

  // Many edges: the topology reads the identities in one pass over the edges table instead of one by one.
  std::vector<IntervalRow> many;
  for (int i = 0; i < 300; ++i) {
    auto r = row("client" + std::to_string(i), "server", 80, kT0 + 5 * kMinuteNs);
    r.client.workload = "client" + std::to_string(i);
    r.client.go_module = "example.com/client" + std::to_string(i) + "@v0." + std::to_string(i) + ".0";
    many.push_back(r);
  }
  ASSERT_TRUE(s.write(many, kT0 + 6 * kMinuteNs));
  auto wide = s.topology(kT0 + 5 * kMinuteNs, kT0 + 6 * kMinuteNs);
  ASSERT_TRUE(wide) << wide.error().str();
  ASSERT_EQ(wide->edges.size(), 300u);
  for (const auto& w : wide->edges) {
    EXPECT_EQ(w.client.workload, w.client.service);
    EXPECT_EQ(w.client.go_module.rfind("example.com/" + w.client.service + "@v0.", 0), 0u) << w.client.go_module;
    EXPECT_EQ(w.server.pod, "server-pod");
  }
}

// Network ends keyed by address (topology.network_ends: address) are edges of their own in history as they are live:
// two addresses of one network, and the network's own end (an agent that ran with `network` before), never merge.
TEST(HistoryStore, PerAddressNetworkEndsStayApart) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  auto to = [](const char* address, bool exact) {
    auto r = row("frontend", "cluster-pods", 80, kT0);
    r.server = {topology::NodeKind::Network, "cluster-pods", "", "", address};
    r.server.exact_address = exact;
    return r;
  };
  expect_round_trip(s, {to("10.244.1.5", true), to("10.244.2.6", true), to("10.244.2.6", false)});
  auto snap = s.topology(kT0, kT0 + kMinuteNs);
  ASSERT_TRUE(snap) << snap.error().str();
  ASSERT_EQ(snap->edges.size(), 3u);
  std::set<std::string> ids;
  for (const auto& e : snap->edges) {
    EXPECT_EQ(e.connections, 10u) << topology::node_id(e.server);
    ids.insert(topology::node_id(e.server));
  }
  EXPECT_EQ(ids, (std::set<std::string>{"network:cluster-pods", "network:cluster-pods@10.244.1.5",
                                        "network:cluster-pods@10.244.2.6"}));
}

TEST(HistoryStore, BetweenAddsUpIntervalsAndKeepsTheLatestAttributes) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  for (int m = 0; m < 5; ++m) {
    auto r = row("frontend", "cart", 8080, kT0 + uint64_t(m) * kMinuteNs);
    r.client.pod = "frontend-" + std::to_string(m);
    ASSERT_TRUE(s.write({r}, r.end_ns));
  }
  auto snap = s.topology(kT0 + kMinuteNs, kT0 + 3 * kMinuteNs);  // minutes 1 and 2
  ASSERT_TRUE(snap) << snap.error().str();
  ASSERT_EQ(snap->edges.size(), 1u);  // one edge whatever pod was last seen
  EXPECT_EQ(snap->edges[0].connections, 20u);
  EXPECT_EQ(snap->edges[0].bytes_received, 10000u);
  EXPECT_EQ(snap->edges[0].client.pod, "frontend-2");
  EXPECT_EQ(snap->edges[0].first_seen_ns, kT0 + kMinuteNs + 1);
  // Nothing before the first row.
  auto none = s.topology(kT0 - kHourNs, kT0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->edges.empty());
}

// `top --replay`: the start (empty), then one step at a time with running totals; a 10-minute row lands whole in the
// step where it starts, never twice; the end repeats the last totals.
TEST(HistoryReplay, StepsAddUpOnceAndStopAtTheEnd) {
  TempDir d;
  {
    auto s = open_rw(d.file("h.db"));
    for (int m = 0; m < 3; ++m) ASSERT_TRUE(s.write({row("web", "cart", 80, kT0 + uint64_t(m) * kMinuteNs)}, kT0 + uint64_t(m + 1) * kMinuteNs));
    ASSERT_TRUE(s.write({row("web", "db", 5432, kT0, 10 * kMinuteNs)}, kT0 + 10 * kMinuteNs));
  }
  auto store = Store::open(d.file("h.db"), {}, true);
  ASSERT_TRUE(store) << store.error().str();
  Replay r(std::move(*store), kT0, kT0 + 4 * kMinuteNs, kMinuteNs);
  auto conns = [](const topology::TopologySnapshot& s, uint16_t port) -> uint64_t {
    for (const auto& e : s.edges)
      if (e.port == port) return e.connections;
    return 0;
  };
  auto start = r.next();
  ASSERT_TRUE(start);
  EXPECT_TRUE(start->edges.empty());
  EXPECT_EQ(start->taken_ns, kT0);
  std::vector<uint64_t> cart, db;
  for (int i = 0; i < 5; ++i) {
    auto s = r.next();
    ASSERT_TRUE(s) << s.error().str();
    cart.push_back(conns(*s, 80));
    db.push_back(conns(*s, 5432));
    EXPECT_EQ(s->taken_ns, std::min(kT0 + uint64_t(i + 1) * kMinuteNs, kT0 + 4 * kMinuteNs));
  }
  EXPECT_EQ(cart, (std::vector<uint64_t>{10, 20, 30, 30, 30}));
  EXPECT_EQ(db, (std::vector<uint64_t>{10, 10, 10, 10, 10}));
  EXPECT_TRUE(r.done());
}

TEST(HistoryStore, RollUpAndRetentionOnAFakeClock) {
  TempDir d;
  StoreOptions o;
  o.retention_ns = 7 * kDayNs;
  auto s = open_rw(d.file("h.db"), o);
  // 30 minutes of one edge, starting at an hour boundary.
  for (int m = 0; m < 30; ++m) ASSERT_TRUE(s.write({row("a", "b", 80, kT0 + uint64_t(m) * kMinuteNs)}, kT0));
  // 24 h after minute 19 ended: minutes 0..19 roll up into two 10-minute rows; 20..29 stay.
  ASSERT_TRUE(s.maintain(kT0 + 20 * kMinuteNs + kDayNs + 1));
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->rows_by_width[kMinuteNs], 10u);
  EXPECT_EQ(st->rows_by_width[10 * kMinuteNs], 2u);
  EXPECT_EQ(st->counters.at("rows_rolled_up"), 20u);
  auto rows = s.rows(kT0, kT0 + 10 * kMinuteNs);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].start_ns, kT0);
  EXPECT_EQ((*rows)[0].end_ns, kT0 + 10 * kMinuteNs);
  EXPECT_EQ((*rows)[0].connections, 100u);
  EXPECT_EQ((*rows)[0].latency[3], 80u);
  EXPECT_EQ((*rows)[0].active, 1u);  // a gauge: the latest, not a sum
  // The total over the half hour is unchanged by the roll-up.
  auto all = s.topology(kT0, kT0 + 30 * kMinuteNs);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->edges.size(), 1u);
  EXPECT_EQ(all->edges[0].connections, 300u);
  // --at inside a rolled-up interval finds the 10-minute row.
  auto at = s.topology(kT0 + 5 * kMinuteNs, kT0 + 5 * kMinuteNs + 1);
  ASSERT_TRUE(at);
  ASSERT_EQ(at->edges.size(), 1u);
  EXPECT_EQ(at->edges[0].connections, 100u);

  // A day later everything is in 10-minute rows; 7 days after that the 10-minute rows have reached the retention.
  ASSERT_TRUE(s.maintain(kT0 + 2 * kDayNs));
  st = s.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->rows_by_width[kMinuteNs], 0u);
  EXPECT_EQ(st->rows_by_width[10 * kMinuteNs], 3u);
  EXPECT_EQ(st->counters.at("rows_rolled_up"), 30u);
  ASSERT_TRUE(s.maintain(kT0 + 10 * kMinuteNs + 7 * kDayNs));  // the first 10-minute row ends at the cut-off
  st = s.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->rows, 2u);
  EXPECT_EQ(st->counters.at("rows_evicted_age"), 1u);
  ASSERT_TRUE(s.maintain(kT0 + 8 * kDayNs));
  st = s.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->rows, 0u);
  EXPECT_EQ(st->counters.at("rows_evicted_age"), 3u);
}

TEST(HistoryStore, HourTierWhenRetentionAllows) {
  TempDir d;
  StoreOptions o;
  o.retention_ns = 30 * kDayNs;
  auto s = open_rw(d.file("h.db"), o);
  for (int m = 0; m < 60; ++m) ASSERT_TRUE(s.write({row("a", "b", 80, kT0 + uint64_t(m) * kMinuteNs)}, kT0));
  ASSERT_TRUE(s.maintain(kT0 + kHourNs + 7 * kDayNs));
  auto st = s.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->rows, 1u);
  EXPECT_EQ(st->rows_by_width[kHourNs], 1u);
  auto all = s.topology(kT0, kT0 + kHourNs);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->edges.size(), 1u);
  EXPECT_EQ(all->edges[0].connections, 600u);
  EXPECT_EQ(all->edges[0].latency.samples, 600u);
}

// Rows a roll-up cannot merge (a new edge every minute, as under pod churn): the size bound has to evict.
TEST(HistoryStore, SizeCapEvictsTheOldestAndCounts) {
  TempDir d;
  StoreOptions o;
  o.max_bytes = 256 * 1024;
  auto s = open_rw(d.file("h.db"), o);
  const int minutes = 1000;  // 8000 rows of about 80 bytes
  for (int m = 0; m < minutes; ++m) {
    std::vector<IntervalRow> rows;
    for (int e = 0; e < 8; ++e)
      rows.push_back(row("client" + std::to_string(m * 8 + e), "server", 80, kT0 + uint64_t(m) * kMinuteNs));
    ASSERT_TRUE(s.write(rows, kT0 + uint64_t(m + 1) * kMinuteNs));
    ASSERT_TRUE(s.maintain(kT0 + uint64_t(m + 1) * kMinuteNs));
  }
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_LE(st->used_bytes, o.max_bytes);
  EXPECT_GT(st->counters.at("rows_evicted_size"), 0u);
  EXPECT_EQ(st->counters.at("rows_evicted_age"), 0u);
  EXPECT_EQ(st->rows + st->counters.at("rows_evicted_size"), uint64_t(minutes) * 8);
  // The oldest went first: what is left is the newest minutes, complete.
  EXPECT_EQ(st->newest_ns, kT0 + uint64_t(minutes) * kMinuteNs);
  EXPECT_GT(st->oldest_ns, kT0);
  auto last = s.rows(kT0 + uint64_t(minutes - 1) * kMinuteNs, kT0 + uint64_t(minutes) * kMinuteNs);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->size(), 8u);
  auto first = s.rows(kT0, kT0 + kMinuteNs);
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->empty());
  // Rows before the oldest kept start are all gone (no holes in the middle).
  auto kept = s.rows(st->oldest_ns, st->newest_ns);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->size(), st->rows);
}

// What a minute row costs in the file (docs/topology.md, "History"): 2000 busy edges for 30 minutes.
TEST(HistoryStore, BytesPerRowOfBusyMinutes) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  const uint64_t edges = 2000, minutes = 30;
  for (uint64_t m = 0; m < minutes; ++m) {
    std::vector<IntervalRow> rows;
    for (uint64_t e = 0; e < edges; ++e) rows.push_back(synth::row(e, kT0 + m * kMinuteNs, kMinuteNs));
    ASSERT_TRUE(s.write(rows, kT0 + (m + 1) * kMinuteNs));
  }
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  ASSERT_EQ(st->rows, edges * minutes);
  const double per_row = double(st->used_bytes) / double(st->rows);
  std::cout << "history bytes per minute row (pages in use / rows, " << edges << " edges): " << per_row << "\n";
  RecordProperty("bytes_per_row", int(per_row));
}

TEST(HistoryStore, CompactRowsRoundTripTheirEdges) {
  TempDir d;
  auto s = open_rw(d.file("h.db"));
  auto a = row("frontend", "cart", 8080, kT0);
  a.latency = {};
  a.latency[0] = 1;
  a.latency[kLatencyBuckets - 1] = (1ull << 62) + 5;  // a 9-byte varint
  a.latency_sum_us = uint64_t(INT64_MAX);
  a.first_seen_ns = 0;               // unknown: a negative offset the size of the start
  a.end_ns = kT0 + 30'000'000'000;   // a partial minute (the agent stopped): its length is kept
  a.last_seen_ns = kT0 + 29'999'999'999;
  auto b = row("cart", "redis", 6379, kT0);
  b.latency = {};                    // no samples: no blob
  b.latency_sum_us = 0;
  b.first_seen_ns = kT0 - 3 * kDayNs;
  expect_round_trip(s, {a, b});
  EXPECT_EQ(sql_int(d.file("h.db"), "SELECT count(*) FROM intervals WHERE len_ns IS NULL"), 1);
  EXPECT_EQ(sql_int(d.file("h.db"), "SELECT count(*) FROM intervals WHERE latency IS NULL"), 1);
}

// A v1 file as hostscope wrote it before the compact rows (that version's tables and its 160-byte latency blob),
// frozen here rather than taken from the code, which no longer writes it.
void write_v1(const std::string& path, const std::vector<std::pair<int, IntervalRow>>& rows) {
  sql_exec(path, R"sql(
PRAGMA auto_vacuum = INCREMENTAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES('schema_version', 1), ('rows_written', 3), ('intervals_written', 2);
CREATE TABLE edges(
  id INTEGER PRIMARY KEY,
  client_kind INTEGER NOT NULL, client_service TEXT NOT NULL, client_ns TEXT NOT NULL, client_pod TEXT NOT NULL,
  client_address TEXT NOT NULL,
  server_kind INTEGER NOT NULL, server_service TEXT NOT NULL, server_ns TEXT NOT NULL, server_pod TEXT NOT NULL,
  server_address TEXT NOT NULL,
  port INTEGER NOT NULL, protocol INTEGER NOT NULL, dialed TEXT NOT NULL,
  UNIQUE(client_kind, client_service, client_ns, client_pod, client_address, server_kind, server_service, server_ns,
         server_pod, server_address, port, protocol, dialed));
CREATE TABLE intervals(
  start_ns INTEGER NOT NULL, tier INTEGER NOT NULL, edge_id INTEGER NOT NULL, end_ns INTEGER NOT NULL,
  connections INTEGER NOT NULL, closed INTEGER NOT NULL,
  failed_refused INTEGER NOT NULL, failed_timed_out INTEGER NOT NULL, failed_other INTEGER NOT NULL,
  resets INTEGER NOT NULL, active INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
  retransmits INTEGER NOT NULL, srtt_us INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, latency BLOB NOT NULL,
  first_seen_ns INTEGER NOT NULL, last_seen_ns INTEGER NOT NULL, anomalies TEXT,
  PRIMARY KEY(start_ns, tier, edge_id)) WITHOUT ROWID;
)sql");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* e = nullptr;
  sqlite3_stmt* i = nullptr;
  sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO edges VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &e, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO intervals VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &i, nullptr);
  ASSERT_TRUE(e && i) << sqlite3_errmsg(db);
  int64_t id = 0;
  for (const auto& [tier, r] : rows) {
    sqlite3_bind_int64(e, 1, ++id);
    int c = 2;
    for (const auto* end : {&r.client, &r.server}) {
      sqlite3_bind_int64(e, c++, int64_t(end->kind));
      for (const auto* t : {&end->service, &end->ns, &end->pod, &end->address})
        sqlite3_bind_text(e, c++, t->c_str(), -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(e, 12, r.port);
    sqlite3_bind_int64(e, 13, int64_t(r.protocol));
    sqlite3_bind_text(e, 14, r.dialed.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(e), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(e);
    std::string lat(kLatencyBuckets * 8, '\0');
    for (size_t k = 0; k < kLatencyBuckets; ++k)
      for (size_t byte = 0; byte < 8; ++byte) lat[k * 8 + byte] = char((r.latency[k] >> (8 * byte)) & 0xff);
    c = 1;
    for (uint64_t v : {r.start_ns, uint64_t(tier), uint64_t(id), r.end_ns, r.connections, r.closed, r.failed_refused,
                       r.failed_timed_out, r.failed_other, r.resets, r.active, r.bytes_sent, r.bytes_received,
                       r.retransmits, uint64_t(r.srtt_us), r.latency_sum_us})
      sqlite3_bind_int64(i, c++, int64_t(v));
    sqlite3_bind_blob(i, c++, lat.data(), int(lat.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(i, c++, int64_t(r.first_seen_ns));
    sqlite3_bind_int64(i, c++, int64_t(r.last_seen_ns));
    if (r.anomalies.empty()) sqlite3_bind_null(i, c);
    else sqlite3_bind_text(i, c, R"([{"reason":"failure_rate","first":5,"last":6,"windows":1,"value":0.5,"baseline":0.01}])", -1, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(i), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(i);
  }
  sqlite3_finalize(e);
  sqlite3_finalize(i);
  sqlite3_close(db);
}

TEST(HistoryStore, V1FileIsMigratedRowForRow) {
  TempDir d;
  const auto p = d.file("h.db");
  auto a = row("frontend", "cart", 8080, kT0);
  a.dialed = "10.96.0.10:80";
  a.anomalies.push_back({"failure_rate", 5, 6, 1, 0.5, 0.01});
  auto b = row("cart", "redis", 6379, kT0);
  b.end_ns = kT0 + 20'000'000'000;  // partial
  auto c = row("web", "cart", 8080, kT0 - kHourNs, 10 * kMinuteNs);  // a 10-minute row
  write_v1(p, {{0, a}, {0, b}, {1, c}});

  auto ro = Store::open(p, {}, true);
  ASSERT_FALSE(ro);  // a reader never migrates
  EXPECT_NE(ro.error().str().find("schema version 1"), std::string::npos) << ro.error().str();
  {
    auto s = open_rw(p);
    auto rows = s.rows(kT0 - kHourNs, kT0 + kMinuteNs);
    ASSERT_TRUE(rows) << rows.error().str();
    ASSERT_EQ(rows->size(), 3u);
    EXPECT_EQ((*rows)[0], c);
    EXPECT_EQ((*rows)[1], a);
    EXPECT_EQ((*rows)[2], b);
    auto st = s.status();
    ASSERT_TRUE(st) << st.error().str();
    EXPECT_EQ(st->schema_version, kSchemaVersion);  // v1 -> v2 -> v3, one step per transaction
    EXPECT_EQ(st->counters.at("rows_migrated"), 3u);
    EXPECT_EQ(st->counters.at("rows_written"), 3u);  // the v1 counters stay
    EXPECT_EQ(st->rows_by_width[10 * kMinuteNs], 1u);
    // The migrated file takes new rows of known edges under their old ids.
    auto later = row("frontend", "cart", 8080, kT0 + kMinuteNs);
    later.dialed = a.dialed;
    ASSERT_TRUE(s.write({later}, kT0 + 2 * kMinuteNs));
    EXPECT_EQ(s.status()->edges, 3u);
    auto chk = s.integrity_check();
    ASSERT_TRUE(chk);
    EXPECT_EQ(*chk, "ok");
  }
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM sqlite_master WHERE name = 'intervals_v1'"), 0);
  auto again = Store::open(p, {}, true);  // now readable
  ASSERT_TRUE(again) << again.error().str();
}

// A v2 file as hostscope wrote it before edges had workload and Go module columns, frozen here like write_v1. Rows
// are written in v2's compact form; `edges` gives each row's edge id (ids need not be dense: edges come and go).
void write_v2(const std::string& path, const std::vector<std::tuple<int64_t, int, IntervalRow>>& rows) {
  sql_exec(path, R"sql(
PRAGMA auto_vacuum = INCREMENTAL;
CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta VALUES('schema_version', 2), ('rows_written', 4), ('intervals_written', 2), ('max_minute_row_ns', 60000000000);
CREATE TABLE edges(
  id INTEGER PRIMARY KEY,
  client_kind INTEGER NOT NULL, client_service TEXT NOT NULL, client_ns TEXT NOT NULL, client_pod TEXT NOT NULL,
  client_address TEXT NOT NULL,
  server_kind INTEGER NOT NULL, server_service TEXT NOT NULL, server_ns TEXT NOT NULL, server_pod TEXT NOT NULL,
  server_address TEXT NOT NULL,
  port INTEGER NOT NULL, protocol INTEGER NOT NULL, dialed TEXT NOT NULL,
  UNIQUE(client_kind, client_service, client_ns, client_pod, client_address, server_kind, server_service, server_ns,
         server_pod, server_address, port, protocol, dialed));
CREATE TABLE intervals(
  start_ns INTEGER NOT NULL, tier INTEGER NOT NULL, edge_id INTEGER NOT NULL, len_ns INTEGER,
  connections INTEGER NOT NULL, closed INTEGER NOT NULL,
  failed_refused INTEGER NOT NULL, failed_timed_out INTEGER NOT NULL, failed_other INTEGER NOT NULL,
  resets INTEGER NOT NULL, active INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
  retransmits INTEGER NOT NULL, srtt_us INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, latency BLOB,
  first_seen_off INTEGER NOT NULL, last_seen_off INTEGER NOT NULL, anomalies TEXT,
  PRIMARY KEY(start_ns, tier, edge_id)) WITHOUT ROWID;
)sql");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* e = nullptr;
  sqlite3_stmt* i = nullptr;
  sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO edges VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &e, nullptr);
  sqlite3_prepare_v2(db, "INSERT INTO intervals VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &i, nullptr);
  ASSERT_TRUE(e && i) << sqlite3_errmsg(db);
  const uint64_t widths[] = {kMinuteNs, 10 * kMinuteNs, kHourNs};
  for (const auto& [id, tier, r] : rows) {
    sqlite3_bind_int64(e, 1, id);
    int c = 2;
    for (const auto* end : {&r.client, &r.server}) {
      sqlite3_bind_int64(e, c++, int64_t(end->kind));
      for (const auto* t : {&end->service, &end->ns, &end->pod, &end->address})
        sqlite3_bind_text(e, c++, t->c_str(), -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(e, 12, r.port);
    sqlite3_bind_int64(e, 13, int64_t(r.protocol));
    sqlite3_bind_text(e, 14, r.dialed.c_str(), -1, SQLITE_TRANSIENT);
    ASSERT_EQ(sqlite3_step(e), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(e);
    // v2's latency blob: (bucket index, LEB128 count) for each bucket that is not zero; counts here are < 128.
    std::string lat;
    for (size_t k = 0; k < kLatencyBuckets; ++k)
      if (r.latency[k]) {
        ASSERT_LT(r.latency[k], 128u);
        lat += char(k);
        lat += char(r.latency[k]);
      }
    c = 1;
    sqlite3_bind_int64(i, c++, int64_t(r.start_ns));
    sqlite3_bind_int64(i, c++, tier);
    sqlite3_bind_int64(i, c++, id);
    if (r.end_ns - r.start_ns == widths[tier]) sqlite3_bind_null(i, c++);
    else sqlite3_bind_int64(i, c++, int64_t(r.end_ns - r.start_ns));
    for (uint64_t v : {r.connections, r.closed, r.failed_refused, r.failed_timed_out, r.failed_other, r.resets, r.active,
                       r.bytes_sent, r.bytes_received, r.retransmits, uint64_t(r.srtt_us), r.latency_sum_us})
      sqlite3_bind_int64(i, c++, int64_t(v));
    if (lat.empty()) sqlite3_bind_null(i, c++);
    else sqlite3_bind_blob(i, c++, lat.data(), int(lat.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(i, c++, int64_t(r.first_seen_ns - r.start_ns));
    sqlite3_bind_int64(i, c++, int64_t(r.last_seen_ns - r.start_ns));
    if (r.anomalies.empty()) sqlite3_bind_null(i, c);
    else sqlite3_bind_text(i, c, R"([{"reason":"failure_rate","first":5,"last":6,"windows":1,"value":0.5,"baseline":0.01}])", -1, SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(i), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_reset(i);
  }
  sqlite3_finalize(e);
  sqlite3_finalize(i);
  sqlite3_close(db);
}

TEST(HistoryStore, V2FileIsMigratedKeepingEdgeIds) {
  TempDir d;
  const auto p = d.file("h.db");
  auto a = row("frontend", "cart", 8080, kT0);
  a.dialed = "10.96.0.10:80";
  a.anomalies.push_back({"failure_rate", 5, 6, 1, 0.5, 0.01});
  auto a2 = row("frontend", "cart", 8080, kT0 + kMinuteNs);
  a2.dialed = a.dialed;
  auto b = row("cart", "redis", 6379, kT0);
  b.end_ns = kT0 + 20'000'000'000;  // partial
  b.latency = {};
  b.latency_sum_us = 0;
  auto c = row("web", "cart", 8080, kT0 - kHourNs, 10 * kMinuteNs);  // a 10-minute row
  write_v2(p, {{7, 0, a}, {7, 0, a2}, {3, 0, b}, {12, 1, c}});

  auto ro = Store::open(p, {}, true);
  ASSERT_FALSE(ro);  // a reader never migrates
  EXPECT_NE(ro.error().str().find("schema version 2"), std::string::npos) << ro.error().str();
  {
    auto s = open_rw(p);
    auto rows = s.rows(kT0 - kHourNs, kT0 + 2 * kMinuteNs);
    ASSERT_TRUE(rows) << rows.error().str();
    // Every row as it was, the new fields empty (row() leaves them so), in (start, tier, edge id) order.
    ASSERT_EQ(rows->size(), 4u);
    EXPECT_EQ((*rows)[0], c);
    EXPECT_EQ((*rows)[1], b);
    EXPECT_EQ((*rows)[2], a);
    EXPECT_EQ((*rows)[3], a2);
    auto st = s.status();
    ASSERT_TRUE(st) << st.error().str();
    EXPECT_EQ(st->schema_version, kSchemaVersion);
    EXPECT_EQ(st->edges, 3u);
    EXPECT_EQ(st->counters.at("rows_written"), 4u);  // the v2 counters stay
    EXPECT_EQ(st->counters.count("rows_migrated"), 0u) << "rows are not touched: only the edges table is rebuilt";
    // The migrated file takes new rows of a known edge under its old id; the same edge seen with a Go module is a
    // new identity.
    auto later = row("frontend", "cart", 8080, kT0 + 2 * kMinuteNs);
    later.dialed = a.dialed;
    ASSERT_TRUE(s.write({later}, kT0 + 3 * kMinuteNs));
    EXPECT_EQ(s.status()->edges, 3u);
    later.start_ns += kMinuteNs;
    later.end_ns += kMinuteNs;
    later.client.go_module = "github.com/acme/frontend@v1.2.0";
    ASSERT_TRUE(s.write({later}, kT0 + 4 * kMinuteNs));
    EXPECT_EQ(s.status()->edges, 4u);
    auto chk = s.integrity_check();
    ASSERT_TRUE(chk);
    EXPECT_EQ(*chk, "ok");
  }
  // The ids the rows referred to are the edges' ids still.
  EXPECT_EQ(sql_int(p, "SELECT id FROM edges WHERE client_service = 'frontend' AND client_go_module = ''"), 7);
  EXPECT_EQ(sql_int(p, "SELECT id FROM edges WHERE client_service = 'cart'"), 3);
  EXPECT_EQ(sql_int(p, "SELECT id FROM edges WHERE client_service = 'web'"), 12);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals WHERE edge_id = 7"), 3);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM edges WHERE client_workload = '' AND client_go_module = '' AND "
                       "server_workload = '' AND server_go_module = ''"),
            3);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'edges_v%'"), 0);
  auto again = Store::open(p, {}, true);  // now readable
  ASSERT_TRUE(again) << again.error().str();
  auto snap = again->topology(kT0, kT0 + 4 * kMinuteNs);
  ASSERT_TRUE(snap) << snap.error().str();
  ASSERT_EQ(snap->edges.size(), 2u);  // frontend -> cart (both identities) and cart -> redis
  for (const auto& e : snap->edges)
    if (e.client.service == "frontend") {
      EXPECT_EQ(e.connections, 40u);
      EXPECT_EQ(e.client.go_module, "github.com/acme/frontend@v1.2.0");  // the latest row's
    }
}

// More minute rows than the bound holds: the oldest are rolled up (to 10 minutes, then to hours) before anything is
// evicted, so the whole span stays, coarser where it is older.
TEST(HistoryStore, SizeBoundRollsUpBeforeItEvicts) {
  TempDir d;
  StoreOptions o;
  o.max_bytes = 512 * 1024;
  auto s = open_rw(d.file("h.db"), o);
  const uint64_t edges = 40, minutes = 8 * 60;
  for (uint64_t m = 0; m < minutes; ++m) {
    std::vector<IntervalRow> rows;
    for (uint64_t e = 0; e < edges; ++e) rows.push_back(row("client" + std::to_string(e), "server", 80, kT0 + m * kMinuteNs));
    ASSERT_TRUE(s.write(rows, kT0 + (m + 1) * kMinuteNs));
    ASSERT_TRUE(s.maintain(kT0 + (m + 1) * kMinuteNs));
  }
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_LE(st->used_bytes, o.max_bytes);
  EXPECT_EQ(st->counters.at("rows_evicted_size"), 0u);
  EXPECT_EQ(st->counters.at("rows_rolled_up"), 0u);  // nothing is 24 h old: all of it was the size bound's
  EXPECT_GT(st->counters.at("rows_rolled_up_early"), 0u);
  EXPECT_GT(st->rows_by_width[kHourNs], 0u);
  EXPECT_GT(st->rows_by_width[kMinuteNs], 0u);
  EXPECT_LT(st->rows, edges * minutes);
  // The whole span is still there, every connection counted once.
  EXPECT_EQ(st->oldest_ns, kT0);
  EXPECT_EQ(st->newest_ns, kT0 + minutes * kMinuteNs);
  auto all = s.topology(kT0, kT0 + minutes * kMinuteNs);
  ASSERT_TRUE(all) << all.error().str();
  ASSERT_EQ(all->edges.size(), edges);
  for (const auto& e : all->edges) EXPECT_EQ(e.connections, 10 * minutes);
  // The recent buckets' summaries count toward the bound and add up as their minute rows do.
  EXPECT_GT(sql_int(d.file("h.db"), "SELECT count(*) FROM summaries"), 0);
  expect_sum_of_rows(s, kT0, kT0 + minutes * kMinuteNs);
  expect_sum_of_rows(s, kT0 + (minutes - 95) * kMinuteNs, kT0 + (minutes - 5) * kMinuteNs);
  // The newest minute at minute resolution, the oldest hour in one row per edge.
  auto last = s.rows(kT0 + (minutes - 1) * kMinuteNs, kT0 + minutes * kMinuteNs);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->size(), edges);
  EXPECT_EQ((*last)[0].end_ns - (*last)[0].start_ns, kMinuteNs);
  auto first = s.rows(kT0, kT0 + 1);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), edges);
  EXPECT_EQ((*first)[0].end_ns - (*first)[0].start_ns, kHourNs);

  // When even hour rows do not fit, the oldest go (counted), newest first kept.
  o.max_bytes = 40 * 1024;  // about seven pages are the schema's own
  auto small = open_rw(d.file("h.db"), o);
  ASSERT_TRUE(small.maintain(kT0 + minutes * kMinuteNs));
  st = small.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_LE(st->used_bytes, o.max_bytes);
  EXPECT_GT(st->counters.at("rows_evicted_size"), 0u);
  EXPECT_EQ(st->newest_ns, kT0 + minutes * kMinuteNs);
  EXPECT_GT(st->oldest_ns, kT0);
  // No summary is left of a bucket that lost rows.
  EXPECT_EQ(sql_int(d.file("h.db"), "SELECT count(*) FROM summaries WHERE start_ns <= (SELECT min(start_ns) FROM intervals)"),
            0);
  expect_sum_of_rows(small, kT0, kT0 + minutes * kMinuteNs);
}

// Dense minutes (every edge in almost every minute) starting and ending off the 10-minute boundaries, on a fake clock:
// closed 10-minute buckets get summary rows (docs/topology.md, "History"), and a window read through them gives
// exactly what adding up its minute rows gives: counts, bytes, latency buckets, failures, first/last seen, the
// latest attributes, flags. Minutes written again into a summarized bucket, and the roll-up at 24 h, drop its
// summary.
std::vector<IntervalRow> dense_minute(uint64_t start, uint64_t edges, uint64_t m, uint64_t t0) {
  std::vector<IntervalRow> rows;
  for (uint64_t e = 0; e < edges; ++e) {
    if (e == 5 && m % 3 == 1) continue;  // an edge missing in some minutes
    auto r = synth::row(e, start, kMinuteNs);
    if (e == 2 && m >= 20) r.client.pod = "svc-2-new";  // a new identity of the same edge key, mid-bucket
    if (e == 4 && m >= 8) r.dialed = "10.96.0.4:80";
    if (e == 3 && m >= 9 && m < 30)  // one flag raised and extended minute by minute
      r.anomalies.push_back({"failure_rate", t0 + 9 * kMinuteNs, start + 30'000'000'000, uint32_t(m - 8),
                             0.01 * double(m), 0.01});
    rows.push_back(std::move(r));
  }
  return rows;
}

TEST(HistoryStore, TenMinuteSummariesAddUpExactlyLikeTheMinuteRows) {
  TempDir d;
  const auto p = d.file("h.db");
  auto s = open_rw(p);
  const uint64_t edges = 12, minutes = 45, t0 = kT0 + 3 * kMinuteNs;  // minutes 3..47 past an hour boundary
  for (uint64_t m = 0; m < minutes; ++m) {
    const uint64_t start = t0 + m * kMinuteNs;
    ASSERT_TRUE(s.write(dense_minute(start, edges, m, t0), start + kMinuteNs));
    ASSERT_TRUE(s.maintain(start + kMinuteNs));
  }
  // Buckets [0, 10) (minutes 3..9), [10, 20), [20, 30) and [30, 40) have closed; [40, 50) has not.
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 4);
  EXPECT_EQ(sql_int(p, "SELECT min(start_ns) FROM summarized"), int64_t(kT0));
  // One per edge identity and bucket: edge 4 has two in [10, 20) (a new DNAT destination), edge 2 two in [20, 30).
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summaries"), 4 * int64_t(edges) + 2);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals"), int64_t(minutes * edges - 15));  // the minute rows stay
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->summary_rows, 4 * edges + 2);
  EXPECT_EQ(st->rows, minutes * edges - 15);
  const uint64_t M = kMinuteNs;
  const std::vector<std::pair<uint64_t, uint64_t>> windows = {
      {kT0, kT0 + 48 * M},           {kT0 + 5 * M, kT0 + 45 * M}, {kT0 + 10 * M, kT0 + 40 * M},
      {kT0 + 2 * M, kT0 + 21 * M},   {kT0 + 35 * M, kT0 + 48 * M}, {kT0 + 15 * M, kT0 + 15 * M + 1},
      {kT0 + 9 * M, kT0 + 31 * M},   {kT0 + 20 * M, kT0 + 30 * M}, {kT0 + 19 * M + 1, kT0 + 40 * M - 1},
      {kT0 - kHourNs, kT0 + kDayNs},
  };
  for (const auto& [from, to] : windows) expect_sum_of_rows(s, from, to);
  // The same through a read-only store, as the CLI reads it.
  {
    auto ro = Store::open(p, {}, true);
    ASSERT_TRUE(ro) << ro.error().str();
    for (const auto& [from, to] : windows) expect_sum_of_rows(*ro, from, to);
  }
  // A summary is used: the whole of [10, 40) is three summary rows per edge identity.
  {
    auto all = s.topology(kT0 + 10 * M, kT0 + 40 * M);
    ASSERT_TRUE(all);
    uint64_t connections = 0, want = 0;
    for (const auto& e : all->edges) connections += e.connections;
    for (uint64_t m = 7; m < 37; ++m)
      for (const auto& r : dense_minute(t0 + m * M, edges, m, t0)) want += r.connections;
    EXPECT_EQ(connections, want);
  }

  // Late minutes written into a summarized bucket (a queued interval, a clock set back): its summary and the later
  // ones go, and come back with the next maintenance, exact again.
  auto late = dense_minute(kT0 + 15 * M, edges, 12, t0);
  for (auto& r : late) r.connections += 1000;
  ASSERT_TRUE(s.write(late, kT0 + 48 * M));
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 1);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summaries WHERE start_ns >= " + std::to_string(kT0 + 10 * M)), 0);
  for (const auto& [from, to] : windows) expect_sum_of_rows(s, from, to);
  ASSERT_TRUE(s.maintain(kT0 + 48 * M));
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 4);
  for (const auto& [from, to] : windows) expect_sum_of_rows(s, from, to);

  // 24 h later the first two buckets roll up into 10-minute rows: their summaries go with their minute rows, and the
  // counters count the minute rows only. Bucket [40, 50) has closed meanwhile: it is summarized.
  const int64_t first_two = sql_int(p, "SELECT count(*) FROM intervals WHERE start_ns < " + std::to_string(kT0 + 20 * M));
  const auto minutes_of_first_two = sum_of_rows(s, kT0, kT0 + 20 * M);
  ASSERT_TRUE(s.maintain(kT0 + 20 * M + kDayNs + 1));
  // The 10-minute rows the roll-up wrote (copied from the summaries) add up to what the minute rows did.
  EXPECT_TRUE(sum_of_rows(s, kT0, kT0 + 20 * M) == minutes_of_first_two);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals WHERE tier = 0 AND start_ns < " + std::to_string(kT0 + 20 * M)), 0);
  st = s.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->counters.at("rows_rolled_up"), uint64_t(first_two));
  EXPECT_EQ(st->rows_by_width[10 * kMinuteNs], 2 * edges + 1);  // edge 4's two identities in [10, 20)
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 3);
  EXPECT_EQ(sql_int(p, "SELECT min(start_ns) FROM summaries"), int64_t(kT0 + 20 * M));
  for (const auto& [from, to] : windows) expect_sum_of_rows(s, from, to);
  auto chk = s.integrity_check();
  ASSERT_TRUE(chk);
  EXPECT_EQ(*chk, "ok");
}

// Sparse buckets are not summarized: when a bucket's edges have about one row each, a summary would cost as much as
// the minute rows and save nothing.
TEST(HistoryStore, SparseBucketsAreNotSummarized) {
  TempDir d;
  const auto p = d.file("h.db");
  auto s = open_rw(p);
  for (uint64_t m = 0; m < 21; ++m) {
    // A different edge every minute (pod churn), and one edge every minute.
    ASSERT_TRUE(s.write({row("c" + std::to_string(m), "s", 80, kT0 + m * kMinuteNs), row("a", "b", 80, kT0 + m * kMinuteNs)},
                        kT0 + (m + 1) * kMinuteNs));
    ASSERT_TRUE(s.maintain(kT0 + (m + 1) * kMinuteNs));
  }
  // 20 rows in 11 edges per bucket: more than half as many summary rows as minute rows.
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summaries"), 0);
  EXPECT_EQ(sql_int(p, "SELECT value FROM meta WHERE key = 'summarized_until_ns'"), int64_t(kT0 + 20 * kMinuteNs));
  expect_sum_of_rows(s, kT0, kT0 + 21 * kMinuteNs);
}

// v3 is v4 without the summaries (the tables summaries and summarized, the meta key summarized_until_ns): a v3 file is
// a v4 file with them dropped and its version set back. Migrated, it keeps every row and counter; its closed buckets
// are summarized by the maintenance that follows, a few per call.
TEST(HistoryStore, V3FileIsMigratedAndSummarizedAfterwards) {
  TempDir d;
  const auto p = d.file("h.db");
  const uint64_t edges = 8, minutes = 90;
  {
    auto s = open_rw(p);
    for (uint64_t m = 0; m < minutes; ++m)
      ASSERT_TRUE(s.write(dense_minute(kT0 + m * kMinuteNs, edges, m, kT0), kT0 + (m + 1) * kMinuteNs));
  }
  sql_exec(p, "DROP TABLE summaries; DROP TABLE summarized; DELETE FROM meta WHERE key = 'summarized_until_ns';"
              "UPDATE meta SET value = 3 WHERE key = 'schema_version'");
  const int64_t rows = sql_int(p, "SELECT count(*) FROM intervals");
  ASSERT_EQ(rows, int64_t(minutes * edges - 30));
  auto ro = Store::open(p, {}, true);
  ASSERT_FALSE(ro);  // a reader never migrates
  EXPECT_NE(ro.error().str().find("schema version 3"), std::string::npos) << ro.error().str();
  auto s = open_rw(p);
  auto st = s.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->schema_version, 4);
  EXPECT_EQ(st->rows, uint64_t(rows));
  EXPECT_EQ(st->summary_rows, 0u);
  EXPECT_EQ(st->counters.at("rows_written"), uint64_t(rows));
  expect_sum_of_rows(s, kT0, kT0 + minutes * kMinuteNs);
  // Nine closed buckets: six the first maintenance, the rest the next.
  ASSERT_TRUE(s.maintain(kT0 + minutes * kMinuteNs));
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 6);
  ASSERT_TRUE(s.maintain(kT0 + minutes * kMinuteNs));
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM summarized"), 9);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals"), rows);
  for (uint64_t from : {kT0, kT0 + 7 * kMinuteNs, kT0 + 30 * kMinuteNs})
    expect_sum_of_rows(s, from, from + kHourNs);
}

TEST(HistoryStore, NewerSchemaIsRefusedAndLeftUntouched) {
  TempDir d;
  const auto p = d.file("h.db");
  {
    auto s = open_rw(p);
    ASSERT_TRUE(s.write({row("a", "b", 80, kT0)}, kT0));
  }
  sql_exec(p, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
  for (bool ro : {false, true}) {
    auto s = Store::open(p, {}, ro);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().str().find("schema version 99 is newer"), std::string::npos) << s.error().str();
    EXPECT_NE(s.error().str().find(p), std::string::npos) << s.error().str();
  }
  EXPECT_EQ(sql_int(p, "SELECT value FROM meta WHERE key = 'schema_version'"), 99);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals"), 1);
}

TEST(HistoryStore, OlderSchemaIsMigratedKeepingWhatIsThere) {
  TempDir d;
  const auto p = d.file("h.db");
  // Version 0: a meta table without tables of ours, and somebody's note that must survive.
  sql_exec(p, "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
              "INSERT INTO meta VALUES('schema_version', 0);"
              "CREATE TABLE notes(t TEXT); INSERT INTO notes VALUES('keep me');");
  auto ro = Store::open(p, {}, true);
  ASSERT_FALSE(ro);  // a reader never migrates
  EXPECT_NE(ro.error().str().find("schema version 0"), std::string::npos) << ro.error().str();
  {
    auto s = open_rw(p);
    ASSERT_TRUE(s.write({row("a", "b", 80, kT0)}, kT0));
  }
  EXPECT_EQ(sql_int(p, "SELECT value FROM meta WHERE key = 'schema_version'"), kSchemaVersion);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM notes"), 1);
  EXPECT_EQ(sql_int(p, "SELECT count(*) FROM intervals"), 1);
}

TEST(HistoryStore, CorruptFileIsAnErrorNotACrash) {
  TempDir d;
  const auto garbage = d.file("garbage.db");
  {
    std::ofstream f(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(char(i * 7 + 3));
  }
  for (bool ro : {false, true}) {
    auto s = Store::open(garbage, {}, ro);
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().str().find(garbage), std::string::npos) << s.error().str();
    EXPECT_NE(s.error().str().find("not a database"), std::string::npos) << s.error().str();
  }
  // A real store with a page overwritten in the middle: refused by the open's check, or its reads fail; never a crash.
  const auto p = d.file("h.db");
  {
    auto s = open_rw(p);
    for (int m = 0; m < 2000; ++m) ASSERT_TRUE(s.write({row("a", "b", 80, kT0 + uint64_t(m) * kMinuteNs)}, kT0));
  }
  ASSERT_GT(fs::file_size(p), 16u * 4096);
  {
    std::fstream f(p, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(8 * 4096);
    for (int i = 0; i < 4096; ++i) f.put(char(0xA5));
  }
  auto s = Store::open(p, {}, false);
  if (s) {
    auto chk = s->integrity_check();
    EXPECT_TRUE(!chk || *chk != "ok");
  } else {
    EXPECT_NE(s.error().str().find(p), std::string::npos) << s.error().str();
  }
}

TEST(HistoryStore, IntegrityAfterAWriterKilledMidWrite) {
  TempDir d;
  const auto p = d.file("h.db");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(ready[0]);
    auto s = Store::open(p, {}, false);
    if (!s) _exit(1);
    for (uint64_t m = 0;; ++m) {
      std::vector<IntervalRow> rows;
      for (int e = 0; e < 50; ++e) rows.push_back(row("c" + std::to_string(e), "s", 80, kT0 + m * kMinuteNs));
      if (!s->write(rows, kT0 + m * kMinuteNs) || !s->maintain(kT0 + m * kMinuteNs)) _exit(2);
      char c = 'w';
      if (m == 20 && write(ready[1], &c, 1) != 1) _exit(3);
    }
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);  // 21 intervals committed, more under way
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  close(ready[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  auto s = Store::open(p, {}, false);  // recovers the WAL
  ASSERT_TRUE(s) << s.error().str();
  auto chk = s->integrity_check();
  ASSERT_TRUE(chk) << chk.error().str();
  EXPECT_EQ(*chk, "ok");
  auto st = s->status();
  ASSERT_TRUE(st);
  // Whole intervals only: every committed interval has all its rows.
  EXPECT_GE(st->counters.at("intervals_written"), 21u);
  EXPECT_EQ(st->rows, st->counters.at("intervals_written") * 50);
}

TEST(TimeArg, ParsesNowRelativeAndRfc3339) {
  const uint64_t now = kT0 + 123;
  EXPECT_EQ(*parse_time_arg("now", now), now);
  EXPECT_EQ(*parse_time_arg("-15m", now), now - 15 * kMinuteNs);
  EXPECT_EQ(*parse_time_arg("-2h", now), now - 2 * kHourNs);
  EXPECT_EQ(*parse_time_arg("-7d", now), now - 7 * kDayNs);
  EXPECT_EQ(*parse_time_arg("2024-05-01T03:12:00Z", now), 1714533120ull * 1'000'000'000ull);
  EXPECT_EQ(*parse_time_arg("2024-05-01T03:12:00.5Z", now), 1714533120ull * 1'000'000'000ull + 500'000'000ull);
  for (const char* bad : {"", "-", "-0m", "15m", "-1.5h", "yesterday", "2024-05-01 03:12:00", "-99999999999d"}) {
    auto r = parse_time_arg(bad, now);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().str().find(std::string("'") + bad + "'"), std::string::npos) << r.error().str();
    }
  }
}

}  // namespace
}  // namespace hostscope::history
