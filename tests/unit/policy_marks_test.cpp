// Policy marks on topology edges: the IR stored beside a generation round-trips exactly, and edges are marked
// "denied" / "would-deny" by the generation in force, through the catalogue (local services by cgroup) or by address.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/cli/policy_marks.h"
#include "policy/impact.h"
#include "policy/compiler.h"
#include "policy/iptables.h"
#include "policy/ir_json.h"
#include "policy/loader.h"

namespace hostscope {
namespace {

namespace fs = std::filesystem;

policy::Context catalogue() {
  policy::Context c;
  c.services.push_back({"web", {"/system.slice/web.service"}, {}, {8080}, "", "", "", "/usr/bin/web"});
  c.services.push_back({"cron", {"/system.slice/cron.service"}, {}, {}, "", "", "", "/usr/sbin/cron"});
  c.services.push_back({"api", {}, {"10.244.0.5", "fd00:10::5"}, {8443}, "", "shop", "api", ""});
  return c;
}

// web: enforce, may reach 10.0.0.0/24 on 5432 only; cron: audit, may reach nothing but 443; api: ingress only from web.
const char* kPolicies = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web-out}
subject: {service: web}
default: {egress: deny}
egress:
  - {action: allow, peers: [{cidr: 10.0.0.0/24}], ports: [5432], protocol: tcp}
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cron-out}
subject: {service: cron}
mode: audit
default: {egress: deny}
egress:
  - {action: allow, ports: [443], protocol: tcp}
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: api-in}
subject: {service: api}
default: {ingress: deny}
ingress:
  - {action: allow, peers: [{cidr: 10.244.0.0/16}], ports: [8443]}
)";

policy::Ir compiled(const std::string& yaml) {
  auto c = policy::compile(policy::load_text(yaml, "t.yaml"), catalogue(), policy::CompileOptions{2});
  EXPECT_TRUE(c.ok());
  return c.ok() ? *c.ir : policy::Ir{};
}

topology::EdgeSnapshot edge(topology::EdgeEnd client, topology::EdgeEnd server, uint16_t port,
                            topology::Protocol proto = topology::Protocol::Tcp) {
  topology::EdgeSnapshot e;
  e.client = std::move(client);
  e.server = std::move(server);
  e.port = port;
  e.protocol = proto;
  return e;
}
topology::EdgeEnd svc(const std::string& name, const std::string& address, const std::string& ns = "") {
  return {topology::NodeKind::Service, name, ns, "", address};
}
topology::EdgeEnd ext(const std::string& address) { return {topology::NodeKind::External, "external", "", "", address}; }

TEST(PolicyIrJson, RoundTripKeepsEveryRuleAndSet) {
  // Large peer lists become ipsets (threshold 2); the stored IR must render to the same iptables text.
  auto ir = compiled(std::string(kPolicies) +
                     "---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: many}\nsubject: {cgroup: /batch}\n"
                     "egress:\n  - {action: reject, peers: [{cidr: 192.0.2.1}, {cidr: 192.0.2.9}, {cidr: 198.51.100.0/24}, {cidr: \"2001:db8::/64\"}], ports: [\"80-90\", 443]}\n");
  auto back = policy::ir_from_json(nlohmann::json::parse(policy::ir_to_json(ir).dump()));
  ASSERT_TRUE(back) << back.error().str();
  for (auto f : {Family::V4, Family::V6}) {
    auto a = policy::render(ir.table(f)), b = policy::render(back->table(f));
    EXPECT_EQ(a.rules, b.rules);
    EXPECT_EQ(a.chains, b.chains);
    EXPECT_EQ(a.ipsets, b.ipsets);
  }
  EXPECT_EQ(back->source_hash, ir.source_hash);
  EXPECT_EQ(back->policy_modes, ir.policy_modes);
  EXPECT_FALSE(ir.v4.sets.empty());
}

TEST(PolicyIrJson, MalformedInputNamesTheMember) {
  auto j = policy::ir_to_json(compiled(kPolicies));
  j["ipv4"]["chains"][0]["rules"][0][0] = "10.0.0.300/8";
  auto r = policy::ir_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("ipv4.chains[0].rules[0]: src '10.0.0.300/8'"), std::string::npos) << r.error().str();
  j = policy::ir_to_json(compiled(kPolicies));
  j["ipv6"]["chains"][1]["rules"][0][8] = 99;
  r = policy::ir_from_json(j);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("target 99 out of range"), std::string::npos) << r.error().str();
  EXPECT_FALSE(policy::ir_from_json(nlohmann::json::array()));
  EXPECT_FALSE(policy::ir_from_json({{"schema", "hostscope.ir/v1"}}));
}

TEST(PolicyMarks, EdgeVerdicts) {
  auto ir = compiled(kPolicies);
  auto ctx = catalogue();
  // web (local, by cgroup): allowed inside 10.0.0.0/24:5432, denied elsewhere.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("web", "10.0.0.1"), ext("10.0.0.7"), 5432)), "");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("web", "10.0.0.1"), ext("10.0.1.7"), 5432)), "denied");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("web", "10.0.0.1"), ext("10.0.0.7"), 5433)), "denied");
  // cron is in audit mode: would-deny, never denied.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("cron", "10.0.0.1"), ext("93.184.216.34"), 80)), "would-deny");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("cron", "10.0.0.1"), ext("93.184.216.34"), 443)), "");
  // api (pod addresses): ingress from the pod network only, both families of its addresses.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(ext("10.244.3.3"), svc("api", "10.244.0.5", "shop"), 8443)), "");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(ext("198.51.100.7"), svc("api", "10.244.0.5", "shop"), 8443)), "denied");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(ext("10.244.3.3"), svc("api", "10.244.0.5", "shop"), 8443, topology::Protocol::Udp)), "");
  // A service the catalogue does not know is judged by its observed address; no policy selects it here.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("batch", "10.0.0.9"), ext("10.0.5.5"), 22)), "");
  // No usable end: nothing to judge.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("ghost", ""), ext("10.0.0.7"), 5432)), "");
}

// Local services talking over loopback and the node's address, with policies naming them by observed address (as
// `policy generate` did before it named local services; hand-written sets still may). The kernel sees the addresses on
// OUTPUT and INPUT, so the marks must too: a local end is its cgroups *at the observed address*. Before the fix the
// address was dropped, every address rule missed, and every allowed edge was marked "denied".
TEST(PolicyMarks, LocalServicesKeepTheirObservedAddress) {
  policy::Context ctx;
  ctx.services.push_back({"front", {"/hs/front"}, {}, {}, "", "", "", ""});
  ctx.services.push_back({"cart", {"/hs/cart"}, {}, {7001}, "", "", "", ""});
  ctx.services.push_back({"db", {"/hs/db"}, {}, {7002}, "", "", "", ""});
  const char* set = R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: front}
subject: {service: front}
default: {egress: deny}
egress:
  - {action: allow, protocol: tcp, ports: [7001], peers: [{cidr: 127.0.0.1}]}
  - {action: allow, protocol: tcp, ports: [7002], peers: [{cidr: 10.214.9.1}]}
  - {action: allow, protocol: tcp, ports: [7003], peers: [{cidr: "::1"}]}
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: cart}
subject: {service: cart}
default: {egress: deny, ingress: deny}
ingress:
  - {action: allow, protocol: tcp, ports: [7001], peers: [{cidr: 127.0.0.1}]}
---
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: db}
subject: {service: db}
default: {egress: deny, ingress: deny}
ingress:
  - {action: allow, protocol: tcp, ports: [7002], peers: [{cidr: 10.214.9.1}]}
)";
  auto c = policy::compile(policy::load_text(set, "t.yaml"), ctx, policy::CompileOptions{2});
  ASSERT_TRUE(c.ok());
  const auto& ir = *c.ir;
  // Allowed by both ends' policies: not marked.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("front", "127.0.0.1"), svc("cart", "127.0.0.1"), 7001)), "");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("front", "10.214.9.1"), svc("db", "10.214.9.1"), 7002)), "");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("front", "::1"), ext("::1"), 7003)), "");
  // Dropped by front's egress (port or address not allowed) or by cart's ingress (source not allowed).
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("front", "127.0.0.1"), svc("cart", "127.0.0.1"), 7002)), "denied");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("front", "127.0.0.1"), svc("db", "127.0.0.1"), 7002)), "denied");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("db", "10.214.9.1"), svc("cart", "10.214.9.1"), 7001)), "denied");
  // An uncatalogued process over loopback is still local (a loopback packet is never forwarded): cart's ingress
  // judges it on OUTPUT (a local sender's packet to a local port) and allows 127.0.0.1.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("batch", "127.0.0.1"), svc("cart", "127.0.0.1"), 7001)), "");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("batch", "127.0.0.2"), svc("cart", "127.0.0.1"), 7001)), "denied");
  // A server end seen only by address (the SYN never reached it) on loopback is local too: its ingress is judged.
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("batch", "127.0.0.2"), ext("127.0.0.1"), 7001)), "denied");
  EXPECT_EQ(policy::edge_verdict(ir, ctx, edge(svc("batch", "127.0.0.1"), ext("127.0.0.1"), 7001)), "");
}

class PolicyMarkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hs-marks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void set_current(int n) { std::ofstream(fs::path(dir_) / "current") << n << "\n"; }
  fs::path dir_;
};

TEST_F(PolicyMarkerTest, MarksFromTheGenerationInForce) {
  int context_builds = 0;
  cli::PolicyMarker marker(dir_.string(), [&] {
    context_builds++;
    return catalogue();
  });
  topology::TopologySnapshot s;
  s.edges = {edge(svc("web", "10.0.0.1"), ext("10.0.1.7"), 5432), edge(svc("cron", "10.0.0.1"), ext("1.1.1.1"), 80),
             edge(svc("web", "10.0.0.1"), ext("10.0.0.7"), 5432)};
  marker.mark(s);  // nothing applied yet
  EXPECT_EQ(marker.summary(), "no policy applied");
  for (const auto& e : s.edges) EXPECT_EQ(e.policy, "");

  ASSERT_TRUE(policy::store_ir(dir_.string(), 1, compiled(kPolicies)));
  set_current(1);
  marker.mark(s);
  EXPECT_EQ(marker.summary(), "policy generation 1 (3 policies, 1 in audit)");
  EXPECT_EQ(s.edges[0].policy, "denied");
  EXPECT_EQ(s.edges[1].policy, "would-deny");
  EXPECT_EQ(s.edges[2].policy, "");
  marker.mark(s);
  EXPECT_EQ(context_builds, 1) << "the catalogue is cached between refreshes";

  // A new generation that allows everything for web: marks follow it.
  ASSERT_TRUE(policy::store_ir(dir_.string(), 2, compiled(R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: web-out}
subject: {service: web}
egress:
  - {action: allow}
)")));
  set_current(2);
  marker.mark(s);
  EXPECT_EQ(marker.summary(), "policy generation 2 (1 policies, 0 in audit)");
  for (const auto& e : s.edges) EXPECT_EQ(e.policy, "");

  // Flushed (current 0): no marks. A missing or corrupt IR file says why instead of marking.
  set_current(0);
  s.edges[0].policy = "denied";
  marker.mark(s);
  EXPECT_EQ(s.edges[0].policy, "");
  set_current(7);
  marker.mark(s);
  EXPECT_NE(marker.summary().find("policy marks unavailable"), std::string::npos) << marker.summary();
  EXPECT_EQ(s.edges[0].policy, "");
}

}  // namespace
}  // namespace hostscope
