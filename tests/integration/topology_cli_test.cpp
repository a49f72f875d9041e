// The live topology end to end: a fresh `hostscope agent` on a simulated node (topology_scenario.h) watching a
// scripted scenario, then `hostscope topology` from that agent in every format.
//
//   node namespace (the agent's host)                      pod namespace
//   topo-web --loopback--> topo-cart (127.0.0.1)
//   topo-web ----veth 10.213.9.1 -> 10.213.9.2------------> topo-db
//   topo-web --> 10.96.0.10:80 --DNAT (node nat OUTPUT)---> topo-api (10.213.9.2)
//
// Every edge, count and byte is asserted exactly; the DNAT edge must carry the dialled and the actual address.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/topology_json.h"
#include "topology_scenario.h"

namespace hostscope::testing {
namespace {

using nlohmann::json;

constexpr int kLoopConns = 5, kLoopBytes = 1000;
constexpr int kPodConns = 4, kPodBytes = 3000;
constexpr int kNatConns = 3, kNatBytes = 7000;
const std::vector<std::string> kServices = {"topo-web", "topo-cart", "topo-db", "topo-api"};

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TopologyCli : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    node_ = std::make_unique<TopologyNode>(kServices, "networks:\n  test-net: [10.213.9.0/24]\n");
    HS_REQUIRE_SETUP(node_->error().empty(), node_->error());
    pod_ = std::make_unique<Netns>("pod");
    HS_REQUIRE_SETUP(pod_->ok(), "ip netns add (pod)");
    // The veth pair is created inside the node namespace with its peer end in the pod namespace: both ends
    // vanish with the namespaces, nothing is left on the host. 10.96.0.0/16 (the "ClusterIP" range) is routed
    // towards the pod so connect() reaches the nat OUTPUT hook, where the DNAT rule rewrites it.
    const std::string node = "ip netns exec " + node_->netns().name() + " ";
    const std::string pod = "ip netns exec " + pod_->name() + " ";
    auto r = sh(node + "ip link add hsn0 type veth peer name hsp0 netns " + pod_->name() + " && " + node +
                "ip addr add 10.213.9.1/24 dev hsn0 && " + node + "ip link set hsn0 up && " + pod +
                "ip addr add 10.213.9.2/24 dev hsp0 && " + pod + "ip link set hsp0 up && " + node +
                "ip route add 10.96.0.0/16 dev hsn0");
    HS_REQUIRE_SETUP(r.status == 0, "veth pair: " + r.out);
    // Created before the agent starts: the agent reads its local addresses (10.213.9.1) at start-up.
    HS_REQUIRE_SETUP(node_->start_agent(), "hostscope agent did not answer on " + node_->sock());
  }

  std::vector<std::string> in_pod(const std::string& service, std::vector<std::string> args) const {
    args.insert(args.begin(), node_->exe(service));
    return in_netns(*pod_, args);
  }

  // `hostscope topology -o <format>` from the agent; stdout only.
  CmdResult topology(const std::string& format) const {
    auto out = node_->dir() / ("topology." + format);
    auto r = sh(hostscope_bin() + " topology -o " + format + " --socket " + node_->sock() + " > " + out.string());
    r.out = r.status == 0 ? slurp(out) : r.out;
    return r;
  }

  std::unique_ptr<TopologyNode> node_;
  std::unique_ptr<Netns> pod_;
};

// The scenario's edges from a JSON snapshot, by "client -> server:port"; other processes' edges are left out.
std::map<std::string, json> scenario_edges(const json& snap) {
  std::set<std::string> ours(kServices.begin(), kServices.end());
  std::map<std::string, json> out;
  for (const auto& e : snap["edges"]) {
    auto name = [](const json& end) {
      return end["kind"] == "service" ? end["service"].get<std::string>()
             : end["kind"] == "network" ? "network:" + end["service"].get<std::string>()
                                        : "external:" + end["address"].get<std::string>();
    };
    bool mine = (e["client"]["kind"] == "service" && ours.count(e["client"]["service"])) ||
                (e["server"]["kind"] == "service" && ours.count(e["server"]["service"]));
    if (mine) out[name(e["client"]) + " -> " + name(e["server"]) + ":" + std::to_string(e["port"].get<int>())] = e;
  }
  return out;
}

TEST_F(TopologyCli, ScenarioEdgesCountsBytesAndDnatInEveryFormat) {
  // Servers: each serves a known number of connections, echoing the client's byte count.
  Child cart(node_->run("topo-cart", {"server", "127.0.0.1", "0", std::to_string(kLoopBytes), std::to_string(kLoopConns)}));
  Child db(in_pod("topo-db", {"server", "10.213.9.2", "0", std::to_string(kPodBytes), std::to_string(kPodConns)}));
  Child api(in_pod("topo-api", {"server", "10.213.9.2", "0", std::to_string(kNatBytes), std::to_string(kNatConns)}));
  int cart_port = ready_port(cart), db_port = ready_port(db), api_port = ready_port(api);
  ASSERT_GT(cart_port, 0);
  ASSERT_GT(db_port, 0);
  ASSERT_GT(api_port, 0);
  auto rule = sh("ip netns exec " + node_->netns().name() +
                 " iptables -w -t nat -A OUTPUT -d 10.96.0.10 -p tcp --dport 80 -j DNAT --to-destination 10.213.9.2:" +
                 std::to_string(api_port));
  HS_REQUIRE_SETUP(rule.status == 0, "iptables DNAT rule in the node namespace: " + rule.out);

  // Clients: one topo-web process per server, its connections opened at once (so the first ones reach the
  // agent before any accept: the fresh-agent case where the server is not known yet).
  for (auto [addr, port, bytes, n] : {std::tuple{std::string("127.0.0.1"), cart_port, kLoopBytes, kLoopConns},
                                      std::tuple{std::string("10.213.9.2"), db_port, kPodBytes, kPodConns},
                                      std::tuple{std::string("10.96.0.10"), 80, kNatBytes, kNatConns}}) {
    Child client(node_->run("topo-web", {"client", addr, std::to_string(port), std::to_string(bytes),
                                         "concurrent=" + std::to_string(n)}));
    EXPECT_EQ(client.wait(), 0) << "client to " << addr << ":" << port;
  }
  EXPECT_EQ(cart.wait(), 0);
  EXPECT_EQ(db.wait(), 0);
  EXPECT_EQ(api.wait(), 0);

  const std::string cart_key = "topo-web -> topo-cart:" + std::to_string(cart_port);
  const std::string db_key = "topo-web -> topo-db:" + std::to_string(db_port);
  const std::string nat_key = "topo-web -> external:10.96.0.10:80";
  // The DNAT backend's socket sees the connection as 10.213.9.1:<port> -> 10.213.9.2:<api_port>, a different
  // tuple from the client's (-> 10.96.0.10:80), and the peer index cannot pair them either: its side is an edge
  // of its own, from the node's address (in the named network test-net) to topo-api. See docs/topology.md, 3.
  const std::string backend_key = "network:test-net -> topo-api:" + std::to_string(api_port);

  // Wait until every close is in and the conntrack answer was applied (asynchronous; not a timing assertion).
  json snap;
  std::map<std::string, json> edges;
  bool complete = eventually(
      [&] {
        nudge_agent();
        auto r = topology("json");
        if (r.status != 0) return false;
        snap = json::parse(r.out, nullptr, false);
        if (snap.is_discarded()) return false;
        edges = scenario_edges(snap);
        auto closed = [&](const std::string& k, int n) { return edges.count(k) && edges[k]["closed"] == n; };
        return closed(cart_key, kLoopConns) && closed(db_key, kPodConns) && closed(nat_key, kNatConns) &&
               closed(backend_key, kNatConns) && edges[nat_key].contains("actual");
      },
      std::chrono::seconds(30));
  std::string seen;
  for (auto& [k, e] : edges) seen += "  " + k + ": " + e.dump() + "\n";
  ASSERT_TRUE(complete) << "edges so far:\n" << seen;

  // Exactly these edges: nothing split off as external:127.0.0.1 or network:test-net by a first connection
  // whose server was not known yet, and no edge keyed by an ephemeral port.
  std::set<std::string> keys;
  for (auto& [k, _] : edges) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{cart_key, db_key, nat_key, backend_key})) << seen;

  auto check = [&](const std::string& key, int conns, int bytes, const std::string& server_addr) {
    SCOPED_TRACE(key);
    const json& e = edges[key];
    EXPECT_EQ(e["protocol"], "tcp");
    EXPECT_EQ(e["connections"], conns);
    EXPECT_EQ(e["closed"], conns);
    EXPECT_EQ(e["active"], 0);
    EXPECT_EQ(e["failed"], json::object());
    EXPECT_EQ(e["resets"], 0);
    EXPECT_EQ(e["bytes_sent"], uint64_t(conns) * uint64_t(bytes));
    EXPECT_EQ(e["bytes_received"], uint64_t(conns) * uint64_t(bytes));
    EXPECT_EQ(e["server"]["address"], server_addr);
  };
  check(cart_key, kLoopConns, kLoopBytes, "127.0.0.1");
  check(db_key, kPodConns, kPodBytes, "10.213.9.2");
  check(nat_key, kNatConns, kNatBytes, "10.96.0.10");
  check(backend_key, kNatConns, kNatBytes, "10.213.9.2");
  // Client-side facts only the active socket knows: one connect-latency sample per connection.
  EXPECT_EQ(edges[cart_key]["latency_us"]["samples"], kLoopConns);
  EXPECT_EQ(edges[db_key]["latency_us"]["samples"], kPodConns);
  EXPECT_EQ(edges[nat_key]["latency_us"]["samples"], kNatConns);
  EXPECT_EQ(edges[db_key]["client"]["address"], "10.213.9.1");
  EXPECT_EQ(edges[backend_key]["client"]["address"], "10.213.9.1");
  // DNAT: the address dialled and the backend conntrack reported, both.
  EXPECT_EQ(edges[nat_key]["dialed"], "10.96.0.10:80");
  EXPECT_EQ(edges[nat_key]["actual"], json::array({"10.213.9.2:" + std::to_string(api_port)}));
  EXPECT_FALSE(edges[cart_key].contains("dialed"));
  EXPECT_FALSE(edges[db_key].contains("dialed"));
  EXPECT_GE(snap["counters"]["nat_translated"].get<uint64_t>(), 1u);

  // JSON: the documented schema, strictly parsed, and a round trip that changes nothing.
  EXPECT_EQ(snap["schema"], "hostscope.topology/v1");
  auto text = topology("json");
  ASSERT_EQ(text.status, 0) << text.out;
  auto parsed = topology::parse_json(text.out);
  ASSERT_TRUE(parsed) << parsed.error().str();
  auto again = topology::parse_json(topology::render_json(*parsed));
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(*again, *parsed);
  EXPECT_EQ(json::parse(topology::render_json(*parsed)), json::parse(text.out));
  size_t parsed_scenario_edges = 0;
  for (const auto& e : parsed->edges)
    if (std::set<std::string>(kServices.begin(), kServices.end()).count(e.client.service) ||
        std::set<std::string>(kServices.begin(), kServices.end()).count(e.server.service))
      ++parsed_scenario_edges;
  EXPECT_EQ(parsed_scenario_edges, 4u);

  // dot: Graphviz renders it.
  auto dot = topology("dot");
  ASSERT_EQ(dot.status, 0) << dot.out;
  EXPECT_EQ(dot.out.rfind("digraph", 0), 0u) << dot.out.substr(0, 200);
  HS_REQUIRE_SETUP(sh("command -v dot").status == 0, "graphviz (dot) not installed");
  auto svg = sh("dot -Tsvg " + (node_->dir() / "topology.dot").string() + " -o " + (node_->dir() / "t.svg").string());
  EXPECT_EQ(svg.status, 0) << svg.out;
  std::string svg_text = slurp(node_->dir() / "t.svg");
  for (size_t p; (p = svg_text.find("&#45;")) != std::string::npos;) svg_text.replace(p, 5, "-");  // Graphviz escapes '-'
  EXPECT_NE(svg_text.find("<svg"), std::string::npos);
  for (const auto& s : kServices) EXPECT_NE(svg_text.find(s), std::string::npos) << s << " missing from the SVG";

  // mermaid, tree, table: every service by name.
  for (const std::string fmt : {"mermaid", "tree", "table"}) {
    SCOPED_TRACE(fmt);
    auto r = topology(fmt);
    ASSERT_EQ(r.status, 0) << r.out;
    for (const auto& s : kServices) EXPECT_NE(r.out.find(s), std::string::npos) << s << " missing:\n" << r.out;
    EXPECT_NE(r.out.find("10.96.0.10"), std::string::npos) << "the DNAT destination is shown";
  }
  auto mermaid = topology("mermaid");
  EXPECT_EQ(mermaid.out.rfind("flowchart LR", 0), 0u) << mermaid.out.substr(0, 200);

  EXPECT_EQ(node_->stop_agent(), 0);
}

}  // namespace
}  // namespace hostscope::testing
