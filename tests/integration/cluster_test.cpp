// `hostscope topology --cluster` against a real Prometheus (/usr/bin/prometheus, Debian's 2.42).
//
//   node namespace (node-a: the real agent)                         pod namespace
//   cl-web (10.213.7.1) --> 10.96.0.20:80 --DNAT (nat OUTPUT)--> cl-backend (10.213.7.2)
//
// To node-a's agent the client's connections go to the address 10.96.0.20 (the DNAT backend's socket sees another
// tuple, so nothing pairs them): `cl-web -> 10.96.0.20:80`, the client side of a cross-node call. A fixture HTTP
// server plays node-b, the node that owns 10.96.0.20: its endpoint info names it `shop/cl-api`, and its server-side
// series counts the same connections from 10.213.7.1 (cl-web's address, named by node-a's endpoint info). Prometheus
// scrapes both every second; the cluster view must show ONE edge cl-web -> shop/cl-api:80 named on both ends,
// counted once with the workload's connection count, observed by both nodes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <sched.h>

#include <fstream>
#include <regex>
#include <nlohmann/json.hpp>
#include <thread>

#include "topology_scenario.h"

namespace hostscope::testing {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kConns = 6;
constexpr int kBytes = 2000;
constexpr int kAgentMetricsPort = 9477, kFixturePort = 9478, kPromPort = 9090;  // inside the test's namespace
const std::string kRemote = "10.96.0.20";  // owned by the fixture node-b
const std::string kWebAddr = "10.213.7.1";

std::string fixture_exposition() {
  return "# TYPE hostscope_endpoint_info gauge\n"
         "hostscope_endpoint_info{address=\"" + kRemote + "\",service=\"cl-api\",namespace=\"shop\","
         "workload=\"cl-api\",pod=\"cl-api-0\",node=\"node-b\"} 1\n"
         "# TYPE hostscope_connections_opened_total counter\n"
         "hostscope_connections_opened_total{src_service=\"" + kWebAddr + "\",src_namespace=\"\","
         "dst_service=\"cl-api\",dst_namespace=\"shop\",dst_port=\"80\",node=\"node-b\"} " + std::to_string(kConns) + "\n";
}

class ClusterView : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    HS_REQUIRE_SETUP(fs::exists("/usr/bin/prometheus"), "/usr/bin/prometheus (apt install prometheus)");
    node_ = std::make_unique<TopologyNode>(
        std::vector<std::string>{"cl-web", "cl-backend"},
        "node_name: node-a\nmetrics:\n  listen: 127.0.0.1:" + std::to_string(kAgentMetricsPort) + "\n");
    HS_REQUIRE_SETUP(node_->error().empty(), node_->error());
    pod_ = std::make_unique<Netns>("clpod");
    HS_REQUIRE_SETUP(pod_->ok(), "ip netns add (pod)");
    const std::string node = "ip netns exec " + node_->netns().name() + " ";
    const std::string pod = "ip netns exec " + pod_->name() + " ";
    auto r = sh(node + "ip link add hsc0 type veth peer name hsc1 netns " + pod_->name() + " && " + node +
                "ip addr add " + kWebAddr + "/24 dev hsc0 && " + node + "ip link set hsc0 up && " + pod +
                "ip addr add 10.213.7.2/24 dev hsc1 && " + pod + "ip link set hsc1 up && " + node +
                "ip route add 10.96.0.0/16 dev hsc0");
    HS_REQUIRE_SETUP(r.status == 0, "veth pair: " + r.out);
    HS_REQUIRE_SETUP(node_->start_agent(), "hostscope agent did not answer on " + node_->sock());

    // node-b: the fixture exposition, served from inside the node namespace (the thread enters it; the
    // listening socket is made there).
    fixture_.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(fixture_exposition(), "text/plain; version=0.0.4");
    });
    const std::string ns_path = "/run/netns/" + node_->netns().name();
    fixture_thread_ = std::thread([this, ns_path] {
      int fd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) return;
      close(fd);
      fixture_.listen("127.0.0.1", kFixturePort);
    });
    HS_REQUIRE_SETUP(eventually([&] { return fixture_.is_running(); }), "fixture node-b server");

    // Prometheus in the node namespace, scraping both every second, with its TSDB in a temp dir.
    std::ofstream(node_->dir() / "prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
        << "  - job_name: hostscope\n    honor_labels: true\n    static_configs:\n"
        << "      - targets: ['127.0.0.1:" << kAgentMetricsPort << "', '127.0.0.1:" << kFixturePort << "']\n";
    prom_ = std::make_unique<Child>(std::vector<std::string>{
        "sh", "-c",
        "exec nsenter --net=" + ns_path + " /usr/bin/prometheus --config.file=" + (node_->dir() / "prometheus.yml").string() +
            " --storage.tsdb.path=" + (node_->dir() / "tsdb").string() + " --web.listen-address=127.0.0.1:" +
            std::to_string(kPromPort) + " > " + (node_->dir() / "prometheus.log").string() + " 2>&1"});
    HS_REQUIRE_SETUP(eventually([&] { return in_node("curl -sf " + prom_url() + "/-/ready").status == 0; },
                                std::chrono::seconds(60)),
                     "prometheus did not become ready: " + in_node("cat " + (node_->dir() / "prometheus.log").string()).out);
  }

  void TearDown() override {
    if (prom_) {
      kill(prom_->pid(), SIGTERM);
      prom_->wait();
      prom_.reset();
    }
    fixture_.stop();
    if (fixture_thread_.joinable()) fixture_thread_.join();
    node_.reset();  // stops the agent, removes the temp dir (TSDB included) and the node namespace
    pod_.reset();
  }

  std::string prom_url() const { return "http://127.0.0.1:" + std::to_string(kPromPort); }
  CmdResult in_node(const std::string& cmd) const {
    return sh("nsenter --net=/run/netns/" + node_->netns().name() + " " + cmd);
  }
  // `hostscope topology --cluster ... -o json`, stdout only (stderr to a file).
  CmdResult cluster_json(const std::string& extra = "") const {
    auto out = node_->dir() / "cluster.json";
    auto r = in_node(hostscope_bin() + " topology --cluster --prometheus " + prom_url() + " -o json " + extra + " > " +
                     out.string());
    std::ifstream in(out);
    std::stringstream ss;
    ss << in.rdbuf();
    if (r.status == 0) r.out = ss.str();
    return r;
  }

  std::unique_ptr<TopologyNode> node_;
  std::unique_ptr<Netns> pod_;
  httplib::Server fixture_;
  std::thread fixture_thread_;
  std::unique_ptr<Child> prom_;
};

TEST_F(ClusterView, CrossNodeConnectionsAreOneEdgeNamedOnBothEndsAndCountedOnce) {
  Child backend(in_netns(*pod_, {node_->exe("cl-backend"), "server", "10.213.7.2", "0", std::to_string(kBytes),
                                 std::to_string(kConns)}));
  const int backend_port = ready_port(backend);
  ASSERT_GT(backend_port, 0);
  // cl-web lives on for the whole test (a listener nobody calls), so node-a's endpoint info keeps naming its address.
  Child web_idle(node_->run("cl-web", {"server", kWebAddr, "0", "1", "1"}));
  ASSERT_GT(ready_port(web_idle), 0);
  auto rule = in_node("iptables -w -t nat -A OUTPUT -d " + kRemote + " -p tcp --dport 80 -j DNAT --to-destination 10.213.7.2:" +
                      std::to_string(backend_port));
  HS_REQUIRE_SETUP(rule.status == 0, "iptables DNAT rule in the node namespace: " + rule.out);
  {
    Child web(node_->run("cl-web", {"client", kRemote, "80", std::to_string(kBytes), "concurrent=" + std::to_string(kConns)}));
    while (web.line()) {
    }
    ASSERT_EQ(web.wait(), 0);
  }
  EXPECT_EQ(backend.wait(), 0);

  // Wait until Prometheus has scraped the agent's counts (asynchronous; not a timing assertion).
  json snap, edge;
  std::string last;
  bool complete = eventually(
      [&] {
        nudge_agent();
        auto r = cluster_json();
        last = r.out;
        if (r.status != 0) return false;
        snap = json::parse(r.out, nullptr, false);
        if (snap.is_discarded()) return false;
        int found = 0;
        for (const auto& e : snap["edges"])
          if (e["client"]["service"] == "cl-web" && e["port"] == 80) {
            edge = e;
            ++found;
          }
        return found == 1 && edge["connections"] == kConns && edge["observed_by"].size() == 2;
      },
      std::chrono::seconds(90));
  ASSERT_TRUE(complete) << last;
  EXPECT_EQ(edge["client"]["kind"], "service");
  EXPECT_EQ(edge["client"]["address"], kWebAddr);
  EXPECT_EQ(edge["server"]["kind"], "service");
  EXPECT_EQ(edge["server"]["service"], "cl-api");
  EXPECT_EQ(edge["server"]["namespace"], "shop");
  EXPECT_EQ(edge["server"]["pod"], "cl-api-0");
  EXPECT_EQ(edge["server"]["address"], kRemote);
  EXPECT_EQ(edge["connections"], kConns);
  EXPECT_EQ(edge.value("address_reused", false), false)
      << edge.dump() << "\n"
      << in_node("curl -s '" + prom_url() + "/api/v1/query?query=max_over_time(hostscope_endpoint_info%5B1h%5D)'").out;
  const auto& obs = edge["observed_by"];
  EXPECT_EQ(obs[0]["node"], "node-a");
  EXPECT_EQ(obs[0]["side"], "client");
  EXPECT_EQ(obs[0]["counted"], true);
  EXPECT_EQ(obs[0]["connections"], kConns);
  EXPECT_EQ(obs[1]["node"], "node-b");
  EXPECT_EQ(obs[1]["side"], "server");
  EXPECT_EQ(obs[1]["counted"], false);
  // Neither view is left over as an edge of its own.
  for (const auto& e : snap["edges"]) {
    EXPECT_FALSE(e["server"]["kind"] == "external" && e["server"]["address"] == kRemote) << e.dump();
    EXPECT_FALSE(e["client"]["kind"] == "external" && e["client"]["address"] == kWebAddr && e["port"] == 80) << e.dump();
  }
  // The filters apply to the joined edge, and the other formats render it.
  auto shop = cluster_json("--namespace shop");
  ASSERT_EQ(shop.status, 0) << shop.out;
  EXPECT_NE(shop.out.find("cl-api"), std::string::npos);
  auto other = cluster_json("--namespace nothing-here");
  ASSERT_EQ(other.status, 0) << other.out;
  EXPECT_EQ(json::parse(other.out)["edges"].size(), 0u);
  auto table = in_node(hostscope_bin() + " topology --cluster --prometheus " + prom_url() + " 2>/dev/null");
  ASSERT_EQ(table.status, 0) << table.out;
  EXPECT_NE(table.out.find("shop/cl-api"), std::string::npos) << table.out;

  // policy generate --cluster: cl-web's egress names the service on the other node by its endpoint info (not its
  // address), and the other nodes' services are written out for the nodes' catalogues.
  const auto gen_dir = node_->dir() / "generated";
  const auto ctx_file = node_->dir() / "cluster-context.json";
  auto gen = in_node(hostscope_bin() + " policy generate --cluster --prometheus " + prom_url() + " --context-out " +
                     ctx_file.string() + " -o " + gen_dir.string() + " 2>&1");
  ASSERT_EQ(gen.status, 0) << gen.out;
  std::string policies;
  for (const auto& f : fs::directory_iterator(gen_dir)) {
    std::ifstream in(f.path());
    policies += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_TRUE(std::regex_search(policies, std::regex("- service: \"?cl-api\"?\n"))) << policies;
  EXPECT_FALSE(std::regex_search(policies, std::regex("cidr: \"?10\\.96\\.0\\.20"))) << policies;
  std::ifstream ctx_in(ctx_file);
  json ctx = json::parse(ctx_in, nullptr, false);
  ASSERT_FALSE(ctx.is_discarded()) << gen.out;
  bool named = false;
  for (const auto& svc : ctx["services"])
    named = named || (svc["name"] == "cl-api" && svc["namespace"] == "shop" &&
                      svc["addresses"] == json::array({kRemote}));
  EXPECT_TRUE(named) << ctx.dump();
  auto usage = in_node(hostscope_bin() + " policy generate --cluster 2>&1");
  EXPECT_EQ(usage.status, 2) << usage.out;
  EXPECT_NE(usage.out.find("--prometheus"), std::string::npos) << usage.out;
}

TEST(ClusterViewErrors, UnreachablePrometheusIsAClearError) {
  HS_REQUIRE_ROOT();
  Netns ns("clempty");  // nothing listens anywhere in a fresh namespace
  HS_REQUIRE_SETUP(ns.ok(), "ip netns add");
  auto r = sh("nsenter --net=/run/netns/" + ns.name() + " " + hostscope_bin() +
              " topology --cluster --prometheus http://127.0.0.1:9090 -o json");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("Prometheus http://127.0.0.1:9090"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unreachable"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace hostscope::testing
