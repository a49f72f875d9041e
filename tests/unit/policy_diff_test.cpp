// `policy diff`: the semantic diff of two policy sets on their rules' atoms (issue 19).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "policy/compiler.h"
#include "policy/diff.h"
#include "policy/impact.h"
#include "policy/loader.h"

namespace hostscope::policy {
namespace {

Context catalogue() {
  Context c;
  c.services.push_back({"web", {"/web"}, {}, {}, "", "", "", ""});
  c.services.push_back({"db", {}, {"10.1.0.3", "fd00::3"}, {}, "", "", "", ""});
  return c;
}

// One compiled side; kept whole because the diff refers into the set and its analysis.
struct Side {
  LoadResult loaded;
  Analysis analysis;
  CompileResult compiled;
  explicit Side(const std::string& yaml, const Context& ctx = catalogue())
      : loaded(load_text(yaml, "web.yaml")), analysis(analyze(loaded.set, ctx)), compiled(compile(loaded, ctx)) {
    std::string diags;
    for (const auto& d : compiled.diagnostics) diags += d.str() + "\n";
    EXPECT_TRUE(compiled.ok()) << diags;
  }
  DiffSide side() const { return {&loaded.set, &analysis, &*compiled.ir}; }
};

std::string web(const std::string& mode, const std::string& port) {
  return "apiVersion: hostscope.io/v1\n"
         "kind: NetworkPolicy\n"
         "metadata: {name: web}\n"
         "subject: {service: web}\n"
         "mode: " + mode + "\n"
         "default: {egress: deny}\n"
         "egress:\n"
         "  - action: allow\n"
         "    peers: [{service: db}]\n"
         "    ports: [" + port + "]\n";
}

const VerdictChange* find(const DiffResult& d, const std::string& peer_address, const std::string& proto, uint16_t port) {
  for (const auto& c : d.changes)
    if (c.peer_address == peer_address && to_string(c.protocol) == proto && c.ports.contains(port)) return &c;
  return nullptr;
}

TEST(PolicyDiff, IdenticalSetsHaveNoVerdictChange) {
  Side a(web("enforce", "5432")), b(web("enforce", "5432"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  EXPECT_TRUE(d.changes.empty()) << diff_text(d);
  EXPECT_GT(d.classes, 0u);
  EXPECT_FALSE(d.newly_denied());
}

// Moving the allowed port denies the old one and allows the new one, for each family of the peer, and names the rule
// that decides on each side with its file:line.
TEST(PolicyDiff, MovedPortIsNewlyDeniedAndTheNewOneAllowed) {
  Side a(web("enforce", "5432")), b(web("enforce", "5433"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  ASSERT_TRUE(d.newly_denied()) << diff_text(d);
  for (const char* addr : {"10.1.0.3", "fd00::3"}) {
    const auto* old_port = find(d, addr, "tcp", 5432);
    ASSERT_NE(old_port, nullptr) << addr << "\n" << diff_text(d);
    EXPECT_EQ(old_port->before, Verdict::Allow);
    EXPECT_EQ(old_port->after, Verdict::Deny);
    EXPECT_EQ(old_port->ports.first, 5432);
    EXPECT_EQ(old_port->ports.last, 5432);
    EXPECT_EQ(old_port->subject, "web");
    EXPECT_EQ(old_port->direction, Direction::Egress);
    EXPECT_EQ(old_port->endpoint, "cgroup /web");
    EXPECT_NE(old_port->peer.find("service db"), std::string::npos) << old_port->peer;
    EXPECT_NE(old_port->decided_before.find("egress rule 1 (allow) at web.yaml:8:"), std::string::npos) << old_port->decided_before;
    EXPECT_NE(old_port->decided_after.find("egress default deny at web.yaml:6:"), std::string::npos) << old_port->decided_after;
    const auto* new_port = find(d, addr, "tcp", 5433);
    ASSERT_NE(new_port, nullptr) << addr << "\n" << diff_text(d);
    EXPECT_EQ(new_port->before, Verdict::Deny);
    EXPECT_EQ(new_port->after, Verdict::Allow);
    EXPECT_FALSE(new_port->newly_denied());
  }
  // Nothing else changed: other ports, other peers and UDP keep their verdicts.
  EXPECT_EQ(find(d, "10.1.0.3", "tcp", 5434), nullptr);
  EXPECT_EQ(find(d, "192.0.2.1", "tcp", 5432), nullptr);
  EXPECT_EQ(d.changes.size(), 8u) << diff_text(d);  // tcp and udp (the rule names no protocol), two families
  EXPECT_TRUE(d.changes.front().newly_denied());  // newly denied first
}

// Audit to enforce: what was only counted as a would-deny is now dropped, across whole port ranges.
TEST(PolicyDiff, AuditToEnforceTurnsWouldDenyIntoDeny) {
  Side a(web("audit", "5432")), b(web("enforce", "5432"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  const auto* other = find(d, "192.0.2.1", "udp", 1000);
  ASSERT_NE(other, nullptr) << diff_text(d);
  EXPECT_EQ(other->before, Verdict::AuditWouldDeny);
  EXPECT_EQ(other->after, Verdict::Deny);
  EXPECT_TRUE(other->newly_denied());
  EXPECT_EQ(other->peer, "any other IPv4 address");
  EXPECT_EQ(find(d, "192.0.2.1", "udp", 53), nullptr) << "DNS is failsafe: allowed on both sides";
  EXPECT_EQ(find(d, "192.0.2.1", "tcp", 6443), nullptr) << "the API server port is failsafe: allowed on both sides";
  EXPECT_EQ(find(d, "10.1.0.3", "tcp", 5432), nullptr) << "allowed on both sides";
  // Adjacent port atoms with the same change are one line: from after the failsafe port 179 to before 2379.
  const auto* low = find(d, "10.1.0.3", "tcp", 1000);
  ASSERT_NE(low, nullptr) << diff_text(d);
  EXPECT_EQ(low->ports.first, 180);
  EXPECT_EQ(low->ports.last, 2378);
}

TEST(PolicyDiff, TextAndJsonNameTheChange) {
  Side a(web("enforce", "5432")), b(web("enforce", "5433"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  auto text = diff_text(d);
  EXPECT_NE(text.find("NEWLY DENIED web egress: cgroup /web -> service db (10.1.0.3/32) tcp/5432: allow -> deny"), std::string::npos)
      << text;
  EXPECT_NE(text.find("8 verdict change(s), 4 newly denied"), std::string::npos) << text;
  auto j = diff_json(d);
  EXPECT_TRUE(j["newly_denied"].get<bool>());
  EXPECT_EQ(j["changes"].size(), 8u);
  EXPECT_EQ(j["changes"][0]["ports"], "5432");
}

// `diff --impact`: the observed edges behind each class. Moving the allowed port from 5432 to 5433 newly denies
// web's 40 observed connections to db on 5432 (listed under that class, with its count), lets the 3 refused ones on
// 5433 through (listed under the 5433 class), and leaves the edge to an outside address (denied on both sides) out.
topology::EdgeSnapshot observed_edge(const std::string& server, const std::string& server_addr, uint16_t port, uint64_t conns) {
  topology::EdgeSnapshot e;
  e.client = {topology::NodeKind::Service, "web", "", "", "10.0.0.1"};
  e.server = {server == "db" ? topology::NodeKind::Service : topology::NodeKind::External, server, "", "", server_addr};
  e.port = port;
  e.connections = conns;
  e.first_seen_ns = 1000;
  e.last_seen_ns = 2000;
  return e;
}

TEST(PolicyDiff, ImpactListsTheObservedEdgesBehindEachClass) {
  Side a(web("enforce", "5432")), b(web("enforce", "5433"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  topology::TopologySnapshot seen;
  seen.edges.push_back(observed_edge("db", "10.1.0.3", 5432, 40));
  seen.edges.push_back(observed_edge("db", "10.1.0.3", 5433, 3));
  seen.edges.push_back(observed_edge("external", "192.0.2.9", 443, 7));
  auto r = observed_impact({&*a.compiled.ir, &a.loaded.set, "A"}, {&*b.compiled.ir, &b.loaded.set, "B"}, catalogue(), seen);
  ASSERT_EQ(r.changes.size(), 2u) << impact_text(r);
  auto impact = attach_impact(d, r);
  ASSERT_EQ(impact.per_change.size(), d.changes.size());
  EXPECT_TRUE(impact.outside.empty());
  size_t listed = 0;
  for (size_t k = 0; k < d.changes.size(); ++k) {
    const auto& c = d.changes[k];
    for (size_t i : impact.per_change[k]) {
      listed++;
      const auto& e = r.changes[i].edge;
      EXPECT_EQ(c.peer_address, "10.1.0.3") << diff_text(d, &impact);
      EXPECT_TRUE(c.ports.contains(e.port));
      EXPECT_EQ(c.newly_denied(), e.port == 5432);
    }
  }
  EXPECT_EQ(listed, 2u) << diff_text(d, &impact);
  auto text = diff_text(d, &impact);
  EXPECT_NE(text.find("NEWLY DENIED web egress: cgroup /web -> service db (10.1.0.3/32) tcp/5432: allow -> deny\n"
                      "    before: policy web: egress rule 1 (allow) at web.yaml:8:5\n"
                      "    after:  policy web: egress default deny at web.yaml:6:10\n"
                      "    observed: service:/web (10.0.0.1) -> service:/db (10.1.0.3) port 5432/tcp, 40 connection(s)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("observed traffic: 3 edge(s) judged; 2 change verdict (1 newly denied, 40 connection(s)), behind 2 of the 8 class(es)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("192.0.2.9"), std::string::npos) << "denied on both sides: not behind any change\n" << text;
  auto j = diff_json(d, &impact);
  EXPECT_EQ(j["changes"][0]["observed"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["changes"][0]["observed"][0]["connections"], 40);
  EXPECT_EQ(j["impact"]["edges"], 3);
  EXPECT_EQ(j["impact"]["in_no_class"].size(), 0u);
  EXPECT_FALSE(diff_json(d).contains("impact")) << "without --impact the JSON is unchanged";
}

// An edge whose verdict changes but that no listed class covers (a class the bound cut off) is listed apart, never
// dropped.
TEST(PolicyDiff, ImpactEdgeOutsideEveryClassIsListedApart) {
  Side a(web("enforce", "5432")), b(web("enforce", "5433"));
  auto d = semantic_diff(a.side(), b.side(), catalogue());
  topology::TopologySnapshot seen;
  seen.edges.push_back(observed_edge("db", "10.1.0.3", 5432, 40));
  auto r = observed_impact({&*a.compiled.ir, &a.loaded.set, "A"}, {&*b.compiled.ir, &b.loaded.set, "B"}, catalogue(), seen);
  d.changes.erase(d.changes.begin());  // as if truncated before the 5432 class
  auto impact = attach_impact(d, r);
  ASSERT_EQ(impact.outside.size(), 1u) << diff_text(d, &impact);
  EXPECT_NE(diff_text(d, &impact).find("  in no listed class: service:/web (10.0.0.1) -> service:/db (10.1.0.3) port 5432/tcp"),
            std::string::npos)
      << diff_text(d, &impact);
}

// Local processes as peers (issue 19): a `service:` peer that is only local processes (cgroups, listening ports, no
// routed address) is a class of its own. Before, the diff cut the peer space by addresses only and listed nothing.
Context local_catalogue() {
  Context c;
  c.services.push_back({"web", {"/web"}, {}, {}, "", "", "", ""});
  c.services.push_back({"cache", {"/cache"}, {}, {6379}, "", "", "", ""});
  c.services.push_back({"api", {"/api"}, {}, {8080}, "", "", "", ""});
  return c;
}

// A side compiled against the catalogue with local services.
struct LocalSide : Side {
  explicit LocalSide(const std::string& yaml) : Side(yaml, local_catalogue()) {}
};

std::string policy(const std::string& name, const std::string& subject, const std::string& dir, const std::string& peer,
                   const std::string& port) {
  return "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + "}\nsubject: {service: " +
         subject + "}\ndefault: {" + dir + ": deny}\n" + dir + ":\n  - action: allow\n    peers: [{service: " + peer +
         "}]\n    ports: [" + port + "]\n";
}

TEST(PolicyDiff, LocalServicePeerOfEgressIsAClass) {
  LocalSide a(policy("web", "web", "egress", "cache", "6379")), b(policy("web", "web", "egress", "api", "8080"));
  auto d = semantic_diff(a.side(), b.side(), local_catalogue());
  const VerdictChange* lost = nullptr;
  for (const auto& c : d.changes)
    if (c.direction == Direction::Egress && c.peer_local && c.protocol == Protocol::Tcp && c.ports.contains(6379)) lost = &c;
  ASSERT_NE(lost, nullptr) << diff_text(d);
  EXPECT_EQ(lost->before, Verdict::Allow);
  EXPECT_EQ(lost->after, Verdict::Deny);
  EXPECT_EQ(lost->endpoint, "cgroup /web");
  EXPECT_EQ(lost->peer, "local processes") << diff_text(d);
  EXPECT_NE(diff_text(d).find("NEWLY DENIED web egress: cgroup /web -> local processes tcp/6379: allow -> deny"), std::string::npos)
      << diff_text(d);
}

TEST(PolicyDiff, LocalServicePeerOfIngressIsAClassPerCgroup) {
  LocalSide a(policy("api", "api", "ingress", "web", "8080")), b(policy("api", "api", "ingress", "cache", "8080"));
  auto d = semantic_diff(a.side(), b.side(), local_catalogue());
  const VerdictChange *from_web = nullptr, *from_cache = nullptr;
  for (const auto& c : d.changes) {
    if (c.direction != Direction::Ingress || !c.peer_local || c.protocol != Protocol::Tcp || !c.ports.contains(8080)) continue;
    if (c.peer_cgroup == "/web") from_web = &c;
    if (c.peer_cgroup == "/cache") from_cache = &c;
  }
  ASSERT_NE(from_web, nullptr) << diff_text(d);
  EXPECT_EQ(from_web->before, Verdict::Allow);
  EXPECT_EQ(from_web->after, Verdict::Deny);
  EXPECT_EQ(from_web->peer, "local processes in cgroup /web (service web)");
  ASSERT_NE(from_cache, nullptr) << diff_text(d);
  EXPECT_EQ(from_cache->before, Verdict::Deny);
  EXPECT_EQ(from_cache->after, Verdict::Allow);
  auto j = diff_json(d);
  bool named = false;
  for (const auto& c : j["changes"])
    named |= c.value("peer_cgroup", "") == "/web" && c.value("peer_local", false);
  EXPECT_TRUE(named) << j.dump(2);
}

}  // namespace
}  // namespace hostscope::policy
