// Compiler golden output, reference evaluator truth tables, plan diff, and the backend's
// apply/rollback/status/flush flow against a fake iptables.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/analysis.h"
#include "policy/command.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/iptables.h"
#include "policy/ir_json.h"
#include "policy/loader.h"
#include "policy/reconciler.h"
#include "support/fake_iptables.h"

namespace hostscope::policy {
namespace {

using fakes::FakeIptables;

Context catalogue() {
  Context c;
  c.services.push_back({"web", {"/web"}, {"10.1.0.2"}, {80}, "", "", "", ""});
  c.services.push_back({"db", {}, {"10.1.0.3", "fd00::3"}, {}, "", "", "", ""});
  c.services.push_back({"cache", {"/cache"}, {}, {}, "", "", "", ""});
  c.networks["office"] = {"192.0.2.0/24", "198.51.100.0/24"};
  return c;
}

Ir must_compile(const std::string& yaml, CompileOptions opts = {}) {
  auto c = compile(load_text(yaml, "t.yaml"), catalogue(), opts);
  std::string diags;
  for (const auto& d : c.diagnostics) diags += d.str() + "\n";
  EXPECT_TRUE(c.ok()) << diags;
  return c.ok() ? *c.ir : Ir{};
}

const char* kWeb = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny, ingress: deny}
egress:
  - action: allow
    peers: [{service: db}]
    ports: [5432]
    protocol: tcp
  - action: reject
    peers: [{network: office}]
ingress:
  - action: allow
    peers: [{cidr: 10.1.0.0/16}]
    ports: [80]
)";

TEST(PolicyCompile, GoldenIptablesV4) {
  auto ir = must_compile(kWeb);
  auto r = render(ir.v4);
  std::string text;
  for (const auto& l : r.rules) text += l + "\n";
  // Hashes are part of the golden output on purpose: they must be stable across builds.
  EXPECT_EQ(text, R"(-A HOSTSCOPE-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "hostscope:hs.conntrack:dc09dcb9d205" -j RETURN
-A HOSTSCOPE-INPUT -s 10.1.0.2/32 -m comment --comment "hostscope:hs.dispatch:1f997d009b0a" -j HOSTSCOPE-P-fc686b4e7270e88c
-A HOSTSCOPE-INPUT ! -i lo -p tcp -m tcp --dport 80 -m comment --comment "hostscope:hs.dispatch:e507722e5f44" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-INPUT ! -i lo -p udp -m udp --dport 80 -m comment --comment "hostscope:hs.dispatch:f644a66d8c65" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "hostscope:hs.conntrack:f763d2e489ad" -j RETURN
-A HOSTSCOPE-OUTPUT -m cgroup --path "/web" -m comment --comment "hostscope:hs.dispatch:6ec1da6179d8" -j HOSTSCOPE-P-fc686b4e7270e88c
-A HOSTSCOPE-OUTPUT -d 10.1.0.2/32 -m comment --comment "hostscope:hs.dispatch:275a59437eae" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -m comment --comment "hostscope:hs.dispatch:aa5b2be9dfac" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-OUTPUT -p udp -m addrtype --dst-type LOCAL -m udp --dport 80 -m comment --comment "hostscope:hs.dispatch:393fb916d20f" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "hostscope:hs.conntrack:c45d57b39343" -j RETURN
-A HOSTSCOPE-FORWARD -s 10.1.0.2/32 -m comment --comment "hostscope:hs.dispatch:fe10fa8acc39" -j HOSTSCOPE-P-fc686b4e7270e88c
-A HOSTSCOPE-FORWARD -d 10.1.0.2/32 -m comment --comment "hostscope:hs.dispatch:529d28b16d66" -j HOSTSCOPE-P-5ee697295ee5f165
-A HOSTSCOPE-P-fc686b4e7270e88c -p tcp -m multiport --dports 179,2379,2380,5473,6443,6666,6667 -m comment --comment "hostscope:hs.failsafe:ff31b29f3c47" -j RETURN
-A HOSTSCOPE-P-fc686b4e7270e88c -p udp -m multiport --dports 53,67 -m comment --comment "hostscope:hs.failsafe:70bd8b094ddd" -j RETURN
-A HOSTSCOPE-P-fc686b4e7270e88c -d 10.1.0.3/32 -p tcp -m tcp --dport 5432 -m comment --comment "hostscope:web:0dd38f1dcb11" -j RETURN
-A HOSTSCOPE-P-fc686b4e7270e88c -d 192.0.2.0/24 -m comment --comment "hostscope:web:e287f3affbad" -j REJECT --reject-with icmp-port-unreachable
-A HOSTSCOPE-P-fc686b4e7270e88c -d 198.51.100.0/24 -m comment --comment "hostscope:web:d98e22aa282f" -j REJECT --reject-with icmp-port-unreachable
-A HOSTSCOPE-P-fc686b4e7270e88c -m comment --comment "hostscope:web:0aae798f3ac7" -j DROP
-A HOSTSCOPE-P-5ee697295ee5f165 -p tcp -m multiport --dports 22,179,2379,2380,5473,6443,6666,6667 -m comment --comment "hostscope:hs.failsafe:f19e043edaf1" -j RETURN
-A HOSTSCOPE-P-5ee697295ee5f165 -p udp -m udp --dport 68 -m comment --comment "hostscope:hs.failsafe:acdf1d93ec48" -j RETURN
-A HOSTSCOPE-P-5ee697295ee5f165 -s 10.1.0.0/16 -p tcp -m tcp --dport 80 -m comment --comment "hostscope:web:4723fd509571" -j RETURN
-A HOSTSCOPE-P-5ee697295ee5f165 -s 10.1.0.0/16 -p udp -m udp --dport 80 -m comment --comment "hostscope:web:722321339a0a" -j RETURN
-A HOSTSCOPE-P-5ee697295ee5f165 -m comment --comment "hostscope:web:cd8193a8fd32" -j DROP
)");
}

// A truth table over the reference evaluator: (from, to, port, proto) -> verdict.
struct Row {
  Endpoint from, to;
  uint16_t port;
  Protocol proto;
  Verdict want;
};

Endpoint local(const std::string& cg) { return {std::nullopt, cg, true}; }
Endpoint addr(const char* a) { return {IpAddr::parse(a), "", false}; }
Endpoint local_dst() { return {std::nullopt, "", true}; }

// Issue 19: a `service:` peer with local processes names them. Ingress: the client's cgroups, on OUTPUT, where a local
// client's packet to a local server is judged (INPUT judges only packets from other hosts and pods). Egress: the
// ports the server's processes listen on, at an address of this node. Remote clients and other local processes on
// the same port stay denied; the IR keeps the new matches through its JSON form.
const char* kLocalPeers = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
default: {egress: deny, ingress: deny}
ingress:
  - action: allow
    peers: [{service: cache}]
    ports: [80]
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cache}
subject: {service: cache}
default: {egress: deny}
egress:
  - action: allow
    peers: [{service: web}]
    ports: [80, 443]
)";

TEST(PolicyEvaluator, ServicePeerNamesLocalProcesses) {
  auto ir = must_compile(kLocalPeers);
  Endpoint web_proc{std::nullopt, "/web", true}, cache_proc{std::nullopt, "/cache", true};
  Endpoint web_lo{IpAddr::parse("127.0.0.1"), "/web", true}, cache_lo6{IpAddr::parse("::1"), "/cache", true};
  Endpoint other_lo{IpAddr::parse("::1"), "/other", true};
  struct Case {
    Endpoint from, to;
    uint16_t port;
    Verdict want;
  };
  std::vector<Case> cases = {
      {cache_proc, web_proc, 80, Verdict::Allow},
      {cache_lo6, Endpoint{IpAddr::parse("::1"), "/web", true}, 80, Verdict::Allow},  // IPv6 loopback
      {cache_proc, web_lo, 80, Verdict::Allow},
      {cache_proc, web_proc, 443, Verdict::Deny},  // allowed by the rule, but web does not listen there
      {cache_proc, Endpoint{IpAddr::parse("10.1.0.2"), "", false}, 80, Verdict::Allow},  // web's address: OUTPUT -d
      {cache_proc, Endpoint{IpAddr::parse("192.0.2.9"), "", false}, 80, Verdict::Deny},  // not local
      {other_lo, Endpoint{IpAddr::parse("::1"), "/web", true}, 80, Verdict::Deny},       // another local process
      {Endpoint{IpAddr::parse("127.0.0.1"), "", false}, web_proc, 80, Verdict::Deny},   // unknown local process
      {Endpoint{IpAddr::parse("192.0.2.9"), "", false}, web_proc, 80, Verdict::Deny},   // remote client, INPUT
      {Endpoint{IpAddr::parse("192.0.2.9"), "", false}, web_proc, 22, Verdict::Allow},  // failsafe, INPUT
  };
  auto json_ir = ir_from_json(ir_to_json(ir));
  ASSERT_TRUE(json_ir.has_value());
  for (const auto& c : cases) {
    auto who = fmt::format("{} -> {}:{}", c.from.local ? "cgroup " + c.from.cgroup : c.from.address->str(),
                           c.to.local ? "local " + c.to.cgroup : c.to.address->str(), c.port);
    EXPECT_EQ(evaluate_connection(ir, c.from, c.to, Protocol::Tcp, c.port), c.want) << who;
    EXPECT_EQ(evaluate_connection(*json_ir, c.from, c.to, Protocol::Tcp, c.port), c.want) << who << " (IR read back from JSON)";
  }
  for (const auto* t : {&ir.v4, &ir.v6}) {
    std::string text;
    for (const auto& l : render(*t).rules) text += l + "\n";
    // INPUT judges what did not come over `lo`, not "a source that is not local": a spoofed local source from
    // another host (IPv6 delivers it) must not skip the policy.
    EXPECT_THAT(text, ::testing::HasSubstr("-A HOSTSCOPE-INPUT ! -i lo -p tcp -m tcp --dport 80 "));
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("--src-type LOCAL -m tcp --dport 80 -m comment --comment \"hostscope:hs.dispatch")));
    EXPECT_THAT(text, ::testing::HasSubstr("-A HOSTSCOPE-OUTPUT -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 "));
    EXPECT_THAT(text, ::testing::HasSubstr(" -p tcp -m addrtype --src-type LOCAL -m cgroup --path \"/cache\" -m tcp --dport 80 "));
    EXPECT_THAT(text, ::testing::HasSubstr(" -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -m comment --comment \"hostscope:cache:"));
  }

  // web also has an address, so its ingress chain is dispatched from FORWARD (-d 10.1.0.2) too. xt_cgroup is not valid
  // there: the kernel refuses a restore in which a `-m cgroup` rule can be reached from FORWARD. FORWARD jumps to a
  // copy of the chain without the cgroup rules (they never match a forwarded packet), and decides the same.
  for (const auto* t : {&ir.v4, &ir.v6}) {
    SCOPED_TRACE(to_string(t->family));
    std::vector<std::string> todo = {hook_chain(Hook::Forward)};
    std::set<std::string> seen;
    bool copy = false;
    while (!todo.empty()) {
      auto name = todo.back();
      todo.pop_back();
      if (!seen.insert(name).second) continue;
      const IrChain* c = t->find(name);
      ASSERT_NE(c, nullptr) << name;
      copy = copy || name.rfind("HOSTSCOPE-F-", 0) == 0;
      for (const auto& r : c->rules) {
        EXPECT_TRUE(r.match.cgroup.empty()) << name << " (reachable from FORWARD): " << render_rule(name, r, t->family, {});
        if (r.target == IrTarget::Jump) todo.push_back(r.jump);
      }
    }
    // web's address is IPv4: only that table dispatches web from FORWARD.
    EXPECT_EQ(copy, t->family == Family::V4) << "web's ingress has cgroup rules: FORWARD must jump to its copy";
  }
  for (const char* peer : {"192.0.2.9", "10.1.0.7"}) {
    Endpoint from{IpAddr::parse(peer), "", false}, to{IpAddr::parse("10.1.0.2"), "", false};
    EXPECT_EQ(evaluate_connection(ir, from, to, Protocol::Tcp, 80), Verdict::Deny) << peer << " -> web's address, forwarded";
    EXPECT_EQ(evaluate_connection(ir, from, to, Protocol::Tcp, 22), Verdict::Allow) << peer << " -> web's address, failsafe";
  }

  // An egress peer whose local processes listen on nothing matches nothing: lint says so (ingress names them fine).
  auto report = lint(load_text(R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web}
subject: {service: web}
egress:
  - action: allow
    peers: [{service: cache}]
ingress:
  - action: allow
    peers: [{service: cache}]
)", "t.yaml"), catalogue());
  ASSERT_EQ(report.diagnostics.size(), 1u);
  EXPECT_EQ(report.diagnostics[0].str(), "t.yaml:7:23: warning: peer service 'cache' has no known addresses and no known listening ports for "
                                         "its local processes; this egress peer matches nothing");
}

TEST(PolicyEvaluator, TruthTableEnforce) {
  auto ir = must_compile(kWeb);
  std::vector<Row> rows = {
      // egress of the local web processes (cgroup /web) on OUTPUT
      {local("/web"), addr("10.1.0.3"), 5432, Protocol::Tcp, Verdict::Allow},
      {local("/web/worker"), addr("10.1.0.3"), 5432, Protocol::Tcp, Verdict::Allow},  // cgroup descendants match
      {local("/web"), addr("10.1.0.3"), 5432, Protocol::Udp, Verdict::Deny},
      {local("/web"), addr("10.1.0.3"), 5433, Protocol::Tcp, Verdict::Deny},
      {local("/web"), addr("192.0.2.9"), 443, Protocol::Tcp, Verdict::Deny},  // reject counts as deny
      {local("/web"), addr("192.0.2.9"), 53, Protocol::Udp, Verdict::Allow},   // failsafe: DNS out
      {local("/web"), addr("8.8.8.8"), 6443, Protocol::Tcp, Verdict::Allow},   // failsafe: API server
      {local("/other"), addr("8.8.8.8"), 443, Protocol::Tcp, Verdict::Allow},  // not selected
      // egress of the web address (routed) on FORWARD
      {addr("10.1.0.2"), addr("10.1.0.3"), 5432, Protocol::Tcp, Verdict::Allow},
      {addr("10.1.0.2"), addr("10.9.9.9"), 80, Protocol::Tcp, Verdict::Deny},
      // ingress to web: address on FORWARD, local port 80 on INPUT
      {addr("10.1.7.7"), addr("10.1.0.2"), 80, Protocol::Tcp, Verdict::Allow},
      {addr("10.2.7.7"), addr("10.1.0.2"), 80, Protocol::Tcp, Verdict::Deny},
      {addr("10.2.7.7"), addr("10.1.0.2"), 22, Protocol::Tcp, Verdict::Allow},  // failsafe: ssh in
      {addr("10.1.7.7"), local_dst(), 80, Protocol::Tcp, Verdict::Allow},
      {addr("10.2.7.7"), local_dst(), 80, Protocol::Tcp, Verdict::Deny},
      {addr("10.2.7.7"), local_dst(), 8080, Protocol::Tcp, Verdict::Allow},  // not web's port
  };
  for (const auto& r : rows) {
    Trace t;
    auto v = evaluate_connection(ir, r.from, r.to, r.proto, r.port, &t);
    std::string path;
    for (auto& s : t.steps) path += "\n  " + s;
    EXPECT_EQ(to_string(v), std::string(to_string(r.want)))
        << (r.from.local ? r.from.cgroup : r.from.address->str()) << " -> "
        << (r.to.address ? r.to.address->str() : "local") << ":" << r.port << "/" << to_string(r.proto) << path;
  }
}

TEST(PolicyEvaluator, AuditModeAndFailsafeOff) {
  std::string y = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cache}
subject: {service: cache}
mode: audit
failsafe: false
default: {egress: deny}
egress:
  - action: allow
    ports: [6379]
    protocol: tcp
)";
  auto ir = must_compile(y);
  EXPECT_EQ(evaluate_connection(ir, local("/cache"), addr("10.0.0.1"), Protocol::Tcp, 6379), Verdict::Allow);
  EXPECT_EQ(evaluate_connection(ir, local("/cache"), addr("10.0.0.1"), Protocol::Tcp, 80), Verdict::AuditWouldDeny);
  EXPECT_EQ(evaluate_connection(ir, local("/cache"), addr("10.0.0.1"), Protocol::Udp, 53), Verdict::AuditWouldDeny);
  auto r = render(ir.v4);
  EXPECT_THAT(r.rules, ::testing::Contains(::testing::HasSubstr("-m comment --comment \"hostscope:cache:")));
  for (const auto& l : r.rules) EXPECT_EQ(l.find("-j DROP"), std::string::npos) << l;  // audit never drops
  y.replace(y.find("mode: audit"), 11, "mode: enforce");
  ir = must_compile(y);
  EXPECT_EQ(evaluate_connection(ir, local("/cache"), addr("10.0.0.1"), Protocol::Udp, 53), Verdict::Deny);  // failsafe off
}

// An audit deny rule counts the packet and ends the policy chain as the enforce rule would have: the audit
// default (and any later rule) never sees it, so one packet is one would-deny count.
TEST(PolicyEvaluator, AuditRuleEndsTheChainLikeEnforce) {
  const char* y = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cache}
subject: {service: cache}
mode: audit
default: {egress: deny}
egress:
  - action: reject
    ports: [6379]
    protocol: tcp
  - action: log
)";
  auto ir = must_compile(y);
  Trace t;
  EXPECT_EQ(evaluate_connection(ir, local("/cache"), addr("10.0.0.1"), Protocol::Tcp, 6379, &t), Verdict::AuditWouldDeny);
  std::vector<std::string> targets;
  for (const auto& step : t.steps)
    if (step.find("HOSTSCOPE-P-") == 0) targets.push_back(step.substr(step.find(" -> ") + 4, step.find(' ', step.find(" -> ") + 4) - step.find(" -> ") - 4));
  EXPECT_THAT(targets, ::testing::ElementsAre("AUDIT", "RETURN"));  // not LOG, not the AUDIT default
  // Rendered: the counting rule, then the same match returning; the default stays last.
  std::vector<std::string> chain;
  for (const auto& l : render(ir.v4, RenderOptions{}).rules)
    if (l.find("HOSTSCOPE-P-") == 3) chain.push_back(l);
  ASSERT_GE(chain.size(), 5u);
  auto audit_line = chain.size() - 4, return_line = chain.size() - 3;
  EXPECT_THAT(chain[audit_line], ::testing::HasSubstr("-p tcp -m tcp --dport 6379"));
  EXPECT_EQ(chain[audit_line].find(" -j "), std::string::npos) << chain[audit_line];  // counter only
  EXPECT_THAT(chain[return_line], ::testing::HasSubstr("-p tcp -m tcp --dport 6379"));
  EXPECT_THAT(chain[return_line], ::testing::EndsWith("-j RETURN"));
  EXPECT_THAT(chain.back(), ::testing::Not(::testing::HasSubstr(" -j ")));  // the audit default
  // Only AUDIT targets count toward would-deny: exactly the rule and the default.
  size_t audits = 0;
  for (const auto& c : ir.v4.chains)
    for (const auto& r : c.rules) audits += r.target == IrTarget::Audit;
  EXPECT_EQ(audits, 2u);
}

TEST(PolicyEvaluator, IpsetsForLargePeerListsAndIpv6) {
  auto ir = must_compile(kWeb, CompileOptions{1});
  ASSERT_EQ(ir.v4.sets.size(), 1u);
  EXPECT_EQ(ir.v4.sets[0].members.size(), 2u);  // office
  auto r = render(ir.v4);
  EXPECT_THAT(r.ipsets, ::testing::HasSubstr("swap " + ir.v4.sets[0].name + "-t " + ir.v4.sets[0].name));
  EXPECT_THAT(r.rules, ::testing::Contains(::testing::HasSubstr("-m set --match-set " + ir.v4.sets[0].name + " dst")));
  EXPECT_EQ(evaluate_connection(ir, local("/web"), addr("198.51.100.7"), Protocol::Tcp, 443), Verdict::Deny);
  EXPECT_EQ(evaluate_connection(ir, local("/web"), addr("203.0.113.7"), Protocol::Tcp, 443), Verdict::Deny);  // default deny
  // db has an IPv6 address: the v6 table allows it, v4-only peers (office) are absent there.
  EXPECT_EQ(evaluate_connection(ir, local("/web"), addr("fd00::3"), Protocol::Tcp, 5432), Verdict::Allow);
  auto r6 = render(ir.v6);
  EXPECT_THAT(r6.rules, ::testing::Contains(::testing::HasSubstr("-d fd00::3/128")));
  for (const auto& l : r6.rules) EXPECT_EQ(l.find("192.0.2"), std::string::npos);
}

// `n` egress rules of `action`, each one address and one tcp port (rule i: 10.9.<i/250>.<i%250+1>, port 1000+i), and
// as many IPv6 ones (fd00:9::<i+1>); `allow_at`: an allow rule to 10.8.0.1:80 put before rule `allow_at` (-1: none).
std::string many_rules(size_t n, const char* action, int allow_at = -1) {
  std::string y = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: many}\nsubject: {service: web}\n"
                  "default: {egress: allow, ingress: allow}\nfailsafe: false\negress:\n";
  for (size_t i = 0; i < n; ++i) {
    if (int(i) == allow_at) y += "  - action: allow\n    peers: [{cidr: 10.8.0.1/32}]\n    ports: [80]\n    protocol: tcp\n";
    y += fmt::format("  - action: {}\n    peers: [{{cidr: 10.9.{}.{}/32}}, {{cidr: 'fd00:9::{:x}/128'}}]\n    ports: [{}]\n    protocol: tcp\n",
                     action, i / 250, i % 250 + 1, i + 1, 1000 + i);
  }
  return y;
}

std::vector<std::string> chain_lines(const RenderedTable& r, const std::string& chain_prefix) {
  std::vector<std::string> out;
  for (const auto& l : r.rules)
    if (l.rfind("-A " + chain_prefix, 0) == 0) out.push_back(l);
  return out;
}

// A run of rules that differ only in one peer and one port is one rule matching a hash:net,port set: iptables walks
// one rule instead of thousands. The IR (and so the evaluator, plan --impact and diff) keeps every rule.
TEST(PolicyCompile, RunsOfOnePeerOnePortRulesAreOneSetRule) {
  auto ir = must_compile(many_rules(20, "deny"));
  size_t ir_rules = 0;
  for (const auto& c : ir.v4.chains)
    if (c.name.rfind("HOSTSCOPE-P-", 0) == 0) ir_rules += c.rules.size();
  EXPECT_EQ(ir_rules, 20u);  // the IR is unchanged
  auto r = render(ir.v4);
  auto chain = chain_lines(r, "HOSTSCOPE-P-");
  ASSERT_EQ(chain.size(), 1u) << ::testing::PrintToString(r.rules);
  ASSERT_EQ(r.set_names.size(), 1u);
  const std::string set = r.set_names[0];
  EXPECT_THAT(chain[0], ::testing::HasSubstr(" -p tcp -m set --match-set " + set + " dst,dst -m comment"));
  EXPECT_THAT(chain[0], ::testing::EndsWith("-j DROP"));
  EXPECT_THAT(r.ipsets, ::testing::HasSubstr("create " + set + " hash:net,port family inet hashsize 1024 maxelem 65536\n"));
  EXPECT_THAT(r.ipsets, ::testing::HasSubstr("add " + set + "-t 10.9.0.1/32,6:1000\n"));
  EXPECT_THAT(r.ipsets, ::testing::HasSubstr("add " + set + "-t 10.9.0.20/32,6:1019\n"));
  EXPECT_THAT(r.ipsets, ::testing::HasSubstr("swap " + set + "-t " + set + "\n"));
  // status names the run: its size, the set, the first and last rule, the first rule's file:line.
  ASSERT_EQ(r.folded.size(), 1u);
  EXPECT_EQ(r.folded[0].owner, "many");
  EXPECT_EQ(r.folded[0].target, "DROP");
  EXPECT_EQ(r.folded[0].loc, "t.yaml:8:5");
  EXPECT_EQ(r.folded[0].what, "egress rule 1 (deny) to egress rule 20 (deny): 20 rules in one ipset");
  EXPECT_THAT(chain[0], ::testing::HasSubstr("\"" + r.folded[0].tag + "\""));
  // IPv6: its own set, addresses with their prefix.
  auto r6 = render(ir.v6);
  ASSERT_EQ(chain_lines(r6, "HOSTSCOPE-P-").size(), 1u);
  EXPECT_THAT(r6.ipsets, ::testing::HasSubstr("hash:net,port family inet6"));
  EXPECT_THAT(r6.ipsets, ::testing::HasSubstr("-t fd00:9::1/128,6:1000\n"));
  // Off: every rule is its own line, as before.
  RenderOptions off;
  off.fold_min = 0;
  EXPECT_EQ(chain_lines(render(ir.v4, off), "HOSTSCOPE-P-").size(), 20u);
  EXPECT_TRUE(render(ir.v4, off).set_names.empty());
}

// A rule with a list of ports (policy generate groups a peer's ports) folds too: one member per port or range.
TEST(PolicyCompile, RulesWithAFewPortsFoldAsOneMemberPerPort) {
  std::string y = many_rules(10, "allow");
  y.replace(y.find("ports: [1000]"), 13, "ports: [1000, 2000, \"3000-3010\"]");
  auto ir = must_compile(y);
  auto r = render(ir.v4);
  ASSERT_EQ(chain_lines(r, "HOSTSCOPE-P-").size(), 1u) << ::testing::PrintToString(r.rules);
  const std::string set = r.set_names.at(0);
  for (const char* m : {"10.9.0.1/32,6:1000\n", "10.9.0.1/32,6:2000\n", "10.9.0.1/32,6:3000-3010\n", "10.9.0.2/32,6:1001\n"})
    EXPECT_THAT(r.ipsets, ::testing::HasSubstr("add " + set + "-t " + m));
  // More than 64 ports in one rule: that rule is not folded, and it ends the run (9 + 1 rules: 9 fold, 1 plain).
  y.replace(y.find("\"3000-3010\""), 11, "\"3000-3100\"");
  auto wide = chain_lines(render(must_compile(y).v4), "HOSTSCOPE-P-");
  EXPECT_EQ(wide.size(), 2u) << ::testing::PrintToString(wide);
}

// Order matters only between rules of different verdicts: a rule in between ends the run, and a run shorter than
// fold_min stays rules. Reject keeps its tcp-reset; an ingress run matches the set by source address.
TEST(PolicyCompile, FoldingKeepsRuleOrderAcrossVerdicts) {
  auto ir = must_compile(many_rules(20, "reject", 12));  // 12 rules, allow, 8 rules
  auto r = render(ir.v4);
  auto chain = chain_lines(r, "HOSTSCOPE-P-");
  ASSERT_EQ(chain.size(), 3u) << ::testing::PrintToString(chain);
  EXPECT_THAT(chain[0], ::testing::HasSubstr("--match-set"));
  EXPECT_THAT(chain[0], ::testing::EndsWith("-j REJECT --reject-with tcp-reset"));
  EXPECT_THAT(chain[1], ::testing::HasSubstr("-d 10.8.0.1/32 -p tcp -m tcp --dport 80"));
  EXPECT_THAT(chain[1], ::testing::EndsWith("-j RETURN"));
  EXPECT_THAT(chain[2], ::testing::HasSubstr("--match-set"));
  EXPECT_EQ(r.set_names.size(), 2u);
  // Below the threshold: plain rules.
  RenderOptions high;
  high.fold_min = 9;
  EXPECT_EQ(chain_lines(render(ir.v4, high), "HOSTSCOPE-P-").size(), 1u + 1u + 8u);

  std::string in = many_rules(10, "deny");
  for (size_t at; (at = in.find("egress")) != std::string::npos;) in.replace(at, 6, "ingress");
  const std::string both_ingress = "default: {ingress: allow, ingress: allow}";
  in.replace(in.find(both_ingress), both_ingress.size(), "default: {egress: allow, ingress: allow}");
  auto ir_in = must_compile(in);
  auto ri = chain_lines(render(ir_in.v4), "HOSTSCOPE-P-");
  ASSERT_EQ(ri.size(), 1u) << ::testing::PrintToString(ri);
  EXPECT_THAT(ri[0], ::testing::HasSubstr(" src,dst -m comment"));
}

// IPv6 neighbour discovery and MLD are accepted first in every IPv6 hook chain, also for a subject with
// default deny both ways and failsafe off; other ICMPv6 is still policy's.
TEST(PolicyEvaluator, Ipv6NeighbourDiscoveryAlwaysOpen) {
  const char* y = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: pod}
subject: {service: db}
failsafe: false
default: {egress: reject, ingress: deny}
)";
  auto ir = must_compile(y);
  Packet ns_out;  // the pod's solicitation to the node, dispatched on INPUT by its source address
  ns_out.src = IpAddr::parse("fd00::3");
  ns_out.dst = IpAddr::parse("ff02::1:ff00:1");
  ns_out.proto = Protocol::Icmpv6;
  Packet na_in;  // the node's advertisement to the pod, dispatched on OUTPUT by its destination
  na_in.src = IpAddr::parse("fe80::1");
  na_in.dst = IpAddr::parse("fd00::3");
  na_in.proto = Protocol::Icmpv6;
  for (int type = 130; type <= 136; ++type) {
    ns_out.icmpv6_type = na_in.icmpv6_type = uint8_t(type);
    EXPECT_EQ(evaluate_hook(ir.v6, Hook::Input, ns_out), Verdict::Allow) << type;
    EXPECT_EQ(evaluate_hook(ir.v6, Hook::Output, na_in), Verdict::Allow) << type;
    EXPECT_EQ(evaluate_hook(ir.v6, Hook::Forward, na_in), Verdict::Allow) << type;
  }
  ns_out.icmpv6_type = na_in.icmpv6_type = 128;  // echo request: the policy decides
  EXPECT_EQ(evaluate_hook(ir.v6, Hook::Input, ns_out), Verdict::Deny);
  EXPECT_EQ(evaluate_hook(ir.v6, Hook::Output, na_in), Verdict::Deny);
  ns_out.proto = Protocol::Tcp;  // a TCP packet with the same number as its port is not ICMPv6
  ns_out.dport = 135;
  EXPECT_EQ(evaluate_hook(ir.v6, Hook::Input, ns_out), Verdict::Deny);
  // Rendered first in each IPv6 hook chain, one rule per type; absent from IPv4.
  auto r6 = render(ir.v6);
  for (const char* chain : {"HOSTSCOPE-INPUT", "HOSTSCOPE-OUTPUT", "HOSTSCOPE-FORWARD"}) {
    std::vector<std::string> lines;
    for (const auto& l : r6.rules)
      if (l.rfind(fmt::format("-A {} ", chain), 0) == 0) lines.push_back(l);
    ASSERT_GE(lines.size(), 8u) << chain;
    for (int i = 0; i < 7; ++i) {
      EXPECT_THAT(lines[i], ::testing::StartsWith(fmt::format("-A {} -p ipv6-icmp -m icmp6 --icmpv6-type {} -m comment --comment \"hostscope:hs.nd:", chain, 130 + i)));
      EXPECT_THAT(lines[i], ::testing::EndsWith("-j RETURN"));
    }
    EXPECT_THAT(lines[7], ::testing::HasSubstr("--ctstate RELATED,ESTABLISHED"));
  }
  for (const auto& l : render(ir.v4).rules) EXPECT_EQ(l.find("icmp6"), std::string::npos) << l;
  // The stored IR keeps the ICMPv6 type (it is what `top` evaluates with).
  auto back = ir_from_json(ir_to_json(ir));
  ASSERT_TRUE(back) << back.error().str();
  ns_out.proto = Protocol::Icmpv6;
  ns_out.icmpv6_type = 135;
  EXPECT_EQ(evaluate_hook(back->v6, Hook::Input, ns_out), Verdict::Allow);
  ns_out.icmpv6_type = 128;
  EXPECT_EQ(evaluate_hook(back->v6, Hook::Input, ns_out), Verdict::Deny);
}

TEST(PolicyEvaluator, PolicyTestsRunAgainstEvaluator) {
  std::string y = std::string(kWeb) + R"(---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: web-tests}
cases:
  - {from: web, to: db, port: 5432, expect: allow}
  - {from: web, to: db, port: 5432, protocol: udp, expect: deny}
  - {from: web, to: 192.0.2.1, port: 80, expect: allow}
)";
  auto loaded = load_text(y, "t.yaml");
  auto c = compile(loaded, catalogue());
  ASSERT_TRUE(c.ok());
  auto res = run_policy_tests(loaded.set, *c.ir, catalogue());
  ASSERT_EQ(res.size(), 3u);
  EXPECT_TRUE(res[0].passed) << res[0].detail;
  EXPECT_TRUE(res[1].passed) << res[1].detail;
  EXPECT_FALSE(res[2].passed);  // office is rejected
  EXPECT_THAT(res[2].detail, ::testing::HasSubstr("expected allow, got deny"));
}

// Issue 19: a PolicyTest case can expect an audit policy's would-deny verdict, which `allow` does not tell apart
// (the packet passes either way).
TEST(PolicyEvaluator, PolicyTestsExpectAuditWouldDeny) {
  std::string y = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cache}
subject: {service: cache}
mode: audit
default: {egress: deny}
egress:
  - action: allow
    ports: [6379]
    protocol: tcp
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata: {name: cache-tests}
cases:
  - {from: cache, to: 10.0.0.1, port: 80, expect: audit-would-deny}
  - {from: cache, to: 10.0.0.1, port: 6379, expect: audit-would-deny}
  - {from: cache, to: 10.0.0.1, port: 80, expect: allow}
  - {from: cache, to: 10.0.0.1, port: 80, expect: deny}
)";
  auto loaded = load_text(y, "t.yaml");
  ASSERT_TRUE(loaded.diagnostics.empty()) << loaded.diagnostics.front().str();
  auto c = compile(loaded, catalogue());
  ASSERT_TRUE(c.ok());
  auto res = run_policy_tests(loaded.set, *c.ir, catalogue());
  ASSERT_EQ(res.size(), 4u);
  EXPECT_TRUE(res[0].passed) << res[0].detail;
  EXPECT_FALSE(res[1].passed);  // allowed by the rule, not an audit would-deny
  EXPECT_THAT(res[1].detail, ::testing::HasSubstr("expected audit-would-deny, got allow"));
  EXPECT_TRUE(res[2].passed) << res[2].detail;  // the packet passes: `allow` still holds for audit policies
  EXPECT_FALSE(res[3].passed);
  // An unknown expectation names the three values.
  auto bad = load_text(std::string(y).replace(y.find("expect: deny"), 12, "expect: drop"), "t.yaml");
  ASSERT_FALSE(bad.diagnostics.empty());
  EXPECT_THAT(bad.diagnostics.front().str(), ::testing::HasSubstr("allow, deny, audit-would-deny"));
}

TEST(PolicyPlan, DiffByRuleTag) {
  auto ir = must_compile(kWeb);
  auto next = render(ir.v4);
  // Installed: same render minus its last rule, plus a foreign line in our chain and a stale chain.
  std::string saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n";
  for (const auto& c : next.chains) saved += ":" + c + " - [0:0]\n";
  saved += ":HOSTSCOPE-P-0000000000000000 - [0:0]\n";
  saved += "[3:180] -A INPUT -m comment --comment \"hostscope:jump\" -j HOSTSCOPE-INPUT\n";
  for (size_t i = 0; i + 1 < next.rules.size(); ++i) saved += "[0:0] " + next.rules[i] + "\n";
  saved += "[0:0] -A HOSTSCOPE-OUTPUT -j ACCEPT\n";
  saved += "[0:0] -A HOSTSCOPE-P-0000000000000000 -m comment --comment \"hostscope:old:0123456789ab\" -j DROP\nCOMMIT\n";
  auto installed = parse_save(saved);
  ASSERT_EQ(installed.jumps_to_us().size(), 1u);
  auto plan = make_plan(installed, next);
  std::string text = plan.text();
  EXPECT_THAT(text, ::testing::HasSubstr("  + " + next.rules.back() + "\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("ipv4 HOSTSCOPE-OUTPUT: +0 -1\n  - -A HOSTSCOPE-OUTPUT -j ACCEPT\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("ipv4 HOSTSCOPE-P-0000000000000000 (chain removed): +0 -1\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("jump rule to add: ipv4 OUTPUT -> HOSTSCOPE-OUTPUT\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("jump rule to add: ipv4 FORWARD -> HOSTSCOPE-FORWARD\n"));
  EXPECT_THAT(text, ::testing::EndsWith("1 rules added, 2 removed, 2 jump rules added\n"));
  // Installed == render: no changes.
  std::string same = "*filter\n";
  for (const auto& c : next.chains) same += ":" + c + " - [0:0]\n";
  for (const char* h : {"INPUT", "OUTPUT", "FORWARD"})
    same += fmt::format("-A {} -m comment --comment \"hostscope:jump\" -j HOSTSCOPE-{}\n", h, h);
  for (const auto& l : next.rules) same += l + "\n";
  EXPECT_TRUE(make_plan(parse_save(same + "COMMIT\n"), next).empty()) << make_plan(parse_save(same + "COMMIT\n"), next).text();
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/hs-policy-unit-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST(PolicyBackend, ApplyRollbackStatusFlushFlow) {
  TempDir dir;
  auto fake = std::make_shared<FakeIptables>();
  const std::string builtin = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                              "[5:300] -A INPUT -j KUBE-FIREWALL\nCOMMIT\n";
  fake->tables["iptables"] = builtin;
  fake->tables["ip6tables"] = builtin;
  IptablesOptions o;
  o.state_dir = dir.path;
  IptablesBackend b(o, fake);

  auto ir1 = must_compile(kWeb);
  auto a1 = b.apply(ir1);
  ASSERT_TRUE(a1) << a1.error().str();
  EXPECT_EQ(a1->generation, 1);
  EXPECT_EQ(fake->restores.size(), 2u);  // one restore per family
  EXPECT_THAT(fake->restores[0], ::testing::HasSubstr("-I INPUT 1 -m comment --comment \"hostscope:jump\" -j HOSTSCOPE-INPUT\n"));
  EXPECT_THAT(fake->restores[0], ::testing::StartsWith("*filter\n:HOSTSCOPE-INPUT - [0:0]\n"));
  EXPECT_THAT(fake->tables["iptables"], ::testing::HasSubstr("-A INPUT -j KUBE-FIREWALL"));  // untouched

  auto st = b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->generation, 1);
  EXPECT_FALSE(st->drift) << st->text();
  EXPECT_FALSE(st->counters.empty());
  EXPECT_EQ(st->counters[0].packets, 1u);

  // A failed restore changes nothing: generation and rules stay.
  std::string y2 = kWeb;
  y2.replace(y2.find("[5432]"), 6, "[5433]");
  auto ir2 = must_compile(y2);
  auto before = fake->tables["iptables"];
  fake->fail_restore = true;
  EXPECT_FALSE(b.apply(ir2));
  EXPECT_EQ(fake->tables["iptables"], before);
  EXPECT_EQ(b.status()->generation, 1);
  fake->fail_restore = false;

  auto a2 = b.apply(ir2);
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_EQ(a2->generation, 2);
  EXPECT_THAT(a2->plan.text(), ::testing::HasSubstr("--dport 5433"));
  EXPECT_TRUE(a2->plan.jumps_to_add.empty());
  auto rb = b.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_EQ(rb->generation, 1);
  EXPECT_THAT(fake->tables["iptables"], ::testing::HasSubstr("--dport 5432"));
  EXPECT_THAT(fake->tables["iptables"], ::testing::Not(::testing::HasSubstr("--dport 5433")));
  EXPECT_FALSE(b.status()->drift);

  // Drift: someone removes one of our rules.
  auto& t = fake->tables["iptables"];
  auto pos = t.find("-A HOSTSCOPE-P-");
  t.erase(t.rfind('\n', pos) + 1, t.find('\n', pos) - t.rfind('\n', pos));
  auto drifted = b.status();
  EXPECT_TRUE(drifted->drift);
  EXPECT_THAT(drifted->drift_details[0], ::testing::HasSubstr("ipv4 missing: -A HOSTSCOPE-P-"));

  ASSERT_TRUE(b.flush());
  EXPECT_EQ(fake->tables["iptables"], FakeIptables::apply(builtin, ""));  // back to exactly the foreign rules
  EXPECT_EQ(b.status()->generation, 0);
  EXPECT_FALSE(b.status()->drift);
}

// kWeb with the egress port to db changed (one rule per family) and a log rule, whose NFLOG options iptables-save
// words in another order than they are rendered.
std::string web_with_log(int db_port) {
  std::string y = kWeb;
  y.replace(y.find("[5432]"), 6, fmt::format("[{}]", db_port));
  return y + "  - action: log\n    peers: [{cidr: 10.9.0.0/16}]\n    ports: [22]\n";
}

// The chain of the first rendered line containing `what`.
std::string chain_with(const RenderedTable& t, const std::string& what) {
  for (const auto& l : t.rules)
    if (l.find(what) != std::string::npos) return l.substr(3, l.find(' ', 3) - 3);
  return "";
}

struct FakeNode {
  TempDir dir;
  std::shared_ptr<FakeIptables> fake = std::make_shared<FakeIptables>();
  IptablesBackend b;
  FakeNode() : b(options(dir.path), fake) {
    fake->tables["iptables"] = fake->tables["ip6tables"] = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    fake->reword_nflog = true;
  }
  static IptablesOptions options(const std::string& dir) {
    IptablesOptions o;
    o.state_dir = dir;
    return o;
  }
  // The tables a node that never had rules holds after applying `ir`.
  static std::map<std::string, std::string> fresh(const Ir& ir) {
    FakeNode n;
    EXPECT_TRUE(n.b.apply(ir));
    return n.fake->tables;
  }
  // A rule of `chain` removed by hand: the `n`th (1-based).
  void remove_rule(const std::string& family, const std::string& chain, int n) {
    auto& t = fake->tables[family];
    size_t pos = 0;
    for (int i = 0; i < n; ++i) pos = t.find("-A " + chain + " ", pos + 1);
    ASSERT_NE(pos, std::string::npos);
    auto begin = t.rfind('\n', pos) + 1;
    t.erase(begin, t.find('\n', pos) + 1 - begin);
  }
};

// The backend's rule index knows the folded rule, so status shows it with its policy and file:line.
TEST(PolicyBackend, StatusNamesAFoldedRun) {
  FakeNode node;
  auto& fake = node.fake;
  auto& b = node.b;
  auto a = b.apply(must_compile(many_rules(10, "deny")));
  ASSERT_TRUE(a) << a.error().str();
  auto st = b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift) << st->text();
  EXPECT_THAT(st->text(), ::testing::HasSubstr("t.yaml:8:5"));
  EXPECT_THAT(st->text(), ::testing::HasSubstr("egress rule 1 (deny) to egress rule 10 (deny): 10 rules in one ipset"));
  auto j = st->policies_json("many");
  ASSERT_EQ(j.size(), 1u);
  ASSERT_EQ(j[0]["rules"].size(), 1u) << j.dump();  // both families' sets: one row per run, like one rule
  EXPECT_EQ(j[0]["rules"][0]["target"], "DROP");
}

// A one-rule change inside a folded run changes the members of its set alone: made on the live set (added before
// removed), with no iptables-restore; rollback the same way back. A change that also moves rules gives a changed set
// its other slot, so the rules in force match the old members until one restore switches them.
TEST(PolicyBackend, AChangeOfMembersAloneIsMadeOnTheLiveSet) {
  FakeNode node;
  auto& fake = node.fake;
  auto& b = node.b;
  const std::string first = many_rules(20, "deny");
  auto a1 = b.apply(must_compile(first));
  ASSERT_TRUE(a1) << a1.error().str();
  const auto r1 = render(must_compile(first).v4);
  ASSERT_EQ(r1.fold_sets.size(), 1u);
  const std::string set = r1.fold_sets.begin()->first;
  EXPECT_EQ(set.back(), 'a');

  std::string second = first;
  second.replace(second.find("ports: [1000]"), 13, "ports: [1500]");
  auto planned = b.plan(must_compile(second));  // plan says what apply does
  ASSERT_TRUE(planned) << planned.error().str();
  EXPECT_TRUE(planned->chains.empty()) << planned->text();
  EXPECT_EQ(planned->sets_changed.size(), 2u) << planned->text();
  fake->restores.clear();
  fake->ipset_restores.clear();
  auto a2 = b.apply(must_compile(second));
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_EQ(a2->generation, 2);
  EXPECT_TRUE(fake->restores.empty()) << fake->restores[0];  // no iptables-restore in either family
  ASSERT_EQ(fake->ipset_restores.size(), 2u);
  EXPECT_EQ(fake->ipset_restores[0], "add " + set + " 10.9.0.1/32,6:1500\ndel " + set + " 10.9.0.1/32,6:1000\n");
  EXPECT_THAT(fake->ipset_restores[1], ::testing::StartsWith("add hs-"));
  EXPECT_THAT(a2->plan.text(), ::testing::HasSubstr("set members changed in place: ipv4 " + set + ": +1 -1 members"));
  auto st = b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->generation, 2);
  EXPECT_FALSE(st->drift) << st->text();

  // A range member is the entries the kernel holds for it: widening 1001 to 1001-1003 adds two entries and removes
  // none (deleting the old member would delete port 1001, which the new range still holds).
  std::string widened = second;
  widened.replace(widened.find("ports: [1001]"), 13, "ports: [\"1001-1003\"]");
  fake->ipset_restores.clear();
  auto aw = b.apply(must_compile(widened));
  ASSERT_TRUE(aw) << aw.error().str();
  ASSERT_EQ(fake->ipset_restores.size(), 2u);
  EXPECT_EQ(fake->ipset_restores[0], "add " + set + " 10.9.0.2/32,6:1002\nadd " + set + " 10.9.0.2/32,6:1003\n");
  auto back = b.rollback();  // to the second set: removes exactly those two
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(fake->ipset_restores[2], "del " + set + " 10.9.0.2/32,6:1002\ndel " + set + " 10.9.0.2/32,6:1003\n");

  fake->ipset_restores.clear();
  auto rb = b.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_TRUE(fake->restores.empty());
  ASSERT_EQ(fake->ipset_restores.size(), 2u);
  EXPECT_EQ(fake->ipset_restores[0], "add " + set + " 10.9.0.1/32,6:1000\ndel " + set + " 10.9.0.1/32,6:1500\n");
  EXPECT_FALSE(b.status()->drift);

  // An allow rule in the middle splits the run: the rules change, and the first run's set (members changed) takes
  // slot b, filled under its new name before the restore that points the rule at it.
  fake->ipset_restores.clear();
  auto a3 = b.apply(must_compile(many_rules(20, "deny", 12)));
  ASSERT_TRUE(a3) << a3.error().str();
  EXPECT_EQ(fake->restores.size(), 1u);  // the allow rule is IPv4 only: the IPv6 table stays as it is
  std::string moved = set;
  moved.back() = 'b';
  ASSERT_FALSE(fake->ipset_restores.empty());
  EXPECT_THAT(fake->ipset_restores[0], ::testing::HasSubstr("swap " + moved + "-t " + moved + "\n"));
  EXPECT_THAT(fake->tables["iptables"], ::testing::HasSubstr("--match-set " + moved + " dst,dst"));
  EXPECT_THAT(fake->tables["iptables"], ::testing::Not(::testing::HasSubstr("--match-set " + set + " ")));
  EXPECT_FALSE(b.status()->drift);
}

// The mass-removal guard counts a folded rule as the rules it stands for, and a rule replaced in the same plan as
// not removed: splitting a folded run (its set takes the other slot) or folding rules that were installed one by one
// removes nothing, even with a policy that selects nothing on this node.
TEST(PolicyBackend, MassRemovalCountsTheRulesAFoldedRuleStandsFor) {
  const std::vector<std::pair<std::string, SourceLoc>> unselected = {{"ghost", SourceLoc{"ghost.yaml", 1, 1}}};
  FakeNode node;
  ASSERT_TRUE(node.b.apply(must_compile(many_rules(20, "deny"))));
  auto st = node.b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(policy_rules_in_force(*st), 40u);  // 20 rules in each family, one set rule each
  auto split = node.b.plan(must_compile(many_rules(20, "deny", 12)));
  ASSERT_TRUE(split) << split.error().str();
  ASSERT_FALSE(split->chains.empty());
  EXPECT_EQ(mass_removal(*split, policy_rules_in_force(*st), unselected, 2), "") << split->text();

  FakeNode one_by_one;
  IptablesOptions o = FakeNode::options(one_by_one.dir.path);
  o.render.fold_min = 0;
  IptablesBackend unfolded(o, one_by_one.fake);
  ASSERT_TRUE(unfolded.apply(must_compile(many_rules(20, "deny"))));
  auto before = unfolded.status();
  ASSERT_TRUE(before) << before.error().str();
  EXPECT_EQ(policy_rules_in_force(*before), 40u);
  auto folding = one_by_one.b.plan(must_compile(many_rules(20, "deny")));  // the same state dir, folding on
  ASSERT_TRUE(folding) << folding.error().str();
  EXPECT_EQ(mass_removal(*folding, policy_rules_in_force(*before), unselected, 2), "") << folding->text();
  // A real mass removal is still one: the run gone.
  auto gone = node.b.plan(must_compile(many_rules(2, "deny")));
  ASSERT_TRUE(gone) << gone.error().str();
  EXPECT_NE(mass_removal(*gone, policy_rules_in_force(*st), unselected, 2), "") << gone->text();
}

// A node with web_with_log(5432) applied; ir2 changes one rule per family.
struct OneRuleChange {
  FakeNode node;
  Ir ir1 = must_compile(web_with_log(5432)), ir2 = must_compile(web_with_log(5433));
  std::string changing = chain_with(render(ir2.v4), "--dport 5433");  // the IPv4 chain the change is in
  std::map<std::string, std::string> first;                            // the tables with ir1 in force
  OneRuleChange() {
    EXPECT_TRUE(node.b.apply(ir1));
    EXPECT_FALSE(changing.empty());
    first = node.fake->tables;
    node.fake->restores.clear();
  }
};

// A one-rule change sends only that rule, as an edit at its position in its chain (no chain declared, so no other
// chain or rule is flushed), for each family; the tables end up exactly as a fresh install leaves them. The rollback
// is an edit too.
TEST(PolicyBackend, OneRuleChangeSendsOnlyThatRule) {
  OneRuleChange c;
  auto& [node, ir1, ir2, changing, first] = c;
  auto a2 = node.b.apply(ir2);
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_EQ(a2->generation, 2);
  EXPECT_THAT(a2->plan.text(), ::testing::HasSubstr("--dport 5433"));
  ASSERT_EQ(node.fake->restores.size(), 2u);  // one per family
  for (const auto& text : node.fake->restores) {
    EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr(":HOSTSCOPE"))) << text;
    EXPECT_THAT(text, ::testing::MatchesRegex("\\*filter\n-R HOSTSCOPE-[-A-Za-z0-9]+ [0-9]+ [^\n]*--dport 5433[^\n]*\nCOMMIT\n")) << text;
  }
  EXPECT_EQ(node.fake->tables, FakeNode::fresh(ir2));
  auto st = node.b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift) << st->text();

  node.fake->restores.clear();
  auto rb = node.b.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_EQ(rb->generation, 1);
  ASSERT_EQ(node.fake->restores.size(), 2u);
  for (const auto& text : node.fake->restores)
    EXPECT_THAT(text, ::testing::MatchesRegex("\\*filter\n-R HOSTSCOPE-[-A-Za-z0-9]+ [0-9]+ [^\n]*--dport 5432[^\n]*\nCOMMIT\n")) << text;
  EXPECT_EQ(node.fake->tables, first);
  EXPECT_FALSE(node.b.status()->drift);

  // Rules added and removed at the end and in the middle of a chain: -I/-A and -D, still no chain declared.
  std::string more = web_with_log(5432);
  more.replace(more.find("  - action: reject"), 0, "  - action: deny\n    peers: [{cidr: 10.7.0.0/16}]\n");
  more += "  - action: deny\n    peers: [{cidr: 10.8.0.0/16}]\n    ports: [23]\n";
  auto ir3 = must_compile(more);
  node.fake->restores.clear();
  ASSERT_TRUE(node.b.apply(ir3));
  EXPECT_THAT(node.fake->restores[0], ::testing::Not(::testing::HasSubstr(":HOSTSCOPE")));
  EXPECT_THAT(node.fake->restores[0], ::testing::HasSubstr("\n-I HOSTSCOPE-"));
  EXPECT_EQ(node.fake->tables, FakeNode::fresh(ir3));
  node.fake->restores.clear();
  ASSERT_TRUE(node.b.apply(ir1));
  EXPECT_THAT(node.fake->restores[0], ::testing::Not(::testing::HasSubstr(":HOSTSCOPE")));
  EXPECT_THAT(node.fake->restores[0], ::testing::HasSubstr("\n-D HOSTSCOPE-"));
  EXPECT_EQ(node.fake->tables, first);
  EXPECT_FALSE(node.b.status()->drift);
}

// Drift: a chain someone changed is declared again in full (never edited around what they did), also when the new
// set does not change it; the chains nobody touched are still left alone.
TEST(PolicyBackend, DriftedChainIsDeclaredAgain) {
  OneRuleChange c;
  auto& [node, ir1, ir2, changing, first] = c;
  node.remove_rule("iptables", changing, 1);
  node.remove_rule("iptables", "HOSTSCOPE-INPUT", 1);
  ASSERT_TRUE(node.b.status()->drift);
  ASSERT_TRUE(node.b.apply(ir2));
  ASSERT_EQ(node.fake->restores.size(), 2u);
  const auto& v4 = node.fake->restores[0];
  EXPECT_THAT(v4, ::testing::HasSubstr(":" + changing + " - [0:0]\n"));
  EXPECT_THAT(v4, ::testing::HasSubstr(":HOSTSCOPE-INPUT - [0:0]\n"));
  EXPECT_THAT(v4, ::testing::Not(::testing::HasSubstr(":HOSTSCOPE-OUTPUT ")));
  EXPECT_THAT(v4, ::testing::Not(::testing::HasSubstr("-R ")));
  EXPECT_THAT(node.fake->restores[1], ::testing::Not(::testing::HasSubstr(":HOSTSCOPE")));  // IPv6: no drift, one edit
  EXPECT_EQ(node.fake->tables, FakeNode::fresh(ir2));
  EXPECT_FALSE(node.b.status()->drift);
}

// Someone changes our chain between the backend's save and its restore: the edit lands in the wrong place, the read
// back shows it, and every chain is declared again in a second restore; the kernel ends up exact.
TEST(PolicyBackend, ChainChangedDuringInstallIsInstalledAgainInFull) {
  OneRuleChange c;
  auto& [node, ir1, ir2, changing, first] = c;
  bool raced = false;
  node.fake->before_restore = [&](const std::string& family, std::string& table) {
    if (family != "iptables" || raced) return;
    raced = true;
    table = FakeIptables::apply(table, "*filter\n-I " + changing + " 1 -j ACCEPT\nCOMMIT\n");
  };
  auto a2 = node.b.apply(ir2);
  ASSERT_TRUE(a2) << a2.error().str();
  ASSERT_EQ(node.fake->restores.size(), 3u);  // IPv4 edit, IPv4 in full, IPv6 edit
  EXPECT_THAT(node.fake->restores[0], ::testing::Not(::testing::HasSubstr(":HOSTSCOPE")));
  EXPECT_THAT(node.fake->restores[1], ::testing::HasSubstr(":HOSTSCOPE-INPUT - [0:0]\n:HOSTSCOPE-OUTPUT - [0:0]\n"));
  EXPECT_EQ(node.fake->tables, FakeNode::fresh(ir2));
  EXPECT_FALSE(node.b.status()->drift);
}

// The agent's directory source: a policy file behind a dangling symlink (a ConfigMap whose target vanished) fails
// the pass at stage, naming the file; nothing is applied and the rules in force stay.
TEST(PolicyReconciler, DirectorySourceRefusesADanglingSymlink) {
  TempDir dir, state;
  std::ofstream(dir.path + "/web.yaml") << kWeb;
  auto fake = std::make_shared<FakeIptables>();
  ReconcileConfig cfg;
  cfg.kind = ReconcileConfig::Kind::Directory;
  cfg.directory = dir.path;
  cfg.state_dir = state.path;
  Reconciler r(cfg, catalogue, fake);
  auto first = r.pass();
  ASSERT_EQ(first.result, "applied") << first.message;
  auto restores = fake->restores.size();
  ASSERT_EQ(symlink("..data/db.yaml", (dir.path + "/db.yaml").c_str()), 0);
  auto second = r.pass();
  EXPECT_EQ(second.result, "error");
  EXPECT_EQ(second.step, "stage");
  EXPECT_EQ(second.message, "policy file " + dir.path + "/db.yaml: cannot read policy file: it is a symlink to '..data/db.yaml', "
                            "which does not exist (No such file or directory)");
  EXPECT_EQ(fake->restores.size(), restores);
  EXPECT_EQ(r.status().generation, 1);
}

// Applying what is already in force changes nothing: no new generation, `current` and the generation files stay, no
// restore runs, and the report says so. Drift is still repaired, by re-installing the same generation.
TEST(PolicyBackend, ApplyWithoutChangeKeepsTheGeneration) {
  TempDir dir;
  auto fake = std::make_shared<FakeIptables>();
  const std::string builtin = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
  fake->tables["iptables"] = fake->tables["ip6tables"] = builtin;
  IptablesOptions o;
  o.state_dir = dir.path;
  IptablesBackend b(o, fake);
  auto ir = must_compile(kWeb);
  auto a1 = b.apply(ir);
  ASSERT_TRUE(a1) << a1.error().str();
  EXPECT_FALSE(a1->unchanged);
  auto restores = fake->restores.size();
  auto gen1 = std::filesystem::last_write_time(dir.path + "/gen-1.json");

  auto a2 = b.apply(ir);
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_TRUE(a2->unchanged);
  EXPECT_FALSE(a2->drift_repaired);
  EXPECT_EQ(a2->generation, 1);
  EXPECT_TRUE(a2->plan.empty()) << a2->plan.text();
  EXPECT_EQ(fake->restores.size(), restores);
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/gen-2.json"));
  EXPECT_EQ(std::filesystem::last_write_time(dir.path + "/gen-1.json"), gen1);
  EXPECT_EQ(b.status()->generation, 1);

  // Only the source changed (a YAML comment): same rules, same generation; status names the new source.
  auto commented = must_compile(std::string("# reviewed\n") + kWeb);
  ASSERT_NE(commented.source_hash, ir.source_hash);
  auto a3 = b.apply(commented);
  ASSERT_TRUE(a3) << a3.error().str();
  EXPECT_TRUE(a3->unchanged);
  EXPECT_EQ(a3->generation, 1);
  EXPECT_EQ(b.status()->source_hash, commented.source_hash);
  EXPECT_EQ(fake->restores.size(), restores);
  // `policy status` a person can read: per policy and rule with file:line (the positions of the commented source,
  // one line lower), hostscope's own rules in one line; --policy of another name shows none of web's rules.
  auto text = b.status()->text();
  EXPECT_NE(text.find("policy web (enforce): "), std::string::npos) << text;
  EXPECT_NE(text.find("  t.yaml:6:"), std::string::npos) << text;
  EXPECT_NE(text.find("egress default deny"), std::string::npos) << text;
  EXPECT_NE(text.find("hostscope's own rules"), std::string::npos) << text;
  EXPECT_EQ(b.status()->text("other").find("t.yaml:"), std::string::npos);
  EXPECT_EQ(b.status()->policies_json()[0]["name"], "web");

  // Drift (one of our rules deleted by hand): the same generation is installed again, not a new one.
  auto& t = fake->tables["iptables"];
  auto pos = t.find("-A HOSTSCOPE-P-");
  t.erase(t.rfind('\n', pos) + 1, t.find('\n', pos) - t.rfind('\n', pos));
  ASSERT_TRUE(b.status()->drift);
  auto a4 = b.apply(ir);
  ASSERT_TRUE(a4) << a4.error().str();
  EXPECT_TRUE(a4->unchanged);
  EXPECT_TRUE(a4->drift_repaired);
  EXPECT_EQ(a4->generation, 1);
  EXPECT_GT(fake->restores.size(), restores);
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/gen-2.json"));
  EXPECT_FALSE(b.status()->drift);

  // A real change still makes generation 2.
  std::string y2 = kWeb;
  y2.replace(y2.find("[5432]"), 6, "[5433]");
  auto a5 = b.apply(must_compile(y2));
  ASSERT_TRUE(a5) << a5.error().str();
  EXPECT_FALSE(a5->unchanged);
  EXPECT_EQ(a5->generation, 2);
}

// The agent's reconciler: a new source version that changes no rule records the version as applied and keeps the
// generation (no new generation per no-op pass).
TEST(PolicyReconciler, NoOpPassKeepsTheGeneration) {
  TempDir dir, state;
  std::ofstream(dir.path + "/web.yaml") << kWeb;
  auto fake = std::make_shared<FakeIptables>();
  ReconcileConfig cfg;
  cfg.kind = ReconcileConfig::Kind::Directory;
  cfg.directory = dir.path;
  cfg.state_dir = state.path;
  Reconciler r(cfg, catalogue, fake);
  ASSERT_EQ(r.pass().result, "applied");
  auto restores = fake->restores.size();
  std::ofstream(dir.path + "/web.yaml") << "# reviewed\n" << kWeb;
  auto p = r.pass();
  EXPECT_EQ(p.result, "applied");
  EXPECT_EQ(p.message, "no change: generation 1 kept");
  EXPECT_EQ(r.status().generation, 1);
  EXPECT_EQ(r.status().applied_commit, p.commit);
  EXPECT_EQ(fake->restores.size(), restores);
  EXPECT_FALSE(std::filesystem::exists(state.path + "/gen-2.json"));
}

// IPv6 fails after IPv4 switched, and putting IPv4 back fails too: the pending marker stays and the next
// operation (here status) puts one generation back in force everywhere.
TEST(PolicyBackend, HalfDoneSwitchIsUndoneByTheNextCommand) {
  TempDir dir;
  auto fake = std::make_shared<FakeIptables>();
  const std::string builtin = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
  fake->tables["iptables"] = fake->tables["ip6tables"] = builtin;
  IptablesOptions o;
  o.state_dir = dir.path;
  IptablesBackend b(o, fake);
  ASSERT_TRUE(b.apply(must_compile(kWeb)));
  std::string y2 = kWeb;
  y2.replace(y2.find("[5432]"), 6, "[5433]");
  fake->restores_left = 1;  // the IPv4 restore works, then nothing does
  auto r = b.apply(must_compile(y2));
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().str(), ::testing::HasSubstr("the next policy command puts one generation back in force"));
  EXPECT_TRUE(std::filesystem::exists(dir.path + "/pending"));
  EXPECT_THAT(fake->tables["iptables"], ::testing::HasSubstr("--dport 5433"));  // mixed: IPv4 new, IPv6 old
  fake->restores_left = -1;
  auto st = b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_EQ(st->generation, 1);
  EXPECT_FALSE(st->drift) << st->text();
  EXPECT_THAT(fake->tables["iptables"], ::testing::Not(::testing::HasSubstr("--dport 5433")));
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/pending"));
  EXPECT_FALSE(std::filesystem::exists(dir.path + "/gen-2.json"));
  auto again = b.apply(must_compile(y2));
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(again->generation, 2);
}


// The stored IR is written without building JSON values first; it is the same document, byte for byte.
TEST(PolicyIrJson, TextIsTheJsonDump) {
  for (const std::string& y : {std::string(kWeb), web_with_log(5433)}) {
    auto ir = must_compile(y);
    EXPECT_EQ(ir_to_text(ir), ir_to_json(ir).dump());
    ir.v4.sets.push_back(IrSet{"hs-0123456789abcdef", Family::V4, {*parse_cidr("10.0.0.0/8").cidr, *parse_cidr("192.0.2.1/32").cidr}});
    ir.v6.sets.push_back(IrSet{"hs-fedcba9876543210", Family::V6, {}});
    ir.v4.chains.front().rules.front().what = "quote \" backslash \\ tab \t newline \n bell \x07 del \x7f é → 😀";
    ir.policy_modes["other"] = Mode::Audit;
    EXPECT_EQ(ir_to_text(ir), ir_to_json(ir).dump());
    auto back = ir_from_json(nlohmann::json::parse(ir_to_text(ir)));
    ASSERT_TRUE(back) << back.error().str();
    EXPECT_EQ(ir_to_json(*back), ir_to_json(ir));
  }
}

// The rule index is stored in its own file (gen-N.index, a line per rule); a generation stored before that, with the
// index as a JSON object in gen-N.json, still reads: status names the same rules.
TEST(PolicyBackend, GenerationWithTheIndexInItsJsonStillReads) {
  FakeNode node;
  ASSERT_TRUE(node.b.apply(must_compile(web_with_log(5432))));
  auto want = node.b.status();
  ASSERT_TRUE(want) << want.error().str();
  ASSERT_TRUE(std::filesystem::exists(node.dir.path + "/gen-1.index"));
  // Rewrite generation 1 the way older versions stored it.
  std::ifstream in(node.dir.path + "/gen-1.json");
  auto j = nlohmann::json::parse(in);
  nlohmann::json index = nlohmann::json::object();
  for (const auto& c : want->counters)
    index[c.tag] = {{"chain", c.chain}, {"owner", c.owner}, {"what", c.what}, {"target", c.target}, {"mode", c.mode}, {"loc", c.loc}};
  j.erase("rule_index");
  j["index"] = index;
  std::ofstream(node.dir.path + "/gen-1.json") << j.dump();
  std::filesystem::remove(node.dir.path + "/gen-1.index");
  IptablesBackend cold(FakeNode::options(node.dir.path), node.fake);  // nothing kept in memory
  auto st = cold.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift);
  EXPECT_EQ(st->text(), want->text());
  // It stays usable: a change on top of it, and rollback to it.
  ASSERT_TRUE(cold.apply(must_compile(web_with_log(5433))));
  auto rb = cold.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_EQ(cold.status()->text(), want->text());
}

// gen-N.index is input like any other file of the state directory: a damaged one is an error naming the file and the
// line, and a rollback to that generation changes nothing.
TEST(PolicyBackend, DamagedRuleIndexIsAnErrorAndNothingIsApplied) {
  for (std::string damage : {"truncated", "bad escape", "fields", "count", "twice", "header"}) {
    SCOPED_TRACE(damage);
    OneRuleChange c;
    auto& node = c.node;
    ASSERT_TRUE(node.b.apply(c.ir2));
    auto path = node.dir.path + "/gen-1.index";
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto second = text.find('\n') + 1;  // the first rule's line
    auto line = text.substr(second, text.find('\n', second) + 1 - second);
    if (damage == "truncated") text.resize(text.size() - 3);
    if (damage == "bad escape") text.insert(second + 3, "\\q");
    if (damage == "fields") text.insert(second + 3, "\t");
    if (damage == "count") {
      auto nl = text.find('\n');
      text.replace(24, nl - 24, std::to_string(std::stoul(text.substr(24, nl - 24)) + 1));
    }
    if (damage == "twice") text.insert(second, line);
    if (damage == "header") text.replace(0, 9, "something");
    std::ofstream(path + ".new") << text;  // replaced, as every writer of the state directory does
    std::filesystem::rename(path + ".new", path);
    auto tables = node.fake->tables;
    auto rb = node.b.rollback();
    ASSERT_FALSE(rb);
    EXPECT_THAT(rb.error().str(), ::testing::HasSubstr("gen-1.index line "));
    EXPECT_EQ(node.fake->tables, tables);
    EXPECT_EQ(node.b.status()->generation, 2);
  }
}

// A generation kept in memory is used only while its files are unchanged: another process (here another backend on
// the same directory) that rewrites them is seen.
TEST(PolicyBackend, GenerationChangedByAnotherProcessIsReadAgain) {
  FakeNode node;
  auto ir = must_compile(kWeb);
  ASSERT_TRUE(node.b.apply(ir));
  ASSERT_EQ(node.b.status()->source_hash, ir.source_hash);
  IptablesBackend other(FakeNode::options(node.dir.path), node.fake);
  auto commented = must_compile(std::string("# reviewed\n") + kWeb);
  auto a = other.apply(commented);  // the same rules: generation 1 stays, with the new source hash
  ASSERT_TRUE(a) << a.error().str();
  ASSERT_TRUE(a->unchanged);
  EXPECT_EQ(node.b.status()->source_hash, commented.source_hash);
  // A rule removed by hand, repaired by the other backend: its read-back is what the first one compares with.
  node.remove_rule("iptables", "HOSTSCOPE-INPUT", 1);
  ASSERT_TRUE(other.apply(commented));
  EXPECT_FALSE(node.b.status()->drift);
}

// The runner that starts iptables-restore & co.: stdin and both outputs through pipes (larger than a pipe buffer both
// ways at once), exit codes, a tool that cannot be started.
TEST(ProcessRunner, PipesExitCodesAndMissingTools) {
  auto run = make_process_runner();
  std::string big;
  for (int i = 0; i < 100000; ++i) big += fmt::format("line {}\n", i);
  auto cat = run->run({"sh", "-c", "tee /dev/stderr"}, big);
  EXPECT_EQ(cat.exit_code, 0);
  EXPECT_EQ(cat.out, big);
  EXPECT_EQ(cat.err, big);
  EXPECT_EQ(run->run({"sh", "-c", "exit 3"}, "").exit_code, 3);
  auto missing = run->run({"hs-no-such-tool-here"}, "");
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_THAT(missing.err, ::testing::HasSubstr("exec failed"));
}

// A tool does not outlive the process that started it (PR_SET_PDEATHSIG): an iptables-restore that finished after a
// kill -9 of hostscope could commit rules after the next command has put the previous generation back.
TEST(ProcessRunner, ToolDiesWithTheProcessThatStartedIt) {
  TempDir dir;
  auto pidfile = dir.path + "/pid";
  pid_t caller = fork();
  ASSERT_GE(caller, 0);
  if (caller == 0) {
    make_process_runner()->run({"sh", "-c", fmt::format("echo $$ > {0}.tmp && mv {0}.tmp {0} && exec sleep 600", pidfile)}, "");
    _exit(0);
  }
  pid_t tool = 0;
  for (int i = 0; i < 3000 && tool == 0; ++i) {  // a hang guard, not a timing assertion
    std::ifstream(pidfile) >> tool;
    if (tool == 0) usleep(10000);
  }
  ASSERT_GT(tool, 0);
  kill(caller, SIGKILL);
  waitpid(caller, nullptr, 0);
  // Gone, or a zombie waiting for init to reap it.
  auto alive = [&] {
    std::ifstream stat(fmt::format("/proc/{}/stat", tool));
    std::string pid, comm, state;
    if (!(stat >> pid >> comm >> state)) return false;
    return comm == "(sleep)" && state != "Z" && state != "X";
  };
  for (int i = 0; i < 3000 && alive(); ++i) usleep(10000);
  EXPECT_FALSE(alive()) << "pid " << tool;
  if (alive()) kill(tool, SIGKILL);
}

}  // namespace
}  // namespace hostscope::policy
