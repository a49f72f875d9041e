// `policy plan --impact`: observed edges replayed through the generation in force and the planned one (issue 19).
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "common/time_arg.h"
#include "policy/compiler.h"
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

struct Compiled {
  LoadResult loaded;
  CompileResult compiled;
  explicit Compiled(const std::string& yaml) : loaded(load_text(yaml, "web.yaml")), compiled(compile(loaded, catalogue())) {
    EXPECT_TRUE(compiled.ok());
  }
  ImpactSide side(bool with_set = true) const { return {&*compiled.ir, with_set ? &loaded.set : nullptr, "test"}; }
};

topology::EdgeEnd service(const std::string& name, const std::string& addr) {
  return {topology::NodeKind::Service, name, "", "", addr};
}
topology::EdgeEnd external(const std::string& addr) { return {topology::NodeKind::External, "external", "", "", addr}; }

topology::EdgeSnapshot edge(topology::EdgeEnd c, topology::EdgeEnd s, uint16_t port, uint64_t conns, uint64_t last_seen_ns = 2000) {
  topology::EdgeSnapshot e;
  e.client = std::move(c);
  e.server = std::move(s);
  e.port = port;
  e.connections = conns;
  e.first_seen_ns = 1000;
  e.last_seen_ns = last_seen_ns;
  return e;
}

// The known workload: web talks to db on 5432 (IPv4 and IPv6) and to an outside address on 443.
topology::TopologySnapshot observed() {
  topology::TopologySnapshot s;
  s.edges.push_back(edge(service("web", "10.0.0.1"), service("db", "10.1.0.3"), 5432, 40));
  s.edges.push_back(edge(service("web", "fd00::1"), service("db", "fd00::3"), 5432, 5));
  s.edges.push_back(edge(service("web", "10.0.0.1"), external("192.0.2.9"), 443, 7));
  return s;
}

TEST(PolicyImpact, NewlyDeniedEdgeIsNamedWithItsCountAndRule) {
  Compiled next(web("enforce", "5432"));
  auto r = observed_impact({nullptr, nullptr, "no policy applied"}, next.side(), catalogue(), observed());
  EXPECT_EQ(r.edges, 3u);
  ASSERT_EQ(r.changes.size(), 1u) << impact_text(r);
  const auto& c = r.changes[0];
  EXPECT_TRUE(c.newly_denied());
  EXPECT_EQ(c.edge.server.address, "192.0.2.9");
  EXPECT_EQ(c.edge.connections, 7u);
  EXPECT_EQ(c.before, Verdict::Allow);
  EXPECT_EQ(c.after, Verdict::Deny);
  EXPECT_NE(c.decided_after.find("policy web: egress default deny at web.yaml:6:"), std::string::npos) << c.decided_after;
  EXPECT_TRUE(r.newly_denied());
  EXPECT_EQ(r.newly_denied_connections, 7u);
  auto text = impact_text(r);
  EXPECT_NE(text.find("! service:/web (10.0.0.1) -> external:192.0.2.9 port 443/tcp: allowed -> denied"), std::string::npos) << text;
  EXPECT_NE(text.find("observed 7 connection(s)"), std::string::npos) << text;
  auto j = impact_json(r);
  EXPECT_EQ(j["changes"][0]["connections"], 7);
  EXPECT_EQ(j["changes"][0]["after"], "deny");
  EXPECT_EQ(j["newly_denied"], true);
}

TEST(PolicyImpact, AuditModeIsWouldDenyNotNewlyDenied) {
  Compiled next(web("audit", "5432"));
  auto r = observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), observed());
  ASSERT_EQ(r.changes.size(), 1u) << impact_text(r);
  EXPECT_EQ(r.changes[0].after, Verdict::AuditWouldDeny);
  EXPECT_FALSE(r.newly_denied());
}

// Moving the allowed port: both db edges become denied; the side read from an applied IR (no policy files) names its
// rule by the position the IR keeps, the planned side through its policy set.
TEST(PolicyImpact, GenerationInForceAgainstThePlannedOne) {
  Compiled current(web("enforce", "5432")), next(web("enforce", "5433"));
  auto r = observed_impact(current.side(false), next.side(), catalogue(), observed());
  ASSERT_EQ(r.changes.size(), 2u) << impact_text(r);
  EXPECT_EQ(r.changes[0].edge.connections, 40u);  // most connections first
  for (const auto& c : r.changes) {
    EXPECT_TRUE(c.newly_denied());
    EXPECT_EQ(c.decided_before, "policy web: egress rule 1 (allow) at web.yaml:8:5");  // from the IR alone
    EXPECT_NE(c.decided_after.find("at web.yaml:"), std::string::npos) << c.decided_after;
  }
  EXPECT_EQ(r.newly_denied_connections, 45u);
  // Identical generations: nothing changes.
  EXPECT_TRUE(observed_impact(current.side(false), current.side(), catalogue(), observed()).changes.empty());
}

TEST(PolicyImpact, SinceLeavesOutOlderEdgesAndCountsThem) {
  Compiled next(web("enforce", "5432"));
  auto obs = observed();
  obs.edges[2].last_seen_ns = 500;  // the 443 edge is older than the window
  auto r = observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), obs, 1000);
  EXPECT_EQ(r.outside_window, 1u);
  EXPECT_EQ(r.edges, 2u);
  EXPECT_TRUE(r.changes.empty()) << impact_text(r);
}

// A ClusterIP edge is judged where the filter table sees it: at the backends conntrack reported.
TEST(PolicyImpact, DnatEdgesAreJudgedAtTheirBackends) {
  Compiled next(web("enforce", "5432"));
  topology::TopologySnapshot s;
  auto e = edge(service("web", "10.0.0.1"), external("10.96.0.20"), 80, 3);
  s.edges.push_back(e);
  EXPECT_EQ(observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), s).changes.size(), 1u);
  s.edges[0].actual = {"10.1.0.3:5432"};
  auto r = observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), s);
  EXPECT_TRUE(r.changes.empty()) << impact_text(r);
  s.edges[0].actual = {"10.1.0.3:5432", "10.1.0.9:5432"};  // one backend outside db: denied
  EXPECT_EQ(observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), s).changes.size(), 1u);
}

TEST(PolicyImpact, UnjudgeableEdgesAreCounted) {
  Compiled next(web("enforce", "5432"));
  topology::TopologySnapshot s;
  s.edges.push_back(edge(service("ghost", ""), external(""), 80, 1));
  auto r = observed_impact({nullptr, nullptr, "none"}, next.side(), catalogue(), s);
  EXPECT_EQ(r.unjudged, 1u);
  EXPECT_EQ(r.edges, 0u);
}

TEST(PolicyImpact, Durations) {
  EXPECT_EQ(parse_duration_ns("30s"), 30'000'000'000ull);
  EXPECT_EQ(parse_duration_ns("90m"), 90ull * 60'000'000'000ull);
  EXPECT_EQ(parse_duration_ns("24h"), 24ull * 3'600'000'000'000ull);
  EXPECT_EQ(parse_duration_ns("7d"), 7ull * 86'400'000'000'000ull);
  for (const char* bad : {"", "h", "0h", "-1h", "1.5h", "24", "24x", "99999999999999999999d"}) EXPECT_FALSE(parse_duration_ns(bad)) << bad;
}

}  // namespace
}  // namespace hostscope::policy
