// The history's writer side: the interval delta of two snapshots, the bounded queue, a store that cannot be used.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/history/writer.h"

namespace hostscope::history {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kT0 = 1'700'000'000ull * 1'000'000'000ull / kHourNs * kHourNs;

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

topology::EdgeSnapshot edge(const std::string& client, uint64_t conns, uint64_t first_seen, uint64_t last_seen) {
  topology::EdgeSnapshot e;
  e.client = {topology::NodeKind::Service, client, "shop", "", "10.0.0.1"};
  e.server = {topology::NodeKind::Service, "cart", "shop", "", "10.0.0.2"};
  e.port = 8080;
  e.connections = conns;
  e.closed = conns;
  e.bytes_sent = conns * 100;
  e.failed["refused"] = conns / 2;
  e.latency.samples = conns;
  // All samples below 128 us: cumulative below each bound.
  e.latency_buckets.assign(topology::kLatencyExportBoundsUs.size(), conns);
  for (size_t i = 0; i < 3; ++i) e.latency_buckets[i] = 0;
  e.first_seen_ns = first_seen;
  e.last_seen_ns = last_seen;
  return e;
}

topology::TopologySnapshot snap(std::vector<topology::EdgeSnapshot> edges) {
  topology::TopologySnapshot s;
  s.edges = std::move(edges);
  topology::canonicalize(s);
  return s;
}

TEST(HistoryDelta, RowsAreTheDifferenceOfTwoSnapshots) {
  auto prev = snap({edge("frontend", 10, kT0, kT0 + 5), edge("idle", 3, kT0, kT0 + 5)});
  auto cur = snap({edge("frontend", 25, kT0, kT0 + kMinuteNs + 5), edge("idle", 3, kT0, kT0 + 5),
                   edge("new", 4, kT0 + kMinuteNs + 1, kT0 + kMinuteNs + 2)});
  auto rows = interval_rows(prev, cur, kT0 + kMinuteNs, kT0 + 2 * kMinuteNs);
  ASSERT_EQ(rows.size(), 2u);  // the idle edge has nothing to record
  const auto& f = rows[0].client.service == "frontend" ? rows[0] : rows[1];
  const auto& n = rows[0].client.service == "frontend" ? rows[1] : rows[0];
  EXPECT_EQ(f.connections, 15u);
  EXPECT_EQ(f.bytes_sent, 1500u);
  EXPECT_EQ(f.failed_refused, 12u - 5u);
  EXPECT_EQ(f.latency_samples(), 15u);
  EXPECT_EQ(f.latency[3], 15u);  // [64, 128)
  EXPECT_EQ(f.start_ns, kT0 + kMinuteNs);
  EXPECT_EQ(n.connections, 4u);
  // An edge removed and created again in between (first_seen moved) starts from zero.
  auto again = snap({edge("frontend", 2, kT0 + 2 * kMinuteNs, kT0 + 2 * kMinuteNs + 1)});
  rows = interval_rows(cur, again, kT0 + 2 * kMinuteNs, kT0 + 3 * kMinuteNs);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].connections, 2u);
}

TEST(HistoryWriter, FullQueueDropsTheIntervalAndCounts) {
  TempDir d;
  WriterOptions o;
  o.path = d.file("h.db");
  o.queue = 4;
  o.clock = [] { return kT0; };
  Writer w(o);
  ASSERT_TRUE(w.start(/*thread=*/false));
  for (int i = 0; i < 6; ++i) {
    Interval iv{kT0 + uint64_t(i) * kMinuteNs, kT0 + uint64_t(i + 1) * kMinuteNs, {}};
    EXPECT_EQ(w.submit(std::move(iv)), i < 4) << i;
  }
  auto st = w.stats();
  EXPECT_EQ(st.intervals_queued, 4u);
  EXPECT_EQ(st.intervals_dropped, 2u);
  while (w.process_one()) {
  }
  st = w.stats();
  EXPECT_TRUE(st.ok);
  EXPECT_EQ(st.intervals_written, 4u);
  w.stop();
  auto s = Store::open(o.path, {}, true);
  ASSERT_TRUE(s) << s.error().str();
  auto status = s->status();
  ASSERT_TRUE(status);
  EXPECT_EQ(status->counters.at("intervals_written"), 4u);
  EXPECT_EQ(status->counters.at("intervals_dropped"), 2u);  // kept in the file for `history status`
}

TEST(HistoryWriter, UnusableFileIsLoggedAndHistoryStaysOff) {
  TempDir d;
  const auto p = d.file("garbage.db");
  {
    std::ofstream f(p, std::ios::binary);
    f << std::string(8192, 'x');
  }
  WriterOptions o;
  o.path = p;
  Writer w(o);
  EXPECT_FALSE(w.start());
  auto st = w.stats();
  EXPECT_FALSE(st.ok);
  EXPECT_NE(st.error.find(p), std::string::npos) << st.error;
  EXPECT_FALSE(w.submit(Interval{kT0, kT0 + kMinuteNs, {}}));
  EXPECT_EQ(w.stats().intervals_dropped, 1u);
  EXPECT_EQ(fs::file_size(p), 8192u);  // untouched

  WriterOptions o2;
  o2.path = d.file("no/such/dir/h.db");
  Writer w2(o2);
  EXPECT_FALSE(w2.start());
  EXPECT_NE(w2.stats().error.find("open"), std::string::npos) << w2.stats().error;
}

TEST(HistoryRecorder, RecordsEachIntervalThroughTheWriter) {
  TempDir d;
  WriterOptions o;
  o.path = d.file("h.db");
  uint64_t now = kT0 + 10;
  o.clock = [&] { return now; };
  Writer w(o);
  ASSERT_TRUE(w.start(false));
  uint64_t conns = 0;
  Recorder rec([&] { return snap({edge("frontend", conns, kT0, now)}); }, w, kMinuteNs, [&] { return now; });
  conns = 7;
  now = kT0 + kMinuteNs;
  rec.record(now);
  conns = 12;
  now = kT0 + 2 * kMinuteNs;
  rec.record(now);
  while (w.process_one()) {
  }
  auto s = Store::open(o.path, {}, true);
  ASSERT_TRUE(s) << s.error().str();
  auto first = s->topology(kT0 + 30, kT0 + 31);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->edges.size(), 1u);
  EXPECT_EQ(first->edges[0].connections, 7u);
  auto second = s->topology(kT0 + kMinuteNs, kT0 + kMinuteNs + 1);
  ASSERT_TRUE(second);
  ASSERT_EQ(second->edges.size(), 1u);
  EXPECT_EQ(second->edges[0].connections, 5u);
}

}  // namespace
}  // namespace hostscope::history
