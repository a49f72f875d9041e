// Every lint class: exact message and 1-based file:line:column.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "policy/analysis.h"
#include "policy/compiler.h"
#include "policy/loader.h"
#include "support/policy_cli.h"

namespace hostscope::policy {
namespace {

Context catalogue() {
  Context c;
  c.services.push_back({"web", {"/web"}, {"10.1.0.2"}, {80}, "example.com/web", "shop", "web", "/usr/bin/web"});
  c.services.push_back({"db", {}, {"10.1.0.3"}, {}, "", "shop", "db", ""});
  c.networks["office"] = {"192.0.2.0/24"};
  return c;
}

const std::string kHead = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nsubject:\n  service: web\n";

// Lints one file and returns its diagnostics as strings.
std::vector<std::string> lint_text(const std::string& text) {
  auto r = lint(load_text(text, "t.yaml"), catalogue());
  std::vector<std::string> out;
  for (const auto& d : r.diagnostics) out.push_back(d.str());
  return out;
}

using ::testing::ElementsAre;

TEST(PolicyLint, CleanPolicyHasNoDiagnostics) {
  auto d = lint_text(kHead + "egress:\n  - action: allow\n    peers: [{service: db}, {network: office}, {cidr: 2001:db8::/32}]\n"
                             "    ports: [5432, \"8000-8080\"]\n    protocol: tcp\n");
  EXPECT_TRUE(d.empty()) << ::testing::PrintToString(d);
}

TEST(PolicyLint, YamlSyntaxErrorHasMark) {
  auto d = lint_text("apiVersion: hostscope.io/v1\nkind: [NetworkPolicy\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], "t.yaml:3:1: error: YAML syntax error: end of sequence flow not found");
}

TEST(PolicyLint, UnknownKeySuggestsClosest) {
  auto d = lint_text(kHead + "egres:\n  - action: allow\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:7:1: error: unknown key 'egres' in 'NetworkPolicy'; did you mean 'egress'?"));
  d = lint_text(kHead + "egress:\n  - action: allow\n    zzz: 1\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:9:5: error: unknown key 'zzz' in 'egress[]'; known keys: action, peers, ports, protocol, comment"));
}

TEST(PolicyLint, WrongType) {
  auto d = lint_text(kHead + "egress:\n  action: allow\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:8:3: error: 'egress' must be a list, got a map"));
  d = lint_text(kHead + "failsafe: maybe\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:7:11: error: 'failsafe' must be true or false, got 'maybe'"));
}

TEST(PolicyLint, BadCidr) {
  auto d = lint_text(kHead + "egress:\n  - action: deny\n    peers:\n      - cidr: 10.0.0.300/8\n      - cidr: 10.0.0.0/33\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:10:15: error: invalid CIDR '10.0.0.300/8': '10.0.0.300' is not an IPv4 or IPv6 address",
                             "t.yaml:11:15: error: invalid CIDR '10.0.0.0/33': prefix length '/33' must be 0-32 for ipv4"));
  d = lint_text(kHead + "egress:\n  - action: deny\n    peers: [{cidr: 10.0.0.1/8}]\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:9:20: warning: CIDR '10.0.0.1/8' has host bits set; it means 10.0.0.0/8"));
}

TEST(PolicyLint, PortOutOfRangeAndBadRange) {
  auto d = lint_text(kHead + "egress:\n  - action: allow\n    ports: [0, 70000, \"90-80\", 8o]\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:9:13: error: port 0 out of range 1-65535",
                             "t.yaml:9:16: error: port 70000 out of range 1-65535",
                             "t.yaml:9:23: error: port range '90-80' is empty: 90 is greater than 80; write \"80-90\"",
                             "t.yaml:9:32: error: invalid port '8o': expected a number 1-65535 or a range like \"8000-8080\""));
}

TEST(PolicyLint, DuplicateNamesNameBothPlaces) {
  auto loaded = load_dir(std::string(HOSTSCOPE_TESTDATA) + "/bad");
  auto r = lint(loaded, catalogue());
  std::vector<std::string> d;
  for (const auto& x : r.diagnostics) d.push_back(x.str());
  EXPECT_THAT(d, ElementsAre("a.yaml:7:1: error: unknown key 'egres' in 'NetworkPolicy'; did you mean 'egress'?",
                             "b.yaml:4:9: error: duplicate NetworkPolicy name 'web': also defined at a.yaml:4:9; names must be unique in a policy set"));
  EXPECT_EQ(r.exit_code(), 1);
}

TEST(PolicyLint, ConflictingDefaultsAreErrors) {
  std::string a = kHead + "default:\n  egress: deny\n";
  std::string b = "---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: q\nsubject:\n  cgroup: /web\ndefault:\n  egress: allow\n";
  auto d = lint_text(a + b);
  EXPECT_THAT(d, ElementsAre("t.yaml:17:3: error: policy 'q' conflicts with policy 'p' (t.yaml:4:9): both select cgroup /web for egress but "
                             "have different egress defaults (deny in 'p', allow in 'q'); make them agree or select disjoint subjects"));
  // Same defaults on the same subject merge fine (rules concatenate in merge order).
  EXPECT_TRUE(lint_text(a + "---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: q\nsubject:\n  cgroup: /web\n"
                            "default:\n  egress: deny\n").empty());
}

TEST(PolicyLint, ShadowedRuleIsWarning) {
  auto d = lint_text(kHead + "egress:\n  - action: deny\n    peers: [{cidr: 10.0.0.0/8}]\n  - action: allow\n    peers: [{cidr: 10.1.0.0/16}]\n"
                             "    ports: [80]\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:10:5: warning: egress rule 2 of policy 'p' can never match: rule 1 at t.yaml:8:5 (deny) already "
                             "matches everything it matches"));
  // A narrower earlier rule does not shadow, nor does `log`.
  EXPECT_TRUE(lint_text(kHead + "egress:\n  - action: log\n  - action: deny\n    ports: [80]\n  - action: allow\n    protocol: tcp\n").empty());
}

// The shadow check indexes earlier rules (by port for rules with any peer, by peer for the others); every path of that
// index must still find the first earlier rule that covers, and only that one.
TEST(PolicyLint, ShadowIndexFindsTheFirstCoveringRule) {
  auto shadowed_by = [](const std::string& rules) {
    std::vector<std::string> out;
    for (const auto& w : lint_text(kHead + "egress:\n" + rules)) {
      auto at = w.find("can never match: rule ");
      auto rule = w.find("egress rule ");
      if (at == std::string::npos || rule == std::string::npos) {
        out.push_back(w);
        continue;
      }
      out.push_back(w.substr(rule + 12, w.find(' ', rule + 12) - rule - 12) + "<" + w.substr(at + 22, w.find(' ', at + 22) - at - 22));
    }
    return out;
  };
  // Any peer, single port; then a wide range (> 256 ports, not indexed per port); then any port.
  EXPECT_THAT(shadowed_by("  - {action: deny, ports: [443]}\n  - {action: allow, ports: [443], peers: [{cidr: 10.0.0.1}]}\n"),
              ElementsAre("2<1"));
  EXPECT_THAT(shadowed_by("  - {action: deny, ports: [\"1000-9000\"]}\n  - {action: allow, ports: [8080, 8081]}\n"), ElementsAre("2<1"));
  EXPECT_THAT(shadowed_by("  - {action: deny, protocol: tcp}\n  - {action: allow, protocol: tcp, ports: [22]}\n"), ElementsAre("2<1"));
  // A rule with any port is not covered by one with ports, whatever its peers.
  EXPECT_THAT(shadowed_by("  - {action: deny, ports: [\"1-65535\"]}\n  - {action: allow}\n"), ElementsAre());
  // Peers: a supernet of another prefix length, in v4 and v6; the first of two covering rules is named.
  EXPECT_THAT(shadowed_by("  - {action: deny, peers: [{cidr: 192.168.0.0/16}]}\n  - {action: deny, peers: [{cidr: 192.168.4.0/24}]}\n"
                          "  - {action: allow, peers: [{cidr: 192.168.4.7}], ports: [80]}\n"),
              ElementsAre("2<1", "3<1"));
  EXPECT_THAT(shadowed_by("  - {action: deny, peers: [{cidr: \"fd00::/8\"}], ports: [53]}\n"
                          "  - {action: allow, peers: [{cidr: \"fd00:1::5\"}, {cidr: \"fd12::/64\"}], ports: [53]}\n"),
              ElementsAre("2<1"));
  // Every peer must be covered, and by the same earlier rule's peers; a disjoint address is not.
  EXPECT_THAT(shadowed_by("  - {action: deny, peers: [{cidr: 10.0.0.0/8}]}\n  - {action: allow, peers: [{cidr: 10.1.0.0/16}, {cidr: 11.0.0.1}]}\n"),
              ElementsAre());
  // Same peer, different port: not covered. Same port via the peer index but a narrower earlier port list: not covered.
  EXPECT_THAT(shadowed_by("  - {action: deny, peers: [{cidr: 10.0.0.1}], ports: [80]}\n  - {action: allow, peers: [{cidr: 10.0.0.1}], ports: [81]}\n"
                          "  - {action: allow, peers: [{cidr: 10.0.0.1}], ports: [80, 82]}\n"),
              ElementsAre());
  // `log` never shadows, even when it would cover.
  EXPECT_THAT(shadowed_by("  - {action: log, peers: [{cidr: 10.0.0.0/8}]}\n  - {action: deny, peers: [{cidr: 10.0.0.1}]}\n"), ElementsAre());
  // A large set where only the last rule is shadowed, by rule 1500 (one of 3000 distinct peer/port rules).
  std::string many;
  for (int i = 0; i < 3000; i++) many += fmt::format("  - {{action: deny, peers: [{{cidr: 10.{}.{}.0/24}}], ports: [{}]}}\n", i / 256, i % 256, 1000 + i);
  many += "  - {action: allow, peers: [{cidr: 10.5.220.9}], ports: [2500]}\n";
  EXPECT_THAT(shadowed_by(many), ElementsAre("3001<1501"));
}

TEST(PolicyLint, UnknownServicesAreWarnings) {
  auto d = lint_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nsubject:\n  service: wbe\n"
                     "egress:\n  - action: allow\n    peers: [{service: nosuch}]\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:6:3: warning: subject service 'wbe' is not in the service catalogue (did you mean 'web'?); policy 'p' selects "
                             "nothing until it appears",
                             "t.yaml:9:23: warning: peer service 'nosuch' is not in the service catalogue; this peer matches nothing"));
  EXPECT_EQ(lint(load_text(kHead + "egress:\n  - action: allow\n    peers: [{service: nosuch}]\n", "t.yaml"), catalogue()).exit_code(), 0);
}

// A subject made only of addresses of one family is dispatched in that family's table only: a rule (or a
// peer) whose addresses are all of the other family can never match.
TEST(PolicyLint, PeersOfTheOtherFamilyCanNeverMatch) {
  const std::string pod = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nsubject:\n  service: db\n";
  auto d = lint_text(pod + "egress:\n  - action: allow\n    peers: [{cidr: 2001:db8::/32}]\n"
                           "  - action: deny\n    peers:\n      - cidr: 10.9.0.0/16\n      - cidr: fd00::/8\n"
                           "ingress:\n  - action: allow\n    peers: [{cidr: \"::/0\"}]\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:8:5: warning: egress rule 1 of policy 'p' can never match: its peers are all IPv6 and the subject "
                             "has only IPv4 addresses (10.1.0.3/32), so it is enforced in the IPv4 table only",
                             "t.yaml:13:15: warning: peer cidr 'fd00::/8' of egress rule 2 of policy 'p' can never match: it is IPv6 "
                             "and the subject has only IPv4 addresses (10.1.0.3/32)",
                             "t.yaml:15:5: warning: ingress rule 1 of policy 'p' can never match: its peers are all IPv6 and the subject "
                             "has only IPv4 addresses (10.1.0.3/32), so it is enforced in the IPv4 table only"));
  // The reverse, and a service peer: an IPv6-only subject with a peer service that has only IPv4 addresses.
  Context ctx = catalogue();
  ctx.services.push_back({"pod6", {}, {"fd00::7"}, {}, "", "", "", ""});
  auto r = lint(load_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: q\nsubject:\n  service: pod6\n"
                          "egress:\n  - action: allow\n    peers: [{service: db}]\n",
                          "t.yaml"),
                ctx);
  ASSERT_EQ(r.diagnostics.size(), 1u);
  EXPECT_EQ(r.diagnostics[0].str(), "t.yaml:8:5: warning: egress rule 1 of policy 'q' can never match: its peers are all IPv4 and the "
                                    "subject has only IPv6 addresses (fd00::7/128), so it is enforced in the IPv6 table only");
  // Local processes (cgroups) send in both families: no warning, even with IPv6-only peers.
  EXPECT_TRUE(lint_text(kHead + "egress:\n  - action: allow\n    peers: [{cidr: 2001:db8::/32}]\n").empty());
  // A service with addresses in both families, mixed peers, any peer: nothing to say.
  ctx.services.push_back({"dual", {}, {"10.1.0.9", "fd00::9"}, {}, "", "", "", ""});
  r = lint(load_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: d\nsubject:\n  service: dual\n"
                     "egress:\n  - action: allow\n    peers: [{cidr: 2001:db8::/32}]\n  - action: deny\n",
                     "t.yaml"),
           ctx);
  EXPECT_TRUE(r.diagnostics.empty()) << r.diagnostics[0].str();
}

TEST(PolicyLint, BadActionProtocolMode) {
  auto d = lint_text(kHead + "mode: enforcing\negress:\n  - action: drop\n    protocol: icmp\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:7:7: error: invalid mode 'enforcing'; expected one of enforce, audit",
                             "t.yaml:9:13: error: invalid action 'drop'; expected one of allow, deny, reject, log",
                             "t.yaml:10:15: error: invalid protocol 'icmp'; expected one of tcp, udp"));
  d = lint_text(kHead + "egress:\n  - action: alow\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:8:13: error: invalid action 'alow'; expected one of allow, deny, reject, log (did you mean 'allow'?)"));
}

TEST(PolicyLint, HeaderProblems) {
  EXPECT_THAT(lint_text("apiVersion: v2\nkind: NetworkPolicy\n"),
              ElementsAre("t.yaml:1:13: error: unsupported apiVersion 'v2'; expected 'hostscope.io/v1'"));
  EXPECT_THAT(lint_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: Web_1\nsubject:\n  service: web\n"),
              ElementsAre("t.yaml:4:9: error: invalid name 'Web_1': use lowercase letters, digits and '-', at most 63 characters"));
  EXPECT_THAT(lint_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n"),
              ElementsAre("t.yaml:1:1: error: missing 'subject': say which local workloads this policy applies to"));
  EXPECT_THAT(lint_text("apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\nsubject:\n  cgroup: '/a b'\n"),
              ElementsAre("t.yaml:6:11: error: cgroup path '/a b' contains quotes, spaces or control characters"));
}

TEST(PolicyLint, UnknownNetworkAndBadTestEndpoints) {
  auto d = lint_text(kHead + "egress:\n  - action: allow\n    peers: [{network: ofice}]\n---\napiVersion: hostscope.io/v1\nkind: PolicyTest\n"
                             "metadata:\n  name: t\ncases:\n  - {from: web, to: nowhere, port: 80, expect: allow}\n");
  EXPECT_THAT(d, ElementsAre("t.yaml:9:23: error: unknown network 'ofice' (did you mean 'office'?); named networks come from the agent config (networks:)",
                             "t.yaml:16:5: error: test case 'web -> nowhere:80/tcp': 'nowhere' is neither a known service nor an IP address"));
}

TEST(PolicyLint, AliasBombIsBounded) {
  std::string y = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  const char* prev = "a";
  std::string names[] = {"b", "c", "d", "e", "f", "g"};
  for (auto& n : names) {
    y += n + ": &" + n + " [";
    for (int i = 0; i < 10; ++i) y += std::string(i ? ", " : "") + "*" + prev;
    y += "]\n";
    prev = n.c_str();
  }
  y += "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nsubject: {service: web}\negress:\n  - action: allow\n    ports: *g\n";
  auto r = lint(load_text(y, "t.yaml"), catalogue());
  EXPECT_FALSE(r.ok());
}

TEST(PolicyLint, EndlessDocumentStreamIsBounded) {
  // yaml-cpp 0.7 reports documents forever for this input (found by fuzz_policy).
  auto d = lint_text("!papIn~Ve:cicidrdrs,");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0], "t.yaml: error: more than 10000 YAML documents in one file");
}

TEST(PolicyLoader, MergeOrderIsFileNameThenDocument) {
  auto r = load_dir(std::string(HOSTSCOPE_TESTDATA) + "/merge");
  ASSERT_EQ(r.set.policies.size(), 3u);
  EXPECT_EQ(r.set.policies[0].name, "first");
  EXPECT_EQ(r.set.policies[1].name, "second");
  EXPECT_EQ(r.set.policies[2].name, "third");
  EXPECT_EQ(r.set.files, (std::vector<std::string>{"10-a.yaml", "20-b.yaml"}));
  EXPECT_EQ(r.set.source_hash.size(), 16u);
  EXPECT_EQ(load_dir(std::string(HOSTSCOPE_TESTDATA) + "/merge").set.source_hash, r.set.source_hash);
}

// A temporary policy directory holding one good policy (a.yaml) plus whatever a test adds.
struct PolicyDir {
  std::string path;
  PolicyDir() {
    char tmpl[] = "/tmp/hs-policy-dir-XXXXXX";
    path = mkdtemp(tmpl);
    std::ofstream(path + "/a.yaml") << kHead << "default: {egress: deny}\n";
  }
  ~PolicyDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

std::vector<std::string> load_errors(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& d : load_dir(dir).diagnostics)
    if (d.severity == Severity::Error) out.push_back(d.str());
  return out;
}

// Every entry named like a policy file is read whole or the set is refused, naming the entry and why.
TEST(PolicyLoader, DanglingSymlinkIsAnError) {
  PolicyDir d;
  ASSERT_EQ(symlink("..data/web.yaml", (d / "web.yaml").c_str()), 0);
  EXPECT_THAT(load_errors(d.path), ElementsAre("web.yaml: error: cannot read policy file: it is a symlink to '..data/web.yaml', "
                                              "which does not exist (No such file or directory)"));
}

TEST(PolicyLoader, SymlinkLoopIsAnError) {
  PolicyDir d;
  ASSERT_EQ(symlink("b.yaml", (d / "b.yaml").c_str()), 0);
  EXPECT_THAT(load_errors(d.path), ElementsAre("b.yaml: error: cannot read policy file: it is a symlink to 'b.yaml', "
                                              "which cannot be resolved (Too many levels of symbolic links)"));
}

TEST(PolicyLoader, FifoIsRefusedWithoutBeingOpened) {
  PolicyDir d;
  ASSERT_EQ(mkfifo((d / "x.yaml").c_str(), 0600), 0);
  // Opening a FIFO for reading blocks until a writer comes: the test would hang if the loader opened it.
  EXPECT_THAT(load_errors(d.path), ElementsAre("x.yaml: error: cannot read policy file: it is a FIFO, not a regular file"));
  ASSERT_EQ(symlink("x.yaml", (d / "y.yaml").c_str()), 0);
  EXPECT_THAT(load_errors(d.path), ElementsAre("x.yaml: error: cannot read policy file: it is a FIFO, not a regular file",
                                              "y.yaml: error: cannot read policy file: it is a symlink to 'x.yaml', "
                                              "which is a FIFO, not a regular file"));
}

TEST(PolicyLoader, SymlinkToDeviceIsRefused) {
  PolicyDir d;
  ASSERT_EQ(symlink("/dev/zero", (d / "zero.yaml").c_str()), 0);
  EXPECT_THAT(load_errors(d.path), ElementsAre("zero.yaml: error: cannot read policy file: it is a symlink to '/dev/zero', "
                                              "which is a character device, not a regular file"));
}

TEST(PolicyLoader, DirectoryNamedLikeAPolicyIsRefused) {
  PolicyDir d;
  std::filesystem::create_directory(d / "x.yml");
  EXPECT_THAT(load_errors(d.path), ElementsAre("x.yml: error: cannot read policy file: it is a directory, not a regular file"));
}

// Kubernetes ConfigMap volumes: x.yaml -> ..data/x.yaml, ..data -> ..2026_12_04_.../ (a directory of regular files).
TEST(PolicyLoader, ConfigMapStyleSymlinksAreRead) {
  PolicyDir d;
  std::filesystem::create_directory(d / "..2026_12_04_17_00_00.123");
  std::ofstream(d / "..2026_12_04_17_00_00.123/web.yaml") << "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: web}\n"
                                                           "subject: {service: web}\n";
  ASSERT_EQ(symlink("..2026_12_04_17_00_00.123", (d / "..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/web.yaml", (d / "web.yaml").c_str()), 0);
  auto r = load_dir(d.path);
  EXPECT_TRUE(load_errors(d.path).empty());
  ASSERT_EQ(r.set.policies.size(), 2u);
  EXPECT_EQ(r.set.policies[1].name, "web");
  EXPECT_EQ(r.set.files, (std::vector<std::string>{"a.yaml", "web.yaml"}));
}

TEST(PolicyCompile, RefusesSetWithErrors) {
  auto c = compile(load_text(kHead + "egress:\n  - action: drop\n", "t.yaml"), catalogue());
  EXPECT_FALSE(c.ok());
  EXPECT_TRUE(has_errors(c.diagnostics));
}

using cli_test::capture_cli;
using cli_test::run_cli;

TEST(PolicyCli, LintExitCodes) {
  std::string data = HOSTSCOPE_TESTDATA;
  EXPECT_EQ(run_cli({"policy", "lint", data + "/merge"}), 0);  // warnings only (unknown services)
  EXPECT_EQ(run_cli({"policy", "lint", data + "/bad"}), 1);
  EXPECT_EQ(run_cli({"policy", "lint", data + "/does-not-exist"}), 2);
  EXPECT_EQ(run_cli({"policy", "plan", data + "/bad", "--state-dir", "/nonexistent"}), 1);  // refuses before touching iptables
}

TEST(PolicyCli, LintAndApplyRefuseASetWithAMissingFile) {
  PolicyDir d;
  ASSERT_EQ(symlink("..data/web.yaml", (d / "web.yaml").c_str()), 0);
  auto lint = capture_cli({"policy", "lint", d.path});
  EXPECT_EQ(lint.code, 1);
  EXPECT_THAT(lint.out, ::testing::HasSubstr("web.yaml: error: cannot read policy file: it is a symlink to '..data/web.yaml'"));
  EXPECT_THAT(lint.out, ::testing::HasSubstr("1 error(s)"));
  // apply refuses before any iptables tool runs (the namespace does not exist, so nothing on the host could change
  // even if it did not); no generation is written.
  PolicyDir state;
  auto apply = capture_cli({"policy", "apply", d.path, "--state-dir", state.path, "--netns", "hs-no-such-netns-p14"});
  EXPECT_EQ(apply.code, 1);
  EXPECT_THAT(apply.err, ::testing::HasSubstr("policy set does not validate; nothing was changed")) << apply.err;
  EXPECT_FALSE(std::filesystem::exists(state / "current"));
}

}  // namespace
}  // namespace hostscope::policy
