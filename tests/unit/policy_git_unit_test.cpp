// The `policy:` section parser and the Git source (libgit2) against local bare repositories (no root).
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>

#include "agent/daemon/config.h"
#include "policy/git_source.h"
#include "policy/reconcile_config.h"
#include "support/git_repo.h"

using namespace hostscope::policy;
using hostscope::Result;
using namespace hostscope::testing;
using ::testing::HasSubstr;

namespace {

Result<ReconcileConfig> parse(const std::string& yaml) { return parse_reconcile_config(YAML::Load(yaml)["policy"], "c.yaml"); }

TEST(PolicyConfig, AbsentMeansNoSource) {
  auto c = parse("other: 1\n");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->enabled());
  EXPECT_EQ(c->state_dir, "/var/lib/hostscope/policy");
  EXPECT_EQ(c->work_dir, "/var/lib/hostscope/policy-git");
}

TEST(PolicyConfig, GitSourceParses) {
  auto c = parse(R"(policy:
  state_dir: /tmp/s
  work_dir: /tmp/w
  iptables: nft
  netns: hs-t-x
  ipv6: false
  source:
    git:
      url: https://user:secret@git.example.com/netpol.git
      branch: prod
      directory: /policies/
      poll_seconds: 5
      token_file: /etc/hostscope/git/token
      allowed_signers_file: /etc/hostscope/git/allowed_signers
      follow_force_push: true
)");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->kind, ReconcileConfig::Kind::Git);
  EXPECT_EQ(c->git.branch, "prod");
  EXPECT_EQ(c->git.directory, "policies");
  EXPECT_EQ(c->poll_seconds, 5u);
  EXPECT_TRUE(c->git.follow_force_push);
  EXPECT_EQ(c->iptables, "nft");
  EXPECT_EQ(c->netns, "hs-t-x");
  EXPECT_FALSE(c->ipv6);
  // The token in the URL never reaches status or logs.
  EXPECT_EQ(c->describe(), "git https://user:***@git.example.com/netpol.git branch prod dir policies");
}

TEST(PolicyConfig, DirectorySourceParses) {
  auto c = parse("policy:\n  source:\n    directory: /etc/hostscope/policies\n    poll_seconds: 7\n");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->kind, ReconcileConfig::Kind::Directory);
  EXPECT_EQ(c->directory, "/etc/hostscope/policies");
  EXPECT_EQ(c->poll_seconds, 7u);
  EXPECT_EQ(c->describe(), "dir /etc/hostscope/policies");
}

struct Bad {
  const char* yaml;
  const char* where;  // file:line:column
  const char* what;
};

class PolicyConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(PolicyConfigErrors, NameFileLineColumn) {
  auto c = parse(GetParam().yaml);
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().str(), HasSubstr(GetParam().where));
  EXPECT_THAT(c.error().str(), HasSubstr(GetParam().what));
}

INSTANTIATE_TEST_SUITE_P(
    All, PolicyConfigErrors,
    ::testing::Values(Bad{"policy:\n  sorce: {}\n", "c.yaml:2:3", "unknown key 'sorce' in policy"},
                      Bad{"policy:\n  iptables: xt\n", "c.yaml:2:13", "one of iptables, nft, legacy"},
                      Bad{"policy:\n  state_dir: rel/dir\n", "c.yaml:2:14", "absolute path"},
                      Bad{"policy:\n  netns: a/b\n", "c.yaml:2:10", "network namespace"},
                      Bad{"policy:\n  source:\n    git: {branch: main}\n", "c.yaml:3:10", "url is required"},
                      Bad{"policy:\n  source:\n    git: {url: x, poll_seconds: 0}\n", "c.yaml:3:33", "between 1 and 86400"},
                      Bad{"policy:\n  source:\n    git: {url: x, follow_force_push: maybe}\n", "c.yaml:3:38", "wrong type"},
                      Bad{"policy:\n  source:\n    git: {url: x, directory: ../etc}\n", "c.yaml:3:30", "inside the repository"},
                      Bad{"policy:\n  source:\n    git: {url: x, branch: 'a..b'}\n", "c.yaml:3:27", "not a valid branch"},
                      Bad{"policy:\n  source:\n    git: {url: x}\n    directory: /p\n", "c.yaml:3:5", "either git or directory"},
                      Bad{"policy:\n  source: {}\n", "c.yaml:2:11", "needs git or directory"},
                      Bad{"policy:\n  source:\n    git: {url: x, ssh_key_file: /k, token_file: /t}\n", "c.yaml:3:10",
                          "ssh_key_file or token_file"},
                      Bad{"policy: [1]\n", "c.yaml:1:9", "policy must be a mapping"}));

TEST(PolicyConfig, AgentConfigCarriesThePolicySectionAndRejectsABadOne) {
  auto good = hostscope::daemon::parse_config("api: {socket: /tmp/a.sock}\npolicy:\n  source:\n    git: {url: /srv/netpol.git}\n", "c.yaml");
  ASSERT_TRUE(good) << good.error().str();
  EXPECT_EQ(good->policy.kind, ReconcileConfig::Kind::Git);
  EXPECT_EQ(good->policy.git.url, "/srv/netpol.git");
  auto none = hostscope::daemon::parse_config("api: {socket: /tmp/a.sock}\n", "c.yaml");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->policy.enabled());
  // Errors elsewhere and in `policy` are all reported, and the whole file is rejected.
  auto bad = hostscope::daemon::parse_config("api: {max_clients: 0}\npolicy:\n  source:\n    git: {branch: main}\n", "c.yaml");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().str(), HasSubstr("c.yaml:1:20"));
  EXPECT_THAT(bad.error().str(), HasSubstr("c.yaml:4:10: policy.source.git.url is required"));
}

// policy.context: a JSON context file, checked when the config loads; a bad one rejects the config, naming the
// config line and the file's path and what is wrong with it.
TEST(PolicyConfig, ContextFileIsLoadedAndABadOneNamesItsPath) {
  char tmpl[] = "/tmp/hs-policy-context-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  std::ofstream(dir + "/good.json") << R"({"services": [{"name": "billing", "addresses": ["10.9.0.0/24"], "ports": [443]}]})";
  std::ofstream(dir + "/bad.json") << R"({"services": [{"name": "billing", "addresses": ["10.9.0.0/24"]},)";
  std::ofstream(dir + "/noname.json") << R"({"services": [{"addresses": ["10.9.0.1"]}]})";
  auto good = parse("policy:\n  context: " + dir + "/good.json\n");
  ASSERT_TRUE(good) << good.error().str();
  EXPECT_EQ(good->context_file, dir + "/good.json");
  EXPECT_FALSE(good->allow_mass_removal);
  for (const char* name : {"bad.json", "noname.json", "missing.json"}) {
    auto bad = parse("policy:\n  context: " + dir + "/" + name + "\n");
    ASSERT_FALSE(bad) << name;
    EXPECT_THAT(bad.error().str(), HasSubstr("c.yaml:2:12: policy.context: policy context file " + dir + "/" + name)) << bad.error().str();
  }
  EXPECT_THAT(parse("policy:\n  context: /x/../nope.json\n").error().str(), HasSubstr("open failed: No such file or directory"));
  EXPECT_THAT(parse("policy:\n  context: rel.json\n").error().str(), HasSubstr("c.yaml:2:12: policy.context must be an absolute path"));
  std::filesystem::remove_all(dir);
}

TEST(PolicyConfig, ImpactGateKeyDefaultsToWarnAndRejectsUnknownValues) {
  auto d = parse("policy:\n  ipv6: true\n");
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(d->impact, ReconcileConfig::Impact::Warn);
  auto refuse = parse("policy:\n  impact: refuse\n");
  ASSERT_TRUE(refuse) << refuse.error().str();
  EXPECT_EQ(refuse->impact, ReconcileConfig::Impact::Refuse);
  EXPECT_EQ(parse("policy:\n  impact: off\n")->impact, ReconcileConfig::Impact::Off);
  EXPECT_EQ(parse("policy:\n  impact: audit-first\n")->impact, ReconcileConfig::Impact::AuditFirst);
  auto bad = parse("policy:\n  impact: audit\n");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().str(), HasSubstr("c.yaml:2:11: policy.impact must be one of off, warn, refuse, audit-first"));
}

TEST(RedactUrl, HidesPasswordsOnly) {
  EXPECT_EQ(redact_url("https://u:p@h/x.git"), "https://u:***@h/x.git");
  EXPECT_EQ(redact_url("ssh://git@h/x.git"), "ssh://git@h/x.git");
  EXPECT_EQ(redact_url("/srv/git/x.git"), "/srv/git/x.git");
}

const char* kPolicy = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {cgroup: /web}
egress:
  - action: deny
    peers: [{cidr: 203.0.113.0/24}]
)";

class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp.path().empty());
    ASSERT_TRUE(repo.ok()) << "git CLI fixture failed";
    cfg.url = repo.remote();
    cfg.directory = "policies";
  }
  TempDir tmp;
  GitRepo repo{tmp.path()};
  GitSourceConfig cfg;
};

TEST_F(GitSourceTest, FetchesTipAndExportsOnlyThePolicyDirectory) {
  repo.write("policies/web.yaml", kPolicy);
  repo.write("policies/sub/ignored.yaml", "x: 1\n");
  repo.write("README.md", "not policy\n");
  auto c1 = repo.commit("first");
  ASSERT_FALSE(c1.empty());
  GitSource src(cfg, tmp / "wc");
  auto tip = src.fetch();
  ASSERT_TRUE(tip) << tip.error().str();
  EXPECT_EQ(tip->id, c1);
  EXPECT_EQ(tip->summary, "first");
  EXPECT_GT(tip->time, 0);
  ASSERT_TRUE(src.export_tree(c1, tmp / "stage"));
  std::ifstream f(tmp / "stage/web.yaml");
  std::string text((std::istreambuf_iterator<char>(f)), {});
  EXPECT_EQ(text, kPolicy);
  EXPECT_FALSE(std::filesystem::exists(tmp / "stage/sub"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "stage/README.md"));
  // The staging directory must be fresh.
  EXPECT_FALSE(src.export_tree(c1, tmp / "stage"));
}

// A symlink committed as a policy file (git mode 120000) would be skipped like a sub-tree: refused instead, by name.
TEST_F(GitSourceTest, SymlinkNamedLikeAPolicyFileIsRefused) {
  repo.write("policies/web.yaml", kPolicy);
  std::filesystem::create_symlink("web.yaml", repo.work() + "/policies/alias.yaml");
  auto c = repo.commit("symlink");
  ASSERT_FALSE(c.empty());
  GitSource src(cfg, tmp / "wc");
  ASSERT_TRUE(src.fetch());
  auto x = src.export_tree(c, tmp / "stage");
  ASSERT_FALSE(x);
  EXPECT_EQ(x.error().str(), "commit " + c + ": alias.yaml is not a regular file (git mode 120000); a policy file must be one");
}

TEST_F(GitSourceTest, AncestryDetectsRewrittenHistory) {
  repo.write("policies/web.yaml", kPolicy);
  auto c1 = repo.commit("first");
  repo.write("policies/web.yaml", std::string(kPolicy) + "    comment: two\n");
  auto c2 = repo.commit("second");
  GitSource src(cfg, tmp / "wc");
  ASSERT_TRUE(src.fetch());
  auto d = src.descends_from(c2, c1);
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_TRUE(*d);
  // Rewrite: drop c2, commit something else, force-push.
  ASSERT_EQ(repo.git("reset -q --hard " + c1).status, 0);
  repo.write("policies/web.yaml", std::string(kPolicy) + "    comment: three\n");
  auto c3 = repo.commit("rewritten", "", true);
  ASSERT_FALSE(c3.empty());
  auto tip = src.fetch();
  ASSERT_TRUE(tip) << tip.error().str();
  EXPECT_EQ(tip->id, c3);
  EXPECT_FALSE(src.descends_from(c3, c2).value());
  EXPECT_TRUE(src.descends_from(c3, c1).value());
  EXPECT_FALSE(src.descends_from(c3, std::string(40, 'a')).value());  // unknown commit: treated as rewritten
}

TEST_F(GitSourceTest, MissingDirectoryAndBranchAreErrors) {
  repo.write("other/web.yaml", kPolicy);
  auto c1 = repo.commit("first");
  GitSource src(cfg, tmp / "wc");
  ASSERT_TRUE(src.fetch());
  auto x = src.export_tree(c1, tmp / "stage");
  ASSERT_FALSE(x);
  EXPECT_THAT(x.error().str(), HasSubstr("has no directory 'policies'"));
  auto other = cfg;
  other.branch = "nope";
  GitSource src2(other, tmp / "wc2");
  auto t = src2.fetch();
  ASSERT_FALSE(t);
  EXPECT_THAT(t.error().str(), HasSubstr("nope"));
}

TEST_F(GitSourceTest, UnreachableRemoteFailsAndCorruptWorkingCopyIsRecloned) {
  repo.write("policies/web.yaml", kPolicy);
  auto c1 = repo.commit("first");
  GitSource src(cfg, tmp / "wc");
  ASSERT_TRUE(src.fetch());
  EXPECT_FALSE(src.recloned_last_fetch());
  std::filesystem::rename(repo.remote(), repo.remote() + ".away");
  auto down = src.fetch();
  ASSERT_FALSE(down);
  EXPECT_THAT(down.error().str(), HasSubstr("git fetch of branch main"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "wc/HEAD")) << "a failed fetch keeps the working copy";
  std::filesystem::rename(repo.remote() + ".away", repo.remote());
  // Corrupt the clone: its object store is gone.
  std::filesystem::remove_all(tmp / "wc/objects");
  std::ofstream(tmp / "wc/HEAD") << "garbage\n";
  auto again = src.fetch();
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_TRUE(src.recloned_last_fetch());
  EXPECT_EQ(again->id, c1);
  EXPECT_TRUE(src.export_tree(c1, tmp / "stage"));
}

TEST_F(GitSourceTest, SshSignaturesAgainstAllowedSigners) {
  auto allowed_pub = make_ssh_key(tmp / "allowed");
  auto other_pub = make_ssh_key(tmp / "other");
  ASSERT_FALSE(allowed_pub.empty());
  ASSERT_FALSE(other_pub.empty());
  std::ofstream(tmp / "allowed_signers") << "tester@example.com namespaces=\"git\" " << allowed_pub << "\n";
  cfg.allowed_signers_file = tmp / "allowed_signers";
  repo.write("policies/web.yaml", kPolicy);
  auto unsigned_c = repo.commit("unsigned");
  repo.write("policies/web.yaml", std::string(kPolicy) + "    comment: a\n");
  auto signed_other = repo.commit("signed by other", tmp / "other");
  repo.write("policies/web.yaml", std::string(kPolicy) + "    comment: b\n");
  auto signed_ok = repo.commit("signed", tmp / "allowed");
  ASSERT_FALSE(signed_ok.empty());
  GitSource src(cfg, tmp / "wc");
  ASSERT_TRUE(src.fetch());
  auto u = src.verify_signature(unsigned_c);
  ASSERT_FALSE(u);
  EXPECT_THAT(u.error().str(), HasSubstr("is not signed"));
  auto o = src.verify_signature(signed_other);
  ASSERT_FALSE(o);
  EXPECT_THAT(o.error().str(), HasSubstr("not in"));
  auto ok = src.verify_signature(signed_ok);
  EXPECT_TRUE(ok) << ok.error().str();
}

}  // namespace
