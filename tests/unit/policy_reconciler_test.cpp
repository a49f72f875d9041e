// The reconciler without root: a directory source, a fake iptables and a fake service catalogue the test changes
// between passes, a fake clock for the retry backoff (issue 14: a refused commit is tried again when the catalogue
// changes, not only on a new commit or a restart).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "policy/reconciler.h"
#include "support/fake_iptables.h"

namespace hostscope::policy {
namespace {

namespace fs = std::filesystem;

// web may reach 10.0.0.0/24 on 5432; its test names `web`, which lint refuses while the catalogue lacks it.
const char* kSet = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - {action: allow, peers: [{cidr: 10.0.0.0/24}], ports: [5432], protocol: tcp}
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: web}
cases:
  - {from: web, to: 10.0.0.7, port: 5432, protocol: tcp, expect: allow}
)";

class ReconcilerRetry : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hs-reconciler-unit-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "policies");
    std::ofstream(root_ / "policies" / "web.yaml") << kSet;
    fake_ = std::make_shared<fakes::FakeIptables>();
    const std::string builtin = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    fake_->tables["iptables"] = builtin;
    fake_->tables["ip6tables"] = builtin;
    cfg_.kind = ReconcileConfig::Kind::Directory;
    cfg_.directory = (root_ / "policies").string();
    cfg_.state_dir = (root_ / "state").string();
  }
  void TearDown() override { fs::remove_all(root_); }

  std::unique_ptr<Reconciler> reconciler() {
    auto r = std::make_unique<Reconciler>(cfg_, [this] { return ctx_; }, fake_);
    r->set_clock([this] { return now_; });
    return r;
  }
  void add_service(const std::string& name) { ctx_.services.push_back({name, {"/" + name}, {}, {}, "", "", "", ""}); }

  fs::path root_;
  ReconcileConfig cfg_;
  std::shared_ptr<fakes::FakeIptables> fake_;
  Context ctx_;
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

TEST_F(ReconcilerRetry, RefusedCommitIsTriedAgainWhenTheCatalogueChangesWithBackoff) {
  auto r = reconciler();
  auto p = r->pass();
  ASSERT_EQ(p.result, "refused") << p.message;
  EXPECT_EQ(p.step, "lint");
  EXPECT_NE(p.message.find("'web' is neither a known service"), std::string::npos) << p.message;

  // Nothing changed: not tried again, however long we wait.
  now_ += std::chrono::hours(1);
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged");
  EXPECT_EQ(p.message.rfind("already refused: ", 0), 0u) << p.message;
  EXPECT_EQ(p.message.find("catalogue changed"), std::string::npos) << p.message;

  // Another service appears (not the one the set needs): tried again at once (the refusal is an hour old),
  // refused again, and the next try waits 2 x kRetryMin.
  add_service("cron");
  p = r->pass();
  EXPECT_EQ(p.result, "refused") << p.message;
  add_service("batch");
  now_ += Reconciler::kRetryMin;
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged") << p.message;
  EXPECT_NE(p.message.find("the service catalogue changed; tried again in 10 s"), std::string::npos) << p.message;
  now_ += Reconciler::kRetryMin;
  p = r->pass();
  EXPECT_EQ(p.result, "refused") << p.message;  // second catalogue retry: still no web

  // web starts: the third retry waits 4 x kRetryMin from that refusal, then applies the same commit.
  add_service("web");
  now_ += 4 * Reconciler::kRetryMin - std::chrono::seconds(1);
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged") << p.message;
  EXPECT_NE(p.message.find("tried again in 1 s"), std::string::npos) << p.message;
  now_ += std::chrono::seconds(1);
  p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.step << ": " << p.message;
  EXPECT_EQ(r->status().generation, 1);
  EXPECT_EQ(r->status().attempts.at("refused"), 3u);
}

TEST_F(ReconcilerRetry, BackoffIsBoundedAndStepsThatIgnoreTheCatalogueAreNotRetried) {
  auto r = reconciler();
  ASSERT_EQ(r->pass().result, "refused");
  // Many catalogue changes, each refused: the wait grows to kRetryMax and stays there.
  for (int i = 0; i < 12; i++) {
    add_service("other-" + std::to_string(i));
    now_ += Reconciler::kRetryMax;
    ASSERT_EQ(r->pass().result, "refused") << i;
  }
  add_service("web");
  now_ += Reconciler::kRetryMax - std::chrono::seconds(1);
  EXPECT_EQ(r->pass().result, "unchanged");
  now_ += std::chrono::seconds(1);
  EXPECT_EQ(r->pass().result, "applied");

  // A commit refused at plan (failsafe off in enforce mode) does not depend on the catalogue: never retried for it.
  std::ofstream(root_ / "policies" / "web.yaml") << std::string(kSet).insert(std::string(kSet).find("default:"), "failsafe: false\n");
  auto p = r->pass();
  ASSERT_EQ(p.result, "refused") << p.message;
  EXPECT_EQ(p.step, "plan");
  add_service("late");
  now_ += std::chrono::hours(1);
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged");
  EXPECT_EQ(p.message.find("catalogue changed"), std::string::npos) << p.message;
}

TEST(ContextHash, OrderIndependentAndSensitiveToEveryField) {
  Context a;
  a.services.push_back({"web", {"/web"}, {"10.0.0.2"}, {80}, "", "", "", ""});
  a.services.push_back({"db", {}, {"10.0.0.3"}, {}, "", "", "", ""});
  Context b = a;
  std::swap(b.services[0], b.services[1]);
  EXPECT_EQ(context_hash(a), context_hash(b));
  b.services[1].ports.push_back(81);
  EXPECT_NE(context_hash(a), context_hash(b));
  b = a;
  b.networks["office"] = {"192.0.2.0/24"};
  EXPECT_NE(context_hash(a), context_hash(b));
  b = a;
  b.services[0].cgroups = {"/web2"};
  EXPECT_NE(context_hash(a), context_hash(b));
}

}  // namespace
}  // namespace hostscope::policy
