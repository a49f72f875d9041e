// The topology history end to end: a fresh `hostscope agent` with history on (topology_scenario.h's simulated node),
// known loopback connections, the agent stopped (its last partial minute is written on the way out) and started
// again, then the stored counts read back with `hostscope topology --between/--at` and `hostscope history status`.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "agent/history/store.h"
#include "agent/util/clock.h"
#include "common/topology_json.h"
#include "topology_scenario.h"

namespace hostscope::testing {
namespace {

using nlohmann::json;

constexpr int kBytes = 1500;

class HistoryAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    char tmpl[] = "/tmp/hs-history-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    db_ = dir_ + "/history.db";
    node_ = std::make_unique<TopologyNode>(std::vector<std::string>{"hist-web", "hist-cart"},
                                           "history:\n  enabled: true\n  path: " + db_ + "\n");
    HS_REQUIRE_SETUP(node_->error().empty(), node_->error());
  }
  void TearDown() override {
    node_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // `n` connections hist-web -> hist-cart on loopback, each echoing kBytes; waits until the agent counted them.
  void connections(int n) {
    Child cart(node_->run("hist-cart", {"server", "127.0.0.1", "0", std::to_string(kBytes), std::to_string(n)}));
    int port = ready_port(cart);
    ASSERT_GT(port, 0);
    port_ = port;
    Child web(node_->run("hist-web", {"client", "127.0.0.1", std::to_string(port), std::to_string(kBytes),
                                      "concurrent=" + std::to_string(n)}));
    ASSERT_EQ(web.wait(), 0);
    ASSERT_EQ(cart.wait(), 0);
    bool counted = eventually(
        [&] {
          nudge_agent();
          auto e = edge(sh(hostscope_bin() + " topology -o json --socket " + node_->sock()));
          return !e.is_null() && e["closed"] == n && e["connections"] == n;
        },
        std::chrono::seconds(20));
    ASSERT_TRUE(counted) << "the agent did not count " << n << " connections";
  }

  // The hist-web -> hist-cart edge of a topology JSON reply, null when missing.
  json edge(const CmdResult& r) const {
    if (r.status != 0) return nullptr;
    auto s = json::parse(r.out.substr(std::min(r.out.find('{'), r.out.size())), nullptr, false);
    if (s.is_discarded() || !s.contains("edges")) return nullptr;
    for (const auto& e : s["edges"])
      if (e["client"]["service"] == "hist-web" && e["server"]["service"] == "hist-cart" && e["port"] == port_) return e;
    return nullptr;
  }

  CmdResult topology(const std::string& when) const {
    return sh("(" + hostscope_bin() + " topology -o json --history " + db_ + " " + when + " 2>/dev/null)");
  }

  std::string dir_, db_;
  int port_ = 0;
  std::unique_ptr<TopologyNode> node_;
};

TEST_F(HistoryAgent, CountsSurviveARestartAndAreFoundByTime) {
  const uint64_t t0 = clock_ns(CLOCK_REALTIME);
  ASSERT_TRUE(node_->start_agent()) << "hostscope agent did not answer on " << node_->sock();
  ASSERT_NO_FATAL_FAILURE(connections(5));
  const int first_port = port_;
  ASSERT_EQ(node_->stop_agent(), 0);
  const uint64_t t1 = clock_ns(CLOCK_REALTIME);

  // The agent is gone: the file alone answers.
  const std::string first = "--between " + topology::format_time(t0) + " " + topology::format_time(t1 + 1);
  auto e = edge(topology(first));
  ASSERT_FALSE(e.is_null()) << topology(first).out;
  EXPECT_EQ(e["connections"], 5);
  EXPECT_EQ(e["closed"], 5);
  EXPECT_EQ(e["bytes_sent"], 5 * kBytes);
  EXPECT_EQ(e["bytes_received"], 5 * kBytes);
  EXPECT_EQ(e["latency_us"]["samples"], 5);
  // --at the time the edge was last seen finds the interval that holds it.
  auto last_seen = topology::parse_time(e["last_seen"].get<std::string>());
  ASSERT_TRUE(last_seen);
  auto at = edge(topology("--at " + topology::format_time(*last_seen)));
  ASSERT_FALSE(at.is_null());
  EXPECT_GE(at["connections"], 1);

  // A second life of the agent adds to the same file.
  ASSERT_TRUE(node_->start_agent()) << "hostscope agent did not answer on " << node_->sock();
  ASSERT_NO_FATAL_FAILURE(connections(3));
  const int second_port = port_;
  ASSERT_EQ(node_->stop_agent(), 0);
  const uint64_t t2 = clock_ns(CLOCK_REALTIME);

  port_ = first_port;
  e = edge(topology("--between " + topology::format_time(t0) + " " + topology::format_time(t2 + 1)));
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["connections"], 5);
  port_ = second_port;
  e = edge(topology("--between " + topology::format_time(t1) + " " + topology::format_time(t2 + 1)));
  ASSERT_FALSE(e.is_null());
  EXPECT_EQ(e["connections"], 3);
  EXPECT_EQ(e["bytes_sent"], 3 * kBytes);
  // Nothing stored before the first start.
  e = edge(topology("--between " + topology::format_time(t0 - 3'600'000'000'000ull) + " " + topology::format_time(t0)));
  EXPECT_TRUE(e.is_null());

  // `topology diff` of the two lives: the first run's edge vanished, the second's appeared, with their counts.
  auto d = sh("(" + hostscope_bin() + " topology diff -o json --history " + db_ + " " + topology::format_time(t0) + ".." +
              topology::format_time(t1) + " " + topology::format_time(t1) + ".." + topology::format_time(t2 + 1) +
              " 2>&1)");
  ASSERT_EQ(d.status, 0) << d.out;
  auto dj = json::parse(d.out.substr(std::min(d.out.find('{'), d.out.size())), nullptr, false);
  ASSERT_FALSE(dj.is_discarded()) << d.out;
  json vanished, appeared;
  for (const auto& c : dj["changes"]) {
    if (c["client"]["service"] != "hist-web" || c["server"]["service"] != "hist-cart") continue;
    if (c["port"] == first_port) vanished = c;
    if (c["port"] == second_port) appeared = c;
  }
  ASSERT_FALSE(vanished.is_null()) << d.out;
  ASSERT_FALSE(appeared.is_null()) << d.out;
  EXPECT_EQ(vanished["kinds"], json({"vanished"}));
  EXPECT_EQ(vanished["before"]["connections"], 5);
  EXPECT_TRUE(vanished["after"].is_null());
  EXPECT_EQ(appeared["kinds"], json({"appeared"}));
  EXPECT_EQ(appeared["after"]["connections"], 3);

  // `top --replay` to a pipe: one block per step; one step of an hour holds both lives with their totals.
  auto rp = sh("(" + hostscope_bin() + " top --replay " + topology::format_time(t0) + " --until " +
               topology::format_time(t2 + 1) + " --step 1h --interval 0.1 --history " + db_ + " 2>&1)");
  ASSERT_EQ(rp.status, 0) << rp.out;
  EXPECT_NE(rp.out.find("source: replay of " + db_), std::string::npos) << rp.out;
  EXPECT_NE(rp.out.find("(end)"), std::string::npos) << rp.out;
  std::map<int, std::string> totals;  // port -> TOTAL column
  std::istringstream lines(rp.out);
  for (std::string l; std::getline(lines, l);) {
    std::istringstream w(l);
    std::vector<std::string> cols{std::istream_iterator<std::string>(w), std::istream_iterator<std::string>()};
    if (cols.size() >= 6 && cols[0] == "hist-web" && cols[1] == "hist-cart") totals[std::stoi(cols[2])] = cols[5];
  }
  EXPECT_EQ(totals[first_port], "5") << rp.out;
  EXPECT_EQ(totals[second_port], "3") << rp.out;

  // `policy generate --since` reads the history: both edges, the agent not running; a named file that is not there
  // is an error, not a silent fallback.
  const std::string ctx = dir_ + "/context.json";
  std::ofstream(ctx) << "{}";
  auto g = sh("(" + hostscope_bin() + " policy generate --since 1h --history " + db_ + " --context " + ctx + " 2>&1)");
  ASSERT_EQ(g.status, 0) << g.out;
  EXPECT_NE(g.out.find("hist-cart"), std::string::npos) << g.out;
  EXPECT_NE(g.out.find(std::to_string(second_port)), std::string::npos) << g.out;
  auto gm = sh("(" + hostscope_bin() + " policy generate --since 1h --history " + dir_ + "/none.db --context " + ctx +
               " 2>&1)");
  EXPECT_EQ(gm.status, 1) << gm.out;
  EXPECT_NE(gm.out.find(dir_ + "/none.db does not exist"), std::string::npos) << gm.out;

  auto st = sh(hostscope_bin() + " history status -o json --socket " + node_->sock() + " --path " + db_);
  ASSERT_EQ(st.status, 0) << st.out;
  auto j = json::parse(st.out.substr(std::min(st.out.find('{'), st.out.size())), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << st.out;
  EXPECT_EQ(j["schema_version"], history::kSchemaVersion);
  EXPECT_GE(j["counters"]["intervals_written"], 2);
  EXPECT_EQ(j["counters"]["intervals_dropped"], 0);
  EXPECT_GE(j["rows"], 2);
  EXPECT_GT(j["used_bytes"], 0);
}

}  // namespace
}  // namespace hostscope::testing
