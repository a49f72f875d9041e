// `hostscope policy test DIR --live` end to end: the real binary builds its scratch topology,
// applies the compiled rules in its own namespace, makes every connection and reports per case.
// Checks the pass run, a wrong expectation (exit 1 naming the case), an interrupted run and a
// run without root (exit 2 naming what is missing), a run with more remote addresses than one scratch
// environment holds (split into batches), and that nothing scratch is left behind.
// Runs on iptables-nft and iptables-legacy.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "support/privileged.h"

namespace hostscope::testing {
namespace {
namespace fs = std::filesystem;

std::string bin() {
  const char* b = std::getenv("HOSTSCOPE_BIN");
  return b ? b : "hostscope";
}

std::string cgroup2_root() { return fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"; }

std::string missing_tools(const std::string& variant) {
  if (!fs::exists(cgroup2_root() + "/cgroup.procs")) return "no cgroup v2";
  for (const std::string& tool : std::vector<std::string>{"ip", "ipset", "setpriv", "iptables-" + variant + "-restore", "ip6tables-" + variant + "-restore"})
    if (sh("command -v " + tool).status != 0) return "missing " + tool;
  return "";
}

#define REQUIRE_LIVE_TOOLS(variant) \
  HS_REQUIRE_ROOT();                \
  HS_REQUIRE_THAT(missing_tools(variant))

// A temporary policy directory with a catalogue; removed with the object.
class PolicyDir {
 public:
  PolicyDir() {
    std::string tmpl = (fs::temp_directory_path() / "hs-live-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    fs::create_directories(root_ / "policies");
  }
  ~PolicyDir() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(root_ / "policies" / name) << text; }
  void context(const std::string& json) const { std::ofstream(root_ / "context.json") << json; }
  std::string dir() const { return (root_ / "policies").string(); }
  std::string context_file() const { return (root_ / "context.json").string(); }

 private:
  fs::path root_;
};

// web: local processes (a cgroup that does not exist on this machine: live mirrors it) listening
// on 8080. db, cache and api: addresses the node routes. web may reach db on tcp/5432 (a CIDR
// rule), never 10.251.0.3 (deny), cache on udp/5353; api only accepts 10.251.1.5 on tcp/443 and
// rejects everything else.
constexpr const char* kContext = R"({"services": [
  {"name": "web", "cgroups": ["/system.slice/hs-live-web.service"], "ports": [8080]},
  {"name": "db", "addresses": ["10.251.0.2"]},
  {"name": "cache", "addresses": ["10.251.0.4"]},
  {"name": "api", "addresses": ["10.251.2.2"]}]})";

constexpr const char* kPolicies = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - action: deny
    peers: [{cidr: 10.251.0.3/32}]
  - action: allow
    peers: [{cidr: 10.251.0.0/24}]
    ports: [5432]
    protocol: tcp
  - action: allow
    peers: [{service: cache}]
    ports: [5353]
    protocol: udp
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: api}
subject: {service: api}
default: {ingress: reject}
ingress:
  - action: allow
    peers: [{cidr: 10.251.1.5/32}]
    ports: [443]
    protocol: tcp
)";

std::string cases(const std::string& web_to_db_expect) {
  return fmt::format(R"(apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {{name: web-tests}}
cases:
  - {{name: web-to-db, from: web, to: db, port: 5432, protocol: tcp, expect: {}}}
  - {{name: web-to-db-other-port, from: web, to: 10.251.0.2, port: 6000, protocol: tcp, expect: deny}}
  - {{name: web-to-denied-host, from: web, to: 10.251.0.3, port: 5432, protocol: tcp, expect: deny}}
  - {{name: web-to-cache-udp, from: web, to: cache, port: 5353, protocol: udp, expect: allow}}
  - {{name: web-to-cache-other-udp, from: web, to: cache, port: 5354, protocol: udp, expect: deny}}
  - {{name: client-to-api, from: 10.251.1.5, to: api, port: 443, protocol: tcp, expect: allow}}
  - {{name: stranger-to-api, from: 10.251.1.6, to: api, port: 443, protocol: tcp, expect: deny}}
  - {{name: client-to-web, from: 10.251.1.5, to: web, port: 8080, protocol: tcp, expect: allow}}
)",
                     web_to_db_expect);
}

struct Run {
  int exit_code = -1;
  pid_t pid = -1;
  std::string out;
};

Run run_live(const PolicyDir& d, const std::string& variant, const std::string& prefix = "") {
  Child c({"sh", "-c",
           fmt::format("exec {}{} policy test {} --context {} --live --iptables {} --timeout-ms 500 2>&1", prefix, bin(), d.dir(),
                       d.context_file(), variant)});
  Run r;
  r.pid = c.pid();  // sh execs the binary: this is hostscope's pid, which names its scratch objects
  while (auto l = c.line()) r.out += *l + "\n";
  r.exit_code = c.wait();
  return r;
}

// Nothing the run with this pid created is left: namespaces, cgroups, state directory.
void expect_no_scratch(pid_t pid) {
  auto ns = sh("ip netns list");
  EXPECT_EQ(ns.out.find(fmt::format("hsl-{}-", pid)), std::string::npos) << ns.out;
  EXPECT_FALSE(fs::exists(fmt::format("{}/hostscope-live-{}", cgroup2_root(), pid)));
}

size_t hostscope_rules_on_host(const std::string& variant) {
  auto save = sh("iptables-" + variant + "-save -t filter");
  size_t n = 0;
  for (size_t pos = 0; (pos = save.out.find("hostscope", pos)) != std::string::npos; ++pos) ++n;
  return n;
}

// A run where every case passes: exit 0, every expected output line, no scratch left, host ruleset unchanged.
void expect_passing_run(const PolicyDir& d, const std::string& variant, const std::vector<std::string>& lines) {
  size_t host_rules = hostscope_rules_on_host(variant);
  auto r = run_live(d, variant);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const auto& line : lines) EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\n" << r.out;
  expect_no_scratch(r.pid);
  EXPECT_EQ(hostscope_rules_on_host(variant), host_rules) << "the host's own ruleset changed";
}

class PolicyLive : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyLive, EveryCaseIsCheckedForRealAndAgrees) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kContext);
  d.write("10-policies.yaml", kPolicies);
  d.write("20-tests.yaml", cases("allow"));
  expect_passing_run(d, GetParam(), {"PASS 20-tests.yaml:5:5: web-to-db — expect allow, evaluator allow, live allow",
                           "PASS 20-tests.yaml:6:5: web-to-db-other-port — expect deny, evaluator deny, live deny",
                           "PASS 20-tests.yaml:7:5: web-to-denied-host — expect deny, evaluator deny, live deny",
                           "PASS 20-tests.yaml:8:5: web-to-cache-udp — expect allow, evaluator allow, live allow",
                           "PASS 20-tests.yaml:9:5: web-to-cache-other-udp — expect deny, evaluator deny, live deny",
                           "PASS 20-tests.yaml:10:5: client-to-api — expect allow, evaluator allow, live allow",
                           "PASS 20-tests.yaml:11:5: stranger-to-api — expect deny, evaluator deny, live deny",
                           "PASS 20-tests.yaml:12:5: client-to-web — expect allow, evaluator allow, live allow",
                           "8 passed, 0 failed; 8 connections made live, 0 not tried live"});
}

// IPv6 endpoints are emulated too (they used to be "not tried live"). pod6 has a default-deny egress, so the
// node's INPUT sees its neighbour advertisements under that policy: they must pass for anything to reach it.
TEST_P(PolicyLive, Ipv6CasesAreCheckedForReal) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(R"({"services": [
    {"name": "web", "cgroups": ["/system.slice/hs-live-web6.service"], "ports": [8080]},
    {"name": "db6", "addresses": ["fd00:251::2"]},
    {"name": "api6", "addresses": ["fd00:251:2::2"]},
    {"name": "pod6", "addresses": ["fd00:251:3::2"]}]})");
  d.write("p.yaml", R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - action: allow
    peers: [{cidr: "fd00:251::/64"}]
    ports: [5432]
    protocol: tcp
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: api6}
subject: {service: api6}
default: {ingress: reject}
ingress:
  - action: allow
    peers: [{cidr: "fd00:251:1::5/128"}]
    ports: [443]
    protocol: tcp
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: pod6}
subject: {service: pod6}
failsafe: false
default: {egress: deny}
egress:
  - action: allow
    ports: [8080, 53]
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: t6}
cases:
  - {name: web-to-db6, from: web, to: db6, port: 5432, protocol: tcp, expect: allow}
  - {name: web-to-db6-other-port, from: web, to: db6, port: 6000, protocol: tcp, expect: deny}
  - {name: client-to-api6, from: "fd00:251:1::5", to: api6, port: 443, protocol: tcp, expect: allow}
  - {name: stranger-to-api6, from: "fd00:251:1::6", to: api6, port: 443, protocol: tcp, expect: deny}
  - {name: pod6-to-web, from: pod6, to: web, port: 8080, protocol: tcp, expect: allow}
  - {name: pod6-to-dns, from: pod6, to: "fd00:251:1::5", port: 53, protocol: udp, expect: allow}
  - {name: pod6-to-api6, from: pod6, to: api6, port: 443, protocol: tcp, expect: deny}
  - {name: client-to-pod6, from: "fd00:251:1::5", to: pod6, port: 22, protocol: tcp, expect: allow}
)");
  expect_passing_run(d, GetParam(), {"PASS p.yaml:37:5: web-to-db6 — expect allow, evaluator allow, live allow",
                           "PASS p.yaml:38:5: web-to-db6-other-port — expect deny, evaluator deny, live deny",
                           "PASS p.yaml:39:5: client-to-api6 — expect allow, evaluator allow, live allow",
                           "PASS p.yaml:40:5: stranger-to-api6 — expect deny, evaluator deny, live deny",
                           "PASS p.yaml:41:5: pod6-to-web — expect allow, evaluator allow, live allow",
                           "PASS p.yaml:42:5: pod6-to-dns — expect allow, evaluator allow, live allow",
                           "PASS p.yaml:43:5: pod6-to-api6 — expect deny, evaluator deny, live deny",
                           "PASS p.yaml:44:5: client-to-pod6 — expect allow, evaluator allow, live allow",
                           "8 passed, 0 failed; 8 connections made live, 0 not tried live"});
}

// For the runs with more distinct remote addresses than one scratch environment emulates (kLiveMaxAddresses,
// 64). web (local) may reach 198.51.100.0/26 except 198.51.100.8/29 and 2001:db8:77::/126 on tcp/5432; sink
// (198.51.100.70) rejects everything but 198.51.100.0/27 on tcp/443.
constexpr const char* kManyContext = R"({"services": [
  {"name": "web", "cgroups": ["/system.slice/hs-live-many.service"], "ports": [8080]},
  {"name": "sink", "addresses": ["198.51.100.70"]}]})";

constexpr const char* kManyPolicies = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - action: deny
    peers: [{cidr: 198.51.100.8/29}]
  - action: allow
    peers: [{cidr: 198.51.100.0/26}, {cidr: "2001:db8:77::/126"}]
    ports: [5432]
    protocol: tcp
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: sink}
subject: {service: sink}
default: {ingress: reject}
ingress:
  - action: allow
    peers: [{cidr: 198.51.100.0/27}]
    ports: [443]
    protocol: tcp
)";

struct TcpCase {
  std::string name, from, to;
  int port;
  bool allow;
};

// 20-tests.yaml with `cases`, case i on line 5 + i; returns the PASS line each case must get.
std::vector<std::string> write_cases(const PolicyDir& d, const std::vector<TcpCase>& cases) {
  std::string yaml = "apiVersion: hostscope.io/v1\nkind: PolicyTest\nmetadata: {name: many}\ncases:\n";
  std::vector<std::string> lines;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const char* verdict = c.allow ? "allow" : "deny";
    yaml += fmt::format("  - {{name: {}, from: \"{}\", to: \"{}\", port: {}, protocol: tcp, expect: {}}}\n", c.name, c.from, c.to, c.port,
                        verdict);
    lines.push_back(fmt::format("PASS 20-tests.yaml:{}:5: {} — expect {}, evaluator {}, live {}\n", i + 5, c.name, verdict, verdict, verdict));
  }
  d.write("20-tests.yaml", yaml);
  return lines;
}

// 66 IPv4 addresses web reaches (some allowed, some denied by the CIDR deny, some outside the allowed CIDR), 4
// IPv6 ones, then address-to-address cases that need an address of the first batch again together with the
// rejecting sink: 71 addresses, so 2 batches, and every case comes out as the evaluator says.
TEST_P(PolicyLive, ManyAddressesRunInBatches) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kManyContext);
  d.write("10-policies.yaml", kManyPolicies);
  std::vector<TcpCase> cases;
  for (int n = 1; n <= 66; ++n)
    cases.push_back({fmt::format("web-to-v4-{}", n), "web", fmt::format("198.51.100.{}", n), 5432, n <= 63 && (n < 8 || n > 15)});
  for (int n = 1; n <= 4; ++n) cases.push_back({fmt::format("web-to-v6-{}", n), "web", fmt::format("2001:db8:77::{}", n), 5432, n <= 3});
  cases.push_back({"v4-1-to-sink", "198.51.100.1", "sink", 443, true});
  cases.push_back({"v4-40-to-sink", "198.51.100.40", "sink", 443, false});
  cases.push_back({"v4-65-to-web", "198.51.100.65", "web", 8080, true});
  auto lines = write_cases(d, cases);
  lines.push_back(fmt::format("{} passed, 0 failed; {} connections made live, 0 not tried live; 71 remote addresses in 2 batches\n",
                              cases.size(), cases.size()));
  expect_passing_run(d, GetParam(), lines);
}

// SIGTERM while the second batch runs (its last probe is dropped and would wait a minute): the first batch's
// namespaces are gone by then, and nothing of either batch is left afterwards.
TEST_P(PolicyLive, InterruptedSecondBatchRemovesItsScratch) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kManyContext);
  d.write("10-policies.yaml", kManyPolicies);
  std::vector<TcpCase> cases;
  for (int n = 1; n <= 65; ++n) cases.push_back({fmt::format("v4-{}-to-web", n), fmt::format("198.51.100.{}", n), "web", 8080, true});
  cases.push_back({"web-to-v4-66", "web", "198.51.100.66", 5432, false});
  write_cases(d, cases);
  Child c({bin(), "policy", "test", d.dir(), "--context", d.context_file(), "--live", "--iptables", GetParam(), "--timeout-ms", "60000"});
  ASSERT_TRUE(eventually([&] { return sh("ip netns list").out.find(fmt::format("hsl-{}-b2-node", c.pid())) != std::string::npos; },
                         std::chrono::seconds(240)));
  auto ns = sh("ip netns list");
  EXPECT_EQ(ns.out.find(fmt::format("hsl-{}-b1-", c.pid())), std::string::npos) << ns.out;
  kill(c.pid(), SIGTERM);
  EXPECT_EQ(c.wait(), 2);
  expect_no_scratch(c.pid());
}

TEST_P(PolicyLive, WrongExpectationFailsNamingTheCase) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kContext);
  d.write("10-policies.yaml", kPolicies);
  d.write("20-tests.yaml", cases("deny"));
  auto r = run_live(d, GetParam());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("FAIL 20-tests.yaml:5:5: web-to-db — expect deny, evaluator allow, live allow"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cgroup /system.slice/hs-live-web.service -> 10.251.0.2: expected deny, evaluator allow, live allow (connected"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("evaluator and kernel agree"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("7 passed, 1 failed"), std::string::npos) << r.out;
  expect_no_scratch(r.pid);
}

// The live column is the kernel's own: local-to-local connections use 127.0.0.1, which the
// evaluator models as "no address". A policy allowing 127.0.0.0/8 lets the kernel through while the
// evaluator denies; the run must say so, with the kernel doing what the case expects.
TEST_P(PolicyLive, KernelAndEvaluatorDisagreementIsReported) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(R"({"services": [{"name": "web", "cgroups": ["/hs-live-web"]}, {"name": "admin", "cgroups": ["/hs-live-admin"], "ports": [9000]}]})");
  d.write("p.yaml", R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny}
egress:
  - action: allow
    peers: [{cidr: 127.0.0.0/8}]
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: t}
cases:
  - {name: web-to-admin, from: web, to: admin, port: 9000, protocol: tcp, expect: allow}
)");
  auto r = run_live(d, GetParam());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("FAIL p.yaml:14:5: web-to-admin — expect allow, evaluator deny, live allow"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cgroup /hs-live-web -> local: expected allow, evaluator deny, live allow (connected, node in cgroup /hs-live-web -> "
                       "127.0.0.1:9000/tcp); the evaluator disagrees with the expectation but the kernel does what was expected"),
            std::string::npos)
      << r.out;
  expect_no_scratch(r.pid);
}

TEST_P(PolicyLive, InterruptedRunRemovesItsScratch) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kContext);
  d.write("10-policies.yaml", kPolicies);
  d.write("20-tests.yaml", cases("allow"));
  Child c({bin(), "policy", "test", d.dir(), "--context", d.context_file(), "--live", "--iptables", GetParam(), "--timeout-ms", "60000"});
  // The node namespace exists from setup until teardown; the drop cases then wait up to a minute.
  ASSERT_TRUE(eventually([&] { return sh("ip netns list").out.find(fmt::format("hsl-{}-b1-node", c.pid())) != std::string::npos; },
                         std::chrono::seconds(60)));
  kill(c.pid(), SIGTERM);
  EXPECT_EQ(c.wait(), 2);
  expect_no_scratch(c.pid());
}

TEST_P(PolicyLive, WithoutRootSaysWhatIsMissing) {
  REQUIRE_LIVE_TOOLS(GetParam());
  PolicyDir d;
  d.context(kContext);
  d.write("10-policies.yaml", kPolicies);
  d.write("20-tests.yaml", cases("allow"));
  fs::permissions(fs::path(d.dir()).parent_path(), fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
  auto r = run_live(d, GetParam(), "setpriv --reuid=65534 --regid=65534 --clear-groups ");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("live checks cannot run; missing: root"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Variants, PolicyLive, ::testing::Values("nft", "legacy"));

}  // namespace
}  // namespace hostscope::testing
