// The reconciler without root: a directory source, a fake iptables and a fake service catalogue the test changes
// between passes, a fake clock for the retry backoff (issue 14: a refused commit is tried again when the catalogue
// changes, not only on a new commit or a restart).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "policy/ir_json.h"
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
  // An edge the agent observed: service web (10.0.0.1) to `server`:`port`.
  static topology::EdgeSnapshot web_to(const std::string& server, uint16_t port, uint64_t connections) {
    topology::EdgeSnapshot e;
    e.client = {topology::NodeKind::Service, "web", "", "", "10.0.0.1"};
    e.server = {topology::NodeKind::External, "external", "", "", server};
    e.port = port;
    e.connections = connections;
    return e;
  }

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

// policy.context: services the node cannot see come from a JSON file, read again on every pass and merged with what
// the agent sees. A set that names them is applied; a file that turns unreadable stops the pass with the rules kept.
const char* kBillingSet = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - {action: allow, peers: [{service: billing}], ports: [443], protocol: tcp}
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: billing}
subject: {service: billing}
default: {ingress: deny}
ingress:
  - {action: allow, ports: [443], protocol: tcp}
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: web}
cases:
  - {from: web, to: billing, port: 443, protocol: tcp, expect: allow}
)";

TEST_F(ReconcilerRetry, ContextFileSuppliesServicesTheNodeCannotSee) {
  std::ofstream(root_ / "policies" / "web.yaml") << kBillingSet;
  add_service("web");
  auto r = reconciler();
  auto p = r->pass();
  ASSERT_EQ(p.result, "refused") << p.message;  // billing is unknown without the context file
  EXPECT_NE(p.message.find("'billing' is neither a known service"), std::string::npos) << p.message;

  cfg_.context_file = (root_ / "context.json").string();
  std::ofstream(cfg_.context_file) << R"({"services": [{"name": "billing", "addresses": ["10.9.0.5"]}]})";
  r = reconciler();
  p = r->pass();
  ASSERT_EQ(p.result, "applied") << p.step << ": " << p.message;
  EXPECT_NE(fake_->tables["iptables"].find("-d 10.9.0.5/32"), std::string::npos) << fake_->tables["iptables"];

  // The file turns bad and the set changes: the pass stops at `context`, naming the file; generation 1 stays.
  std::ofstream(cfg_.context_file) << "{\"services\": [";
  std::ofstream(root_ / "policies" / "web.yaml", std::ios::app) << "# touched\n";
  p = r->pass();
  EXPECT_EQ(p.result, "error");
  EXPECT_EQ(p.step, "context");
  EXPECT_NE(p.message.find("policy context file " + cfg_.context_file + " parse failed"), std::string::npos) << p.message;
  EXPECT_EQ(r->status().generation, 1);
}

// A set whose subjects the catalogue no longer knows would compile to almost nothing and its plan would remove the
// rules in force: refused at `select`, naming each such policy's subject with file:line, unless allow_mass_removal.
TEST_F(ReconcilerRetry, PlanThatRemovesMostRulesForUnknownSubjectsIsRefused) {
  cfg_.context_file = (root_ / "context.json").string();
  std::ofstream(cfg_.context_file) << R"({"services": [{"name": "billing", "addresses": ["10.9.0.5"]}]})";
  std::ofstream(root_ / "policies" / "web.yaml") << kBillingSet;
  add_service("web");
  auto r = reconciler();
  ASSERT_EQ(r->pass().result, "applied");

  // The context file lost billing and web is gone from the node; the set (without its test) changes.
  std::string no_test(kBillingSet);
  no_test.resize(no_test.find("---\napiVersion: hostscope.io/v1\nkind: PolicyTest"));
  std::ofstream(root_ / "policies" / "web.yaml") << no_test;
  std::ofstream(cfg_.context_file) << R"({"services": []})";
  ctx_.services.clear();
  auto p = r->pass();
  ASSERT_EQ(p.result, "refused") << p.message;
  EXPECT_EQ(p.step, "select");
  EXPECT_NE(p.message.find("policies select nothing on this node: 'web' (web.yaml:4:"), std::string::npos) << p.message;
  EXPECT_NE(p.message.find("'billing' (web.yaml:"), std::string::npos) << p.message;
  EXPECT_EQ(r->status().generation, 1);

  // The catalogue comes back: the same commit is tried again (after the backoff) and applied.
  add_service("web");
  std::ofstream(cfg_.context_file) << R"({"services": [{"name": "billing", "addresses": ["10.9.0.5"]}]})";
  now_ += Reconciler::kRetryMin;
  p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.step << ": " << p.message;

  // Forced: allow_mass_removal applies it even with nothing selected.
  cfg_.allow_mass_removal = true;
  r = reconciler();
  std::ofstream(cfg_.context_file) << R"({"services": []})";
  ctx_.services.clear();
  std::ofstream(root_ / "policies" / "web.yaml", std::ios::app) << "# forced\n";
  p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.step << ": " << p.message;
}

// What the node sees wins for cgroups and ports (live) when it sees any; addresses are the union; services only in
// the file are added; networks are unioned per name.
// policy.impact (issue 19): web was observed talking to 192.0.2.9:443; the set allows it only 10.0.0.0/24:5432. With
// `refuse` the commit is refused at step `impact` naming the edge, its count and the rule, and nothing is applied;
// with `warn` it is applied and the warning recorded; with `off`, or without observed traffic, nothing is checked.
TEST_F(ReconcilerRetry, ImpactGateRefusesOrWarnsAboutObservedEdgesTheSetWouldDeny) {
  add_service("web");
  topology::TopologySnapshot observed;
  observed.edges.push_back(web_to("192.0.2.9", 443, 12));
  observed.edges.push_back(web_to("10.0.0.7", 5432, 12));  // allowed by the set: not reported

  cfg_.impact = ReconcileConfig::Impact::Refuse;
  auto r = reconciler();
  r->set_observed([&]() -> std::optional<topology::TopologySnapshot> { return observed; });
  auto p = r->pass();
  ASSERT_EQ(p.result, "refused") << p.message;
  EXPECT_EQ(p.step, "impact");
  EXPECT_NE(p.message.find("1 observed edge(s) (12 connections) would be newly denied: service:/web (10.0.0.1) -> external:192.0.2.9 "
                           "port 443/tcp (12 connections; policy web: egress default deny at web.yaml:"),
            std::string::npos)
      << p.message;
  EXPECT_EQ(p.message.find("5432"), std::string::npos) << p.message;
  EXPECT_EQ(current_generation(cfg_.state_dir), 0) << "a refused commit applies nothing";

  cfg_.impact = ReconcileConfig::Impact::Warn;
  r = reconciler();
  r->set_observed([&]() -> std::optional<topology::TopologySnapshot> { return observed; });
  p = r->pass();
  ASSERT_EQ(p.result, "applied") << p.message;
  EXPECT_NE(p.message.find("would be newly denied"), std::string::npos) << p.message;
  EXPECT_NE(r->status().last_warning.find("external:192.0.2.9"), std::string::npos) << r->status().last_warning;
  EXPECT_EQ(current_generation(cfg_.state_dir), 1);
}

// policy.impact: audit-first (issue 19): the commit is applied with the policy that would deny observed traffic in
// audit mode; while the edge is still observed, later passes keep it in audit (and so does a pass without observed
// traffic to check); once no observed edge would be newly denied, the next pass enforces it. The state survives a
// restart of the reconciler (reconcile.json).
TEST_F(ReconcilerRetry, ImpactAuditFirstHoldsBackThenEnforces) {
  add_service("web");
  topology::TopologySnapshot observed;
  observed.edges.push_back(web_to("192.0.2.9", 443, 12));
  bool have_observed = true;
  auto source = [&]() -> std::optional<topology::TopologySnapshot> {
    if (!have_observed) return std::nullopt;
    return observed;
  };
  auto mode_in_force = [&]() {
    auto ir = load_ir(cfg_.state_dir, current_generation(cfg_.state_dir));
    return ir ? ir->policy_modes.at("web") : Mode::Enforce;
  };

  cfg_.impact = ReconcileConfig::Impact::AuditFirst;
  auto r = reconciler();
  r->set_observed(source);
  auto p = r->pass();
  ASSERT_EQ(p.result, "applied") << p.step << ": " << p.message;
  EXPECT_NE(p.message.find("policies web applied in audit mode first"), std::string::npos) << p.message;
  EXPECT_EQ(r->status().audit_first, std::vector<std::string>{"web"});
  EXPECT_EQ(current_generation(cfg_.state_dir), 1);
  EXPECT_EQ(mode_in_force(), Mode::Audit);

  // Still observed: stays in audit, nothing applied.
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged") << p.message;
  EXPECT_NE(p.message.find("policies stay in audit"), std::string::npos) << p.message;
  EXPECT_EQ(current_generation(cfg_.state_dir), 1);
  // No observed traffic to judge by: no evidence, so no enforcement.
  have_observed = false;
  p = r->pass();
  EXPECT_EQ(p.result, "unchanged") << p.message;
  EXPECT_EQ(mode_in_force(), Mode::Audit);

  // A new reconciler (agent restart) remembers what is held back; the edge is gone: enforced.
  have_observed = true;
  observed.edges.clear();
  r = reconciler();
  r->set_observed(source);
  EXPECT_EQ(r->status().audit_first, std::vector<std::string>{"web"});
  p = r->pass();
  ASSERT_EQ(p.result, "applied") << p.step << ": " << p.message;
  EXPECT_EQ(current_generation(cfg_.state_dir), 2);
  EXPECT_EQ(mode_in_force(), Mode::Enforce);
  EXPECT_TRUE(r->status().audit_first.empty());
  EXPECT_EQ(r->pass().result, "unchanged");
}

TEST_F(ReconcilerRetry, ImpactGateOffOrWithoutObservedTrafficApplies) {
  add_service("web");
  cfg_.impact = ReconcileConfig::Impact::Refuse;
  auto r = reconciler();  // no observed traffic source
  EXPECT_EQ(r->pass().result, "applied");
  fs::remove_all(cfg_.state_dir);
  cfg_.impact = ReconcileConfig::Impact::Off;
  r = reconciler();
  r->set_observed([]() -> std::optional<topology::TopologySnapshot> {
    topology::TopologySnapshot s;
    s.edges.push_back(web_to("192.0.2.9", 443, 1));
    return s;
  });
  auto p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.message;
  EXPECT_TRUE(r->status().last_warning.empty());
}

TEST(MergeContext, NodeWinsForCgroupsAndPortsAddressesAreUnioned) {
  Context seen;
  seen.services.push_back({"web", {"/system.slice/web.service"}, {"10.0.0.2"}, {8080}, "", "", "", "/usr/bin/web"});
  seen.services.push_back({"cron", {"/system.slice/cron.service"}, {}, {}, "", "", "", ""});
  seen.networks["office"] = {"192.0.2.0/24"};
  Context file;
  file.services.push_back({"web", {"/stale"}, {"10.0.0.2", "10.0.0.3"}, {9090}, "", "shop", "web", "/old/web"});
  file.services.push_back({"cron", {"/file-cron"}, {}, {25}, "", "", "", ""});
  file.services.push_back({"billing", {}, {"10.9.0.0/24"}, {443}, "", "", "", ""});
  file.networks["office"] = {"192.0.2.0/24", "198.51.100.0/24"};
  file.networks["partners"] = {"203.0.113.0/24"};
  auto m = merge_context(seen, file);
  ASSERT_EQ(m.services.size(), 3u);
  const auto* web = m.find_service("web");
  EXPECT_EQ(web->cgroups, std::vector<std::string>{"/system.slice/web.service"});
  EXPECT_EQ(web->ports, std::vector<uint16_t>{8080});
  EXPECT_EQ(web->addresses, (std::vector<std::string>{"10.0.0.2", "10.0.0.3"}));
  EXPECT_EQ(web->exe, "/usr/bin/web");
  EXPECT_EQ(web->k8s_namespace, "shop");
  const auto* cron = m.find_service("cron");  // the node knows its cgroup but no port: the file's port fills in
  EXPECT_EQ(cron->cgroups, std::vector<std::string>{"/system.slice/cron.service"});
  EXPECT_EQ(cron->ports, std::vector<uint16_t>{25});
  EXPECT_EQ(m.find_service("billing")->addresses, std::vector<std::string>{"10.9.0.0/24"});
  EXPECT_EQ(m.networks["office"], (std::vector<std::string>{"192.0.2.0/24", "198.51.100.0/24"}));
  EXPECT_EQ(m.networks["partners"], std::vector<std::string>{"203.0.113.0/24"});
}

}  // namespace
}  // namespace hostscope::policy
