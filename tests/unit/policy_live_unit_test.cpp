#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "policy/live_check.h"

namespace hostscope::policy {
namespace {

TEST(PolicyLiveUnit, MirrorKeepsThePathBelowTheScratchParent) {
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "/system.slice/web.service"), "/hostscope-live-1/system.slice/web.service");
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "/"), "/hostscope-live-1");
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "/a/"), "/hostscope-live-1/a");
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "/a/../../etc"), std::nullopt);
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "/a/./b"), std::nullopt);
  EXPECT_EQ(mirror_cgroup("/hostscope-live-1", "relative"), std::nullopt);
}

LiveCaseResult result(bool expect, std::vector<LiveProbe> probes) {
  LiveCaseResult r;
  r.test = "t";
  r.case_name = "c";
  r.loc = {"t.yaml", 5, 5};
  r.expect_allow = expect;
  r.probes = std::move(probes);
  return r;
}

TEST(PolicyLiveUnit, CaseVerdicts) {
  auto ok = result(true, {{"cgroup /a", "10.0.0.1", true, true, "connected"}});
  EXPECT_TRUE(ok.passed());
  EXPECT_EQ(ok.explanation(), "");

  auto wrong = result(false, {{"cgroup /a", "10.0.0.1", true, true, "connected"}});
  EXPECT_FALSE(wrong.passed());
  EXPECT_NE(wrong.explanation().find("expected deny, evaluator allow, live allow (connected); the expectation is not what the policy does"),
            std::string::npos)
      << wrong.explanation();

  auto kernel = result(true, {{"10.0.0.2", "10.0.0.1", true, false, "timeout"}, {"10.0.0.3", "10.0.0.1", true, true, "connected"}});
  EXPECT_FALSE(kernel.passed());
  EXPECT_TRUE(kernel.evaluator_matches());
  EXPECT_EQ(kernel.live_summary(), "mixed");
  EXPECT_NE(kernel.explanation().find("the kernel disagrees with the evaluator"), std::string::npos);

  auto skipped = result(true, {{"2001:db8::1", "2001:db8::2", true, std::nullopt, "skipped: IPv6"}});
  EXPECT_TRUE(skipped.passed());
  EXPECT_EQ(skipped.live_summary(), "skipped");
  EXPECT_EQ(skipped.skipped(), 1u);

  std::ostringstream out;
  EXPECT_FALSE(print_live_results({{ok, wrong, skipped}, 3, 1}, out));
  EXPECT_NE(out.str().find("PASS t.yaml:5:5: c — expect allow, evaluator allow, live allow\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("FAIL t.yaml:5:5: c — expect deny, evaluator allow, live allow\n    cgroup /a -> 10.0.0.1"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("not tried live: 2001:db8::1 -> 2001:db8::2: skipped: IPv6"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("2 passed, 1 failed; 2 connections made live, 1 not tried live; 3 remote addresses in 1 batch\n"), std::string::npos) << out.str();
}

// Greedy in plan order: a probe joins the current batch unless its new addresses would not fit; an address
// already in the batch costs nothing, and one needed again later is emulated again in a later batch.
TEST(PolicyLiveUnit, BatchesSplitInPlanOrderByDistinctAddresses) {
  using Needs = std::vector<std::vector<std::string>>;
  EXPECT_EQ(split_live_batches({}, 2), (std::vector<size_t>{0}));
  EXPECT_EQ(split_live_batches({{}, {}, {}}, 2), (std::vector<size_t>{3}));
  EXPECT_EQ(split_live_batches(Needs{{"a"}, {"b"}, {"a", "b"}, {}}, 2), (std::vector<size_t>{4}));
  // c does not fit with a and b; a is needed again after the cut and counts again.
  EXPECT_EQ(split_live_batches(Needs{{"a"}, {"b"}, {"c"}, {"a", "c"}, {"d"}}, 2), (std::vector<size_t>{2, 4, 5}));
  // A probe needing two new addresses moves on when only one slot is left.
  EXPECT_EQ(split_live_batches(Needs{{"a"}, {"b", "c"}, {}, {"b"}}, 2), (std::vector<size_t>{1, 4}));

  Needs many;
  for (int i = 0; i < 70; ++i) many.push_back({"a" + std::to_string(i)});
  many.push_back({"a0", "a69"});
  EXPECT_EQ(split_live_batches(many, kLiveMaxAddresses), (std::vector<size_t>{64, 71}));
}

}  // namespace
}  // namespace hostscope::policy
