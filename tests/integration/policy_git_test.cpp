// Policy from Git (issue 6) with real iptables in a network namespace the test creates:
//  - policy::Reconciler driven directly: good commit applied; invalid YAML (lint), failing PolicyTest (test) and
//    failsafe off (plan) refused with the last good generation left in force; force-push refused and followed
//    when configured; unreachable remote and corrupt clone keep the rules; signed vs unsigned commits; drift
//    repaired; a restarted reconciler comes back to the same commit without re-applying; directory sources.
//  - `hostscope agent` end to end: a good commit applied by the poll loop, `policy sync`, `policy status`, drift
//    repair, and a restarted agent on the same applied commit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/api_client.h"
#include "policy/reconciler.h"
#include "support/git_repo.h"

using namespace hostscope;
using namespace hostscope::policy;
using namespace hostscope::testing;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

namespace {

std::string bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }

// web (a routed address) accepts tcp/80 from the office network only.
std::string web_policy(const std::string& extra = "") {
  return R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
)" + extra + R"(default: {ingress: deny}
ingress:
  - action: allow
    peers: [{network: office}]
    ports: [80]
    protocol: tcp
)";
}
std::string web_tests(const char* outsider_expect = "deny") {
  return std::string(R"(apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: web-tests}
cases:
  - {name: office, from: 192.0.2.7, to: web, port: 80, protocol: tcp, expect: allow}
  - {name: outsider, from: 198.51.100.1, to: web, port: 80, protocol: tcp, expect: )") + outsider_expect + "}\n";
}

Context web_context() {
  Context c;
  ServiceInfo web;
  web.name = "web";
  web.addresses = {"10.99.0.2"};
  c.services.push_back(web);
  c.networks["office"] = {"192.0.2.0/24"};
  return c;
}

// Removes one of our hook chains with its jump in one atomic iptables-restore (no race with a running agent).
std::string remove_chain(const Netns& ns, const std::string& chain) {
  return ns.exec("sh -c 'iptables-save -t filter | grep -v -- " + chain + " | iptables-restore'");
}

// A cgroup v2 directory for a policy subject (xt_cgroup resolves the path when the rule is installed).
class Cgroup {
 public:
  Cgroup() {
    auto root = fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
    rel_ = "/hs-t-pgit-" + random_suffix();
    path_ = root + rel_;
    std::error_code ec;
    fs::create_directory(path_, ec);
  }
  ~Cgroup() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  const std::string& rel() const { return rel_; }

 private:
  std::string rel_, path_;
};

class PolicyGit : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    ASSERT_TRUE(ns.ok());
    ASSERT_TRUE(repo.ok());
    cfg.kind = ReconcileConfig::Kind::Git;
    cfg.git.url = repo.remote();
    cfg.git.directory = "policies";
    cfg.poll_seconds = 1;
    cfg.state_dir = tmp / "state";
    cfg.work_dir = tmp / "wc";
    cfg.netns = ns.name();
  }
  std::unique_ptr<Reconciler> reconciler() { return std::make_unique<Reconciler>(cfg, web_context); }
  // The filter table without iptables-save's timestamped comment lines.
  std::string save() const { return sh(ns.exec("sh -c 'iptables-save -t filter | grep -v \"^#\"'")).out; }
  size_t generation_files() const {
    size_t n = 0;
    // gen-<N>.json only (each generation also has its gen-<N>.ir.json and gen-<N>.observed beside it).
    for (auto& e : fs::directory_iterator(cfg.state_dir)) {
      auto name = e.path().filename().string();
      if (name.rfind("gen-", 0) == 0 && name.find(".ir.json") == std::string::npos && e.path().extension() == ".json") ++n;
    }
    return n;
  }
  // Switches web to audit mode (its PolicyTest expects enforcement, so it goes).
  void write_audit_mode() {
    repo.write("policies/web.yaml", web_policy("mode: audit\n"));
    fs::remove(repo.work() + "/policies/web.test.yaml");
  }
  // Commits the good policy set and applies it; returns the commit.
  std::string apply_good(Reconciler& r) {
    repo.write("policies/web.yaml", web_policy());
    repo.write("policies/web.test.yaml", web_tests());
    auto c = repo.commit("good");
    auto p = r.pass();
    EXPECT_EQ(p.result, "applied") << p.step << ": " << p.message;
    EXPECT_EQ(r.status().applied_commit, c);
    return c;
  }
  void expect_refused(Reconciler& r, const std::string& commit, const std::string& good, int gen, const std::string& step,
                      const std::string& what) {
    auto before = save();
    auto p = r.pass();
    EXPECT_EQ(p.result, "refused");
    EXPECT_EQ(p.step, step);
    EXPECT_THAT(p.message, HasSubstr(what));
    auto s = r.status();
    EXPECT_EQ(s.last_attempt_commit, commit);
    EXPECT_EQ(s.last_result, "refused");
    EXPECT_EQ(s.last_step, step);
    EXPECT_THAT(s.last_error, HasSubstr(what));
    EXPECT_EQ(s.applied_commit, good);
    EXPECT_EQ(s.generation, gen);
    EXPECT_GE(s.attempts["refused"], 1u);
    // The persisted record says the same, and the rules in force did not change.
    std::ifstream f(Reconciler::status_path(cfg.state_dir));
    auto disk = ReconcileStatus::from_json(nlohmann::json::parse(f));
    EXPECT_EQ(disk.last_step, step);
    EXPECT_EQ(disk.applied_commit, good);
    EXPECT_EQ(save(), before);
    // The same refused commit is not retried on the next pass.
    EXPECT_EQ(r.pass().result, "unchanged");
  }

  TempDir tmp;
  Netns ns{"pgit"};
  GitRepo repo{tmp.path()};
  ReconcileConfig cfg;
};

TEST_F(PolicyGit, GoodCommitIsAppliedAndUnchangedTipIsNotReapplied) {
  auto r = reconciler();
  auto c = apply_good(*r);
  auto rules = save();
  EXPECT_THAT(rules, HasSubstr(":HOSTSCOPE-FORWARD"));
  EXPECT_THAT(rules, HasSubstr("-d 10.99.0.2/32"));
  EXPECT_THAT(rules, HasSubstr("192.0.2.0/24"));
  EXPECT_THAT(rules, HasSubstr("-j DROP"));
  auto s = r->status();
  EXPECT_EQ(s.generation, 1);
  EXPECT_EQ(s.last_result, "applied");
  EXPECT_GT(s.applied_commit_unix, 0);
  EXPECT_EQ(s.source, "git " + repo.remote() + " branch main dir policies");
  EXPECT_EQ(r->pass().result, "unchanged");
  EXPECT_EQ(generation_files(), 1u);
  // A second good commit becomes generation 2.
  write_audit_mode();
  auto c2 = repo.commit("audit mode");
  auto p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.message;
  EXPECT_EQ(r->status().generation, 2);
  EXPECT_EQ(r->status().applied_commit, c2);
  // Audit mode: the default deny becomes a counting rule without a verdict.
  EXPECT_THAT(save(), Not(HasSubstr("-j DROP")));
  EXPECT_NE(c, c2);
}

TEST_F(PolicyGit, InvalidYamlIsRefusedAtLintWithItsLocation) {
  auto r = reconciler();
  auto good = apply_good(*r);
  repo.write("policies/web.yaml", web_policy() + "  - action: allow\n   peers: [\n");
  auto bad = repo.commit("broken yaml");
  expect_refused(*r, bad, good, 1, "lint", "policies/web.yaml:");
  EXPECT_THAT(r->status().last_error, ::testing::ContainsRegex("policies/web\\.yaml:[0-9]+:[0-9]+: error"));
}

TEST_F(PolicyGit, FailingPolicyTestIsRefusedAtTest) {
  auto r = reconciler();
  auto good = apply_good(*r);
  repo.write("policies/web.test.yaml", web_tests("allow"));
  auto bad = repo.commit("wrong expectation");
  expect_refused(*r, bad, good, 1, "test", "outsider");
  EXPECT_THAT(r->status().last_error, HasSubstr("policies/web.test.yaml:"));
}

TEST_F(PolicyGit, DroppingFailsafePortsIsRefusedAtPlan) {
  auto r = reconciler();
  auto good = apply_good(*r);
  repo.write("policies/web.yaml", web_policy("failsafe: false\n"));
  auto bad = repo.commit("no failsafe");
  expect_refused(*r, bad, good, 1, "plan", "failsafe");
  EXPECT_THAT(r->status().last_error, HasSubstr("tcp/22"));
  // Allowed when the operator says so.
  cfg.allow_failsafe_off = true;
  auto r2 = reconciler();
  auto p = r2->pass();
  EXPECT_EQ(p.result, "applied") << p.message;
  EXPECT_EQ(r2->status().applied_commit, bad);
}

TEST_F(PolicyGit, ForcePushIsRefusedUnlessFollowed) {
  auto r = reconciler();
  auto base = apply_good(*r);
  write_audit_mode();
  auto c2 = repo.commit("second");
  ASSERT_EQ(r->pass().result, "applied");
  ASSERT_EQ(repo.git("reset -q --hard " + base).status, 0);
  repo.write("policies/readme.txt", "rewritten\n");
  auto rewritten = repo.commit("rewritten", "", true);
  ASSERT_FALSE(rewritten.empty());
  expect_refused(*r, rewritten, c2, 2, "verify", "rewritten");
  cfg.git.follow_force_push = true;
  auto follower = reconciler();
  auto p = follower->pass();
  EXPECT_EQ(p.result, "applied") << p.message;
  EXPECT_EQ(follower->status().applied_commit, rewritten);
  EXPECT_THAT(save(), HasSubstr("-j DROP"));  // enforce mode again
}

TEST_F(PolicyGit, UnreachableRemoteAndCorruptCloneKeepTheRules) {
  auto r = reconciler();
  auto good = apply_good(*r);
  auto before = save();
  fs::rename(repo.remote(), repo.remote() + ".away");
  auto p = r->pass();
  EXPECT_EQ(p.result, "error");
  EXPECT_EQ(p.step, "fetch");
  auto s = r->status();
  EXPECT_EQ(s.last_result, "error");
  EXPECT_EQ(s.last_step, "fetch");
  EXPECT_THAT(s.last_error, HasSubstr("git fetch"));
  EXPECT_EQ(s.applied_commit, good);
  EXPECT_EQ(s.attempts["error"], 1u);
  EXPECT_EQ(save(), before);
  fs::rename(repo.remote() + ".away", repo.remote());
  EXPECT_EQ(r->pass().result, "unchanged");
  EXPECT_EQ(r->status().last_result, "applied");
  // A corrupt working copy is cloned again; the rules stay and the next commit applies.
  fs::remove_all(cfg.work_dir + "/objects");
  EXPECT_EQ(r->pass().result, "unchanged");
  EXPECT_EQ(save(), before);
  write_audit_mode();
  auto c2 = repo.commit("after corruption");
  fs::remove_all(cfg.work_dir + "/refs");
  std::ofstream(cfg.work_dir + "/HEAD") << "garbage";
  auto p2 = r->pass();
  EXPECT_EQ(p2.result, "applied") << p2.step << ": " << p2.message;
  EXPECT_EQ(r->status().applied_commit, c2);
}

TEST_F(PolicyGit, SignedCommitsOnlyFromAllowedSigners) {
  auto allowed = make_ssh_key(tmp / "allowed");
  ASSERT_FALSE(allowed.empty());
  ASSERT_FALSE(make_ssh_key(tmp / "other").empty());
  std::ofstream(tmp / "allowed_signers") << "tester@example.com namespaces=\"git\" " << allowed << "\n";
  cfg.git.allowed_signers_file = tmp / "allowed_signers";
  auto r = reconciler();
  repo.write("policies/web.yaml", web_policy());
  repo.write("policies/web.test.yaml", web_tests());
  auto unsigned_c = repo.commit("unsigned");
  auto p = r->pass();
  EXPECT_EQ(p.result, "refused");
  EXPECT_EQ(p.step, "verify");
  EXPECT_THAT(p.message, HasSubstr("not signed"));
  EXPECT_EQ(r->status().generation, 0);
  EXPECT_THAT(save(), Not(HasSubstr("HOSTSCOPE")));
  auto other = repo.commit("signed by a stranger", tmp / "other");
  p = r->pass();
  EXPECT_EQ(p.result, "refused");
  EXPECT_EQ(p.commit, other);
  EXPECT_THAT(p.message, HasSubstr("not in"));
  auto good = repo.commit("signed", tmp / "allowed");
  p = r->pass();
  EXPECT_EQ(p.result, "applied") << p.message;
  EXPECT_EQ(r->status().applied_commit, good);
  EXPECT_THAT(save(), HasSubstr("HOSTSCOPE-FORWARD"));
  EXPECT_NE(unsigned_c, good);
}

TEST_F(PolicyGit, DriftIsRepairedAndCounted) {
  auto r = reconciler();
  apply_good(*r);
  auto good_rules = save();
  // Someone removes our FORWARD hook: the jump and the chain.
  ASSERT_EQ(sh(remove_chain(ns, "HOSTSCOPE-FORWARD")).status, 0);
  ASSERT_THAT(save(), Not(HasSubstr("HOSTSCOPE-FORWARD")));
  auto p = r->pass();
  EXPECT_TRUE(p.drift_repaired);
  EXPECT_EQ(p.result, "unchanged");
  EXPECT_EQ(r->status().drift_repairs, 1u);
  EXPECT_THAT(save(), ::testing::ContainsRegex("-A FORWARD .*hostscope:jump.* -j HOSTSCOPE-FORWARD"));
  // Someone adds a rule to one of our chains.
  ASSERT_EQ(sh(ns.exec("iptables -I HOSTSCOPE-FORWARD 1 -j ACCEPT")).status, 0);
  EXPECT_TRUE(r->pass().drift_repaired);
  EXPECT_EQ(r->status().drift_repairs, 2u);
  EXPECT_FALSE(r->pass().drift_repaired);
  EXPECT_EQ(r->status().drift_repairs, 2u);
  EXPECT_EQ(r->status().generation, 1);
}

TEST_F(PolicyGit, RestartedReconcilerKeepsTheAppliedCommit) {
  std::string good;
  int64_t applied_at = 0;
  {
    auto r = reconciler();
    good = apply_good(*r);
    applied_at = r->status().applied_unix;
  }
  auto r = reconciler();
  EXPECT_EQ(r->status().applied_commit, good);
  EXPECT_EQ(r->status().generation, 1);
  EXPECT_EQ(r->pass().result, "unchanged");
  EXPECT_EQ(r->status().applied_unix, applied_at);
  EXPECT_EQ(generation_files(), 1u);
  EXPECT_THAT(save(), HasSubstr("HOSTSCOPE-FORWARD"));
}

TEST_F(PolicyGit, DirectorySourceUsesTheContentHash) {
  ReconcileConfig d = cfg;
  d.kind = ReconcileConfig::Kind::Directory;
  d.directory = tmp / "dir";
  fs::create_directories(d.directory);
  std::ofstream(d.directory + "/web.yaml") << web_policy();
  Reconciler r(d, web_context);
  auto p = r.pass();
  ASSERT_EQ(p.result, "applied") << p.message;
  EXPECT_EQ(p.commit.size(), 16u);
  EXPECT_EQ(r.pass().result, "unchanged");
  std::ofstream(d.directory + "/web.yaml") << web_policy() + "  - action: allow\n   peers: [\n";
  p = r.pass();
  EXPECT_EQ(p.result, "refused");
  EXPECT_EQ(p.step, "lint");
  EXPECT_THAT(p.message, HasSubstr("web.yaml:"));
  EXPECT_THAT(save(), HasSubstr("HOSTSCOPE-FORWARD"));
}

// ---- the agent end to end

class Agent {
 public:
  Agent(const TempDir& tmp, const std::string& config) : sock_(tmp / "api.sock"), config_(tmp / "config.yaml") {
    std::ofstream(config_) << config;
  }
  ~Agent() { stop(); }
  bool start() {
    child_ = std::make_unique<Child>(std::vector<std::string>{bin(), "agent", "--config", config_});
    return eventually([&] { return api::daemon_running(sock_); }, std::chrono::seconds(30));
  }
  void stop() {
    if (!child_) return;
    kill(child_->pid(), SIGTERM);
    child_->wait();
    child_.reset();
  }
  ReconcileStatus status() const {
    auto r = api::call(sock_, "policy.status");
    if (!r) return {};
    return ReconcileStatus::from_json((*r)["reconcile"]);
  }
  const std::string& sock() const { return sock_; }

 private:
  std::string sock_, config_;
  std::unique_ptr<Child> child_;
};

std::string cgroup_policy(const Cgroup& cg) {
  return R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: batch}
subject: {cgroup: )" + cg.rel() + R"(}
egress:
  - action: deny
    peers: [{network: blocked}]
    ports: [443]
)";
}

TEST_F(PolicyGit, AgentFollowsTheBranchSyncsRepairsAndRestarts) {
  std::string config = fmt::format(R"(api:
  socket: {}
networks:
  blocked: [203.0.113.0/24]
policy:
  state_dir: {}
  work_dir: {}
  netns: {}
  source:
    git:
      url: {}
      branch: main
      directory: policies
      poll_seconds: 1
)",
                                   tmp / "api.sock", cfg.state_dir, cfg.work_dir, ns.name(), repo.remote());
  Cgroup cg;
  const std::string kCgroupPolicy = cgroup_policy(cg);
  repo.write("policies/batch.yaml", kCgroupPolicy);
  auto c1 = repo.commit("first");
  Agent agent(tmp, config);
  ASSERT_TRUE(agent.start()) << "agent did not answer on its socket";
  // The poll loop applies the tip.
  ASSERT_TRUE(eventually([&] { return agent.status().applied_commit == c1; }, std::chrono::seconds(30)));
  EXPECT_THAT(save(), HasSubstr("-A HOSTSCOPE-P-"));
  EXPECT_THAT(save(), HasSubstr("203.0.113.0/24"));

  // A new commit is applied within a poll interval (bounded wait, not a timing assertion).
  repo.write("policies/batch.yaml", kCgroupPolicy + "    protocol: tcp\n");
  auto c2 = repo.commit("second");
  ASSERT_TRUE(eventually([&] { return agent.status().applied_commit == c2; }, std::chrono::seconds(30)));
  EXPECT_EQ(agent.status().generation, 2);

  // `policy sync` reports a refusal with exit 1, `policy status` shows it.
  repo.write("policies/batch.yaml", "kind: [\n");
  auto bad = repo.commit("broken");
  auto sync = sh(bin() + " policy sync --socket " + agent.sock());
  EXPECT_EQ(sync.status, 1) << sync.out;
  EXPECT_THAT(sync.out, HasSubstr(bad));
  EXPECT_THAT(sync.out, HasSubstr("lint"));
  auto st = sh(bin() + " policy status --netns " + ns.name() + " --state-dir " + cfg.state_dir + " --socket " + agent.sock());
  EXPECT_EQ(st.status, 0) << st.out;
  EXPECT_THAT(st.out, HasSubstr("applied commit: " + c2));
  EXPECT_THAT(st.out, HasSubstr("last attempt: " + bad));
  EXPECT_THAT(st.out, HasSubstr("refused at step lint"));
  EXPECT_THAT(st.out, HasSubstr("policies/batch.yaml:"));

  // Drift: our OUTPUT hook removed behind the agent's back is restored by the poll loop.
  ASSERT_EQ(sh(remove_chain(ns, "HOSTSCOPE-OUTPUT")).status, 0);
  ASSERT_THAT(save(), Not(HasSubstr("HOSTSCOPE-OUTPUT")));
  ASSERT_TRUE(eventually([&] { return agent.status().drift_repairs >= 1; }, std::chrono::seconds(30)));
  EXPECT_THAT(save(), HasSubstr("-j HOSTSCOPE-OUTPUT"));

  // Restart: the agent comes back to the same applied commit without applying it again.
  auto before = agent.status();
  agent.stop();
  ASSERT_TRUE(agent.start());
  ASSERT_TRUE(eventually([&] { return agent.status().passes >= 2; }, std::chrono::seconds(30)));
  auto after = agent.status();
  EXPECT_EQ(after.applied_commit, c2);
  EXPECT_EQ(after.generation, before.generation);
  EXPECT_EQ(after.applied_unix, before.applied_unix);
  EXPECT_EQ(generation_files(), 2u);
  // Fixing the branch is picked up by `policy sync`.
  repo.write("policies/batch.yaml", kCgroupPolicy);
  auto c4 = repo.commit("fixed");
  auto sync2 = sh(bin() + " policy sync --socket " + agent.sock());
  EXPECT_EQ(sync2.status, 0) << sync2.out;
  EXPECT_EQ(agent.status().applied_commit, c4);
}

// ---- a real policy library through the agent (issue 14): 102 services, 417 rules, one PolicyTest case per rule,
// from Git into the test's namespace. Two services are local processes the agent sees (copies of `sleep` in cgroups
// the test creates); the other 100 exist only in the policy.context file (addresses, ports), as services of other
// nodes would. The file starts empty (commit refused at lint), then grows (the same commit is retried and applied).
constexpr int kLocal = 2, kServices = 102;

std::string lib(int i) { return "lib-" + std::to_string(i); }
std::string lib_addr(int i) { return fmt::format("10.100.{}.{}", i / 200, i % 200 + 1); }
int next_remote(int i) { return i + 1 < kServices ? i + 1 : kLocal; }

// Remote service i: ingress default deny, 4 rules (a 5th for the first nine: 102 x 4 + 9 = 417), a case per rule.
std::pair<std::string, std::string> remote_policy(int i) {
  std::string p = fmt::format(R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {{name: {0}}}
subject: {{service: {0}}}
default: {{ingress: deny}}
ingress:
  - {{action: allow, protocol: tcp, ports: [{1}], peers: [{{service: {2}}}]}}
  - {{action: allow, protocol: tcp, ports: [443], peers: [{{network: office}}]}}
  - {{action: allow, protocol: tcp, ports: [9000], peers: [{{cidr: 192.0.2.{3}}}]}}
  - {{action: deny, protocol: tcp, ports: [9001], peers: [{{cidr: 198.51.100.0/24}}]}}
)",
                              lib(i), 8000 + i, lib(next_remote(i)), i % 200);
  std::string t = fmt::format(R"(apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {{name: {0}-tests}}
cases:
  - {{from: {2}, to: {0}, port: {1}, protocol: tcp, expect: allow}}
  - {{from: 192.0.2.77, to: {0}, port: 443, protocol: tcp, expect: allow}}
  - {{from: 192.0.2.{3}, to: {0}, port: 9000, protocol: tcp, expect: allow}}
  - {{from: 198.51.100.9, to: {0}, port: 9001, protocol: tcp, expect: deny}}
)",
                              lib(i), 8000 + i, lib(next_remote(i)), i % 200);
  if (i < kLocal + 9) {
    p += "  - {action: allow, protocol: udp, ports: [5353], peers: [{cidr: 10.0.0.0/8}]}\n";
    t += fmt::format("  - {{from: 10.1.2.3, to: {}, port: 5353, protocol: udp, expect: allow}}\n", lib(i));
  }
  return {p, t};
}

// Local service i (agent-seen cgroup): egress default deny, 4 rules, a case per rule.
std::pair<std::string, std::string> local_policy(int i) {
  std::string p = fmt::format(R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {{name: {0}}}
subject: {{service: {0}}}
default: {{egress: deny}}
egress:
  - {{action: allow, protocol: tcp, ports: [5432], peers: [{{cidr: 10.200.0.0/16}}]}}
  - {{action: allow, protocol: tcp, ports: [443], peers: [{{network: office}}]}}
  - {{action: deny, protocol: tcp, ports: [25]}}
  - {{action: allow, protocol: tcp, ports: [8080], peers: [{{cidr: 203.0.113.0/24}}]}}
)",
                              lib(i));
  std::string t = fmt::format(R"(apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {{name: {0}-tests}}
cases:
  - {{from: {0}, to: 10.200.0.5, port: 5432, protocol: tcp, expect: allow}}
  - {{from: {0}, to: 192.0.2.5, port: 443, protocol: tcp, expect: allow}}
  - {{from: {0}, to: 203.0.113.5, port: 25, protocol: tcp, expect: deny}}
  - {{from: {0}, to: 203.0.113.5, port: 8080, protocol: tcp, expect: allow}}
)",
                              lib(i));
  return {p, t};
}

TEST_F(PolicyGit, AgentAppliesA417RuleLibraryWithServicesFromPolicyContext) {
  // The local services: `sleep` copies named lib-0 and lib-1, each in its own cgroup before it runs.
  auto root = fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? std::string("/sys/fs/cgroup/unified") : std::string("/sys/fs/cgroup");
  const std::string cg = "/hs-t-plib-" + random_suffix();
  std::vector<std::unique_ptr<Child>> local;
  fs::create_directories(tmp / "bin");
  for (int i = 0; i < kLocal; i++) {
    ASSERT_TRUE(fs::create_directories(root + cg + "/" + lib(i)));
    const std::string exe = (fs::path(tmp.path()) / "bin" / lib(i)).string();
    fs::copy_file("/bin/sleep", exe);
    local.push_back(std::make_unique<Child>(std::vector<std::string>{
        "sh", "-c", "echo $$ > " + root + cg + "/" + lib(i) + "/cgroup.procs && exec " + exe + " 600"}));
  }
  struct CgroupCleanup {
    std::vector<std::unique_ptr<Child>>& children;
    std::string dir;
    ~CgroupCleanup() {
      children.clear();
      std::error_code ec;
      for (int i = 0; i < kLocal; i++) fs::remove(dir + "/" + lib(i), ec);
      fs::remove(dir, ec);
    }
  } cleanup{local, root + cg};

  // The context file: the 100 services of other nodes, with addresses and ports.
  nlohmann::json ctx = {{"services", nlohmann::json::array()}};
  for (int i = kLocal; i < kServices; i++) ctx["services"].push_back({{"name", lib(i)}, {"addresses", {lib_addr(i)}}, {"ports", {8000 + i}}});
  std::ofstream(tmp / "context.json") << R"({"services": []})";  // the full file comes later
  size_t cases = 0;
  for (int i = 0; i < kServices; i++) {
    auto [p, t] = i < kLocal ? local_policy(i) : remote_policy(i);
    repo.write("policies/" + lib(i) + ".yaml", p);
    repo.write("policies/" + lib(i) + ".test.yaml", t);
    cases += size_t(std::count(t.begin(), t.end(), '{')) - 1;  // one "{from: ...}" per case, plus the metadata map
  }
  EXPECT_EQ(cases, 417u);
  auto commit = repo.commit("library");

  std::string config = fmt::format(R"(api:
  socket: {}
networks:
  office: [192.0.2.0/24]
policy:
  state_dir: {}
  work_dir: {}
  netns: {}
  context: {}
  source:
    git:
      url: {}
      branch: main
      directory: policies
      poll_seconds: 1
)",
                                   tmp / "api.sock", cfg.state_dir, cfg.work_dir, ns.name(), tmp / "context.json", repo.remote());
  Agent agent(tmp, config);
  ASSERT_TRUE(agent.start()) << "agent did not answer on its socket";
  // Without the other nodes' services the library is refused (its tests name them), and nothing is installed.
  ASSERT_TRUE(eventually([&] { return agent.status().last_result == "refused"; }, std::chrono::seconds(60)));
  EXPECT_EQ(agent.status().last_step, "lint");
  EXPECT_THAT(agent.status().last_error, HasSubstr("is neither a known service"));
  EXPECT_THAT(save(), Not(HasSubstr("HOSTSCOPE-P-")));
  // The context file grows: the same commit is tried again (after the backoff, at most 10 s) and applied.
  std::ofstream(tmp / "context.json") << ctx.dump();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return agent.status().applied_commit == commit; }, std::chrono::seconds(60)))
      << agent.status().last_step << ": " << agent.status().last_error;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "[ library ] 102 services, 417 rules, 417 cases: applied " << took << " ms after policy.context grew\n";

  // Every policy is in force: the local ones by the cgroups the agent saw, the others by their context addresses.
  auto rules = save();
  for (int i = 0; i < kLocal; i++) EXPECT_THAT(rules, HasSubstr("-m cgroup --path \"" + cg + "/" + lib(i) + "\"")) << lib(i);
  for (int i = kLocal; i < kServices; i++) EXPECT_THAT(rules, HasSubstr("-d " + lib_addr(i) + "/32")) << lib(i);
  EXPECT_THAT(rules, HasSubstr("--dport 9001"));
  auto st = api::call(agent.sock(), "policy.status");
  ASSERT_TRUE(st);
  EXPECT_GE((*st)["backend"]["rules"].get<size_t>(), 417u) << st->dump();
}

TEST(PolicyGitCli, SyncWithoutAgentExitsTwo) {
  TempDir tmp;
  auto r = sh(bin() + " policy sync --socket " + tmp / "none.sock");
  EXPECT_EQ(r.status, 2) << r.out;
}

}  // namespace
