// `topology diff`: appeared/vanished edges, rate, failure and latency changes beyond their thresholds, scaling of
// windows of different lengths, the order by impact, and both renderings. Also the time arguments the command takes
// ("yesterday 03:12").
#include <gtest/gtest.h>

#include "agent/topology/diff.h"
#include "common/time_arg.h"

namespace hostscope::topology {
namespace {

constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kT0 = 1'700'000'000ull * kSec;
constexpr WindowSpan kHourA{kT0, kT0 + 3600 * kSec};
constexpr WindowSpan kHourB{kT0 + 3600 * kSec, kT0 + 7200 * kSec};

EdgeSnapshot edge(const std::string& client, const std::string& server, uint16_t port, uint64_t conns,
                  uint64_t refused = 0, uint64_t p90_us = 0) {
  EdgeSnapshot e;
  e.client = EdgeEnd{NodeKind::Service, client, "shop", "", ""};
  e.server = EdgeEnd{NodeKind::Service, server, "shop", "", ""};
  e.port = port;
  e.connections = conns;
  if (refused) e.failed["refused"] = refused;
  if (p90_us) e.latency = {conns, p90_us / 2, p90_us, p90_us};
  return e;
}

TopologySnapshot snap(std::vector<EdgeSnapshot> edges) {
  TopologySnapshot s;
  s.edges = std::move(edges);
  canonicalize(s);
  return s;
}

std::vector<std::string> kinds_of(const TopologyDiff& d, const std::string& server) {
  for (const auto& c : d.changes)
    if (c.server.service == server) return c.kinds;
  return {};
}

TEST(TopologyDiff, AppearedVanishedAndUnchanged) {
  auto a = snap({edge("web", "api", 80, 100), edge("web", "old", 80, 50)});
  auto b = snap({edge("web", "api", 80, 110), edge("web", "new", 80, 70)});
  auto d = diff_topology(a, kHourA, b, kHourB);
  ASSERT_EQ(d.changes.size(), 2u);
  EXPECT_EQ(d.unchanged, 1u);
  EXPECT_EQ(kinds_of(d, "new"), std::vector<std::string>{"appeared"});
  EXPECT_EQ(kinds_of(d, "old"), std::vector<std::string>{"vanished"});
  // Sorted by impact: 70 attempts appeared before 50 vanished.
  EXPECT_EQ(d.changes[0].server.service, "new");
  EXPECT_FALSE(d.changes[0].before.present);
  EXPECT_FALSE(d.changes[1].after.present);
  EXPECT_DOUBLE_EQ(d.changes[1].impact, 50);
}

TEST(TopologyDiff, RateChangeNeedsThresholdAndVolume) {
  auto a = snap({edge("web", "api", 80, 100), edge("web", "quiet", 80, 4)});
  auto b = snap({edge("web", "api", 80, 40), edge("web", "quiet", 80, 1)});
  auto d = diff_topology(a, kHourA, b, kHourB);
  EXPECT_EQ(kinds_of(d, "api"), std::vector<std::string>{"rate"});
  EXPECT_TRUE(kinds_of(d, "quiet").empty()) << "4 -> 1 attempts is below min_attempts";
  EXPECT_DOUBLE_EQ(d.changes[0].impact, 60);
  EXPECT_DOUBLE_EQ(d.changes[0].before.attempts_per_s, 100.0 / 3600);
  // -40% is not a change at the default 50%, but is at 30%.
  auto b2 = snap({edge("web", "api", 80, 60)});
  EXPECT_TRUE(diff_topology(snap({edge("web", "api", 80, 100)}), kHourA, b2, kHourB).changes.empty());
  EXPECT_EQ(diff_topology(snap({edge("web", "api", 80, 100)}), kHourA, b2, kHourB, {.rate_change = 0.3}).changes.size(), 1u);
}

TEST(TopologyDiff, WindowsOfDifferentLengthAreScaled) {
  // 100 attempts in one hour against 25 in 15 minutes: the same rate, no change.
  const WindowSpan quarter{kT0 + 3600 * kSec, kT0 + 4500 * kSec};
  auto d = diff_topology(snap({edge("web", "api", 80, 100)}), kHourA, snap({edge("web", "api", 80, 25)}), quarter);
  EXPECT_TRUE(d.changes.empty());
  EXPECT_EQ(d.unchanged, 1u);
  // 100 in one hour against 100 in 15 minutes: four times the rate.
  auto d2 = diff_topology(snap({edge("web", "api", 80, 100)}), kHourA, snap({edge("web", "api", 80, 100)}), quarter);
  ASSERT_EQ(d2.changes.size(), 1u);
  EXPECT_EQ(d2.changes[0].kinds, std::vector<std::string>{"rate"});
  EXPECT_DOUBLE_EQ(d2.changes[0].impact, 75);
}

TEST(TopologyDiff, FailuresAndLatency) {
  auto a = snap({edge("web", "db", 5432, 100, 0, 1000), edge("web", "cache", 6379, 100, 0, 1000)});
  auto b = snap({edge("web", "db", 5432, 80, 20, 1000), edge("web", "cache", 6379, 100, 0, 8000)});
  auto d = diff_topology(a, kHourA, b, kHourB);
  EXPECT_EQ(kinds_of(d, "db"), std::vector<std::string>{"failures"});
  EXPECT_EQ(kinds_of(d, "cache"), std::vector<std::string>{"latency"});
  for (const auto& c : d.changes)
    if (c.server.service == "db") {
      EXPECT_DOUBLE_EQ(c.after.failure_ratio, 0.2);
      EXPECT_EQ(c.after.failed, 20u);
      EXPECT_DOUBLE_EQ(c.impact, 20);
    }
  // A latency change of less than the factor is not one.
  auto b2 = snap({edge("web", "cache", 6379, 100, 0, 1500)});
  EXPECT_TRUE(diff_topology(snap({edge("web", "cache", 6379, 100, 0, 1000)}), kHourA, b2, kHourB).changes.empty());
}

TEST(TopologyDiff, EdgesDifferByPortAndProtocol) {
  auto a = snap({edge("web", "api", 80, 100)});
  auto b = snap({edge("web", "api", 8080, 100)});
  auto d = diff_topology(a, kHourA, b, kHourB);
  ASSERT_EQ(d.changes.size(), 2u);
  EXPECT_EQ(d.unchanged, 0u);
}

TEST(TopologyDiff, Renderings) {
  auto a = snap({edge("web", "old", 80, 50), edge("web", "api", 80, 100)});
  auto b = snap({edge("web", "api", 80, 30, 10)});
  auto d = diff_topology(a, kHourA, b, kHourB);
  auto text = render_diff_table(d);
  EXPECT_NE(text.find("CHANGE"), std::string::npos) << text;
  EXPECT_NE(text.find("rate,failures"), std::string::npos) << text;
  EXPECT_NE(text.find("vanished"), std::string::npos) << text;
  EXPECT_NE(text.find("2 changes: 0 appeared, 1 vanished, 1 changed; 0 unchanged"), std::string::npos) << text;
  auto j = diff_to_json(d);
  EXPECT_EQ(j["schema"], "hostscope.topology-diff/v1");
  ASSERT_EQ(j["changes"].size(), 2u);
  EXPECT_EQ(j["changes"][0]["kinds"], nlohmann::json({"rate", "failures"}));
  EXPECT_EQ(j["changes"][0]["server"]["id"], "service:shop/api");
  EXPECT_EQ(j["changes"][0]["after"]["failed"], 10);
  EXPECT_TRUE(j["changes"][1]["after"].is_null());
  EXPECT_EQ(render_diff_table(diff_topology(b, kHourA, b, kHourB)).find("no changes (1 edges unchanged)") != std::string::npos, true);
}

TEST(TimeArg, TodayAndYesterdayInUtc) {
  const uint64_t now = 1714533120ull * kSec + 5 * kSec;  // 2024-05-01T03:12:05Z
  const uint64_t midnight = 1714521600ull * kSec;        // 2024-05-01T00:00:00Z
  EXPECT_EQ(*parse_time_arg("today 03:12", now), midnight + (3 * 3600 + 12 * 60) * kSec);
  EXPECT_EQ(*parse_time_arg("yesterday 03:12", now), midnight - 86400 * kSec + (3 * 3600 + 12 * 60) * kSec);
  EXPECT_EQ(*parse_time_arg("yesterday 23:59:59", now), midnight - kSec);
  // A bare time of day is the latest one not after now.
  EXPECT_EQ(*parse_time_arg("03:12", now), midnight + (3 * 3600 + 12 * 60) * kSec);
  EXPECT_EQ(*parse_time_arg("03:13", now), midnight - 86400 * kSec + (3 * 3600 + 13 * 60) * kSec);
  EXPECT_EQ(*parse_time_arg("00:00:00", now), midnight);
  for (const char* bad : {"yesterday", "3:12", "25:00", "yesterday 3:12", "yesterday 24:00", "today 03:60", "today 03:12:61",
                          "today 03-12", "tomorrow 03:12", "yesterday 03:12 "}) {
    auto r = parse_time_arg(bad, now);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().str().find(bad), std::string::npos) << r.error().str();
    }
  }
}

}  // namespace
}  // namespace hostscope::topology
