#include <gtest/gtest.h>

#include <sstream>

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
  EXPECT_FALSE(print_live_results({ok, wrong, skipped}, out));
  EXPECT_NE(out.str().find("PASS t.yaml:5:5: c — expect allow, evaluator allow, live allow\n"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("FAIL t.yaml:5:5: c — expect deny, evaluator allow, live allow\n    cgroup /a -> 10.0.0.1"), std::string::npos)
      << out.str();
  EXPECT_NE(out.str().find("not tried live: 2001:db8::1 -> 2001:db8::2: skipped: IPv6"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("2 passed, 1 failed; 2 connections made live, 1 not tried live"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace hostscope::policy
