// The real `hostscope agent` with /metrics and the event file on, in a network namespace the test owns, under a
// scripted hs_peer workload: exact counter values for the known edges, promtool check metrics on the scrape,
// the event file's lines for the workload in the `connections -o json` schema. Then the policy state the agent
// reads (and the exporter renders) over a policy applied for real with iptables inside a namespace.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "agent/daemon/policy_health.h"
#include "agent/identity/local_endpoints.h"
#include "exporters/exposition.h"
#include "exporters/policy_metrics.h"
#include "integration/topology_scenario.h"
#include "policy/compiler.h"
#include "policy/loader.h"

namespace hostscope::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr int kConns = 5;
constexpr int kBytes = 3000;
constexpr int kRefused = 3;
constexpr uint16_t kClosedPort = 1;  // nothing listens on it in the test's fresh namespace

struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};

// name -> samples, from the text format (enough for what the agent writes: no spaces or braces in values).
std::multimap<std::string, Sample> parse_exposition(const std::string& text) {
  std::multimap<std::string, Sample> out;
  std::istringstream in(text);
  std::regex label(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    auto brace = line.find('{');
    auto space = line.rfind(' ');
    std::string name = line.substr(0, brace == std::string::npos ? space : brace);
    if (brace != std::string::npos) {
      std::string ls = line.substr(brace + 1, line.rfind('}') - brace - 1);
      for (auto it = std::sregex_iterator(ls.begin(), ls.end(), label); it != std::sregex_iterator(); ++it)
        s.labels[(*it)[1]] = (*it)[2];
    }
    s.value = std::stod(line.substr(space + 1));
    out.emplace(name, s);
  }
  return out;
}

// Sum of the samples of `name` whose labels include all of `want`; -1 when none matches.
double sum(const std::multimap<std::string, Sample>& m, const std::string& name,
           const std::map<std::string, std::string>& want) {
  double total = 0;
  bool any = false;
  auto [b, e] = m.equal_range(name);
  for (auto it = b; it != e; ++it) {
    bool ok = true;
    for (auto& [k, v] : want) ok = ok && it->second.labels.count(k) && it->second.labels.at(k) == v;
    if (ok) {
      total += it->second.value;
      any = true;
    }
  }
  return any ? total : -1;
}

class MetricsAgent : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    char t[] = "/tmp/hs-metrics-XXXXXX";
    ASSERT_NE(mkdtemp(t), nullptr);
    events_dir_ = t;
    // A fresh namespace: port 9477 is free there whatever the host runs.
    node_ = std::make_unique<TopologyNode>(
        std::vector<std::string>{"mx-web", "mx-cart"},
        "node_name: mx-node\nkernel:\n  edge_table_size: 4096\nmetrics:\n  listen: 127.0.0.1:9477\n  max_series: 100000\n"
        "events:\n  output: file\n"
        "  file: " + (events_dir_ / "events.jsonl").string() + "\n  max_file_mb: 64\n");
    HS_REQUIRE_SETUP(node_->error().empty(), node_->error());
    HS_REQUIRE_SETUP(sh("ip netns exec " + node_->netns().name() + " ip link set lo up").status == 0, "lo up");
    HS_REQUIRE_SETUP(node_->start_agent(), "hostscope agent did not answer on " + node_->sock());
  }
  void TearDown() override {
    node_.reset();
    std::error_code ec;
    if (!events_dir_.empty()) fs::remove_all(events_dir_, ec);
  }

  CmdResult scrape() const {
    return sh("nsenter --net=/run/netns/" + node_->netns().name() + " curl -sf http://127.0.0.1:9477/metrics");
  }

  fs::path events_dir_;
  std::unique_ptr<TopologyNode> node_;
};

TEST_F(MetricsAgent, ScrapeShowsExactEdgeCountersAndEventFileHasTheWorkload) {
  Child cart(node_->run("mx-cart", {"server", "127.0.0.1", "0", std::to_string(kBytes), std::to_string(kConns)}));
  int port = ready_port(cart);
  ASSERT_GT(port, 0);
  std::set<std::string> client_ports;
  {
    Child web(node_->run("mx-web", {"client", "127.0.0.1", std::to_string(port), std::to_string(kBytes),
                                    "concurrent=" + std::to_string(kConns)}));
    while (auto l = web.line())
      if (l->rfind("LOCAL ", 0) == 0) client_ports.insert(l->substr(6));
    ASSERT_EQ(web.wait(), 0);
  }
  EXPECT_EQ(client_ports.size(), size_t(kConns));
  EXPECT_EQ(cart.wait(), 0);
  for (int i = 0; i < kRefused; ++i) {
    Child web(node_->run("mx-web", {"client", "127.0.0.1", std::to_string(kClosedPort), "10"}));
    while (web.line()) {
    }
    EXPECT_EQ(web.wait(), 3) << "connect to a closed port must be refused";
  }

  // Both ends are services: no address labels (only an end's own address is exported, docs/metrics.md).
  const std::map<std::string, std::string> edge{{"src_service", "mx-web"}, {"src_namespace", ""},
                                                {"src_address", ""},         {"dst_service", "mx-cart"},
                                                {"dst_namespace", ""},       {"dst_address", ""},
                                                {"dst_port", std::to_string(port)}, {"node", "mx-node"}};
  const std::map<std::string, std::string> refused{
      {"src_service", "mx-web"}, {"dst_port", std::to_string(kClosedPort)}, {"reason", "refused"}, {"node", "mx-node"}};
  std::string text;
  std::multimap<std::string, Sample> m;
  bool complete = eventually(
      [&] {
        nudge_agent();
        auto r = scrape();
        if (r.status != 0) return false;
        text = r.out;
        m = parse_exposition(text);
        return sum(m, "hostscope_connections_closed_total", edge) == kConns &&
               sum(m, "hostscope_connections_failed_total", refused) == kRefused;
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(complete) << text;
  EXPECT_EQ(sum(m, "hostscope_connections_opened_total", edge), kConns);
  EXPECT_EQ(sum(m, "hostscope_connections_active", edge), 0);
  EXPECT_EQ(sum(m, "hostscope_connection_resets_total", edge), 0);
  EXPECT_EQ(sum(m, "hostscope_connection_sent_bytes_total", edge), kConns * kBytes);
  EXPECT_EQ(sum(m, "hostscope_connection_received_bytes_total", edge), kConns * kBytes);
  EXPECT_EQ(sum(m, "hostscope_connection_retransmits_total", edge), 0);
  EXPECT_EQ(sum(m, "hostscope_connect_duration_seconds_count", edge), kConns);
  auto inf = edge;
  inf["le"] = "+Inf";
  EXPECT_EQ(sum(m, "hostscope_connect_duration_seconds_bucket", inf), kConns);
  auto failed = edge;
  EXPECT_EQ(sum(m, "hostscope_connections_failed_total", failed), -1) << "no failures on the served edge";
  // Never an ephemeral port as dst_port.
  for (auto& [name, s] : m) {
    if (s.labels.count("dst_port")) {
      EXPECT_EQ(client_ports.count(s.labels.at("dst_port")), 0u) << name;
    }
  }
  // Health and build info are there.
  EXPECT_EQ(sum(m, "hostscope_build_info", {{"node", "mx-node"}}), 1);
  EXPECT_GE(sum(m, "hostscope_events_total", {{"type", "close"}, {"outcome", "refused"}}), kRefused);
  EXPECT_GE(sum(m, "hostscope_lost_events_total", {{"source", "kernel_ring_buffer"}}), 0);
  EXPECT_GE(sum(m, "hostscope_bpf_map_capacity", {{"map", "tcp_socks"}}), 1024);
  // The kernel edge table (kernel.edge_table_size): its size, and entries for the workload's edges; no overflow.
  EXPECT_EQ(sum(m, "hostscope_bpf_map_capacity", {{"map", "tcp_edges"}}), 4096);
  // The reader delivers events before the scrape sees them; scrape again until the table's count has caught up.
  EXPECT_TRUE(eventually([&] {
    auto r = scrape();
    return r.status == 0 && sum(parse_exposition(r.out), "hostscope_bpf_map_entries", {{"map", "tcp_edges"}}) >= 2;
  }, std::chrono::seconds(5)));
  EXPECT_EQ(sum(m, "hostscope_edge_table_overflow_total", {}), 0);
  EXPECT_EQ(sum(m, "hostscope_event_sink_dropped_total", {}), 0);
  // Endpoint info: the node's own addresses (its host namespace's, as /proc/1/net/fib_trie shows them), with no
  // service, named by this node.
  std::ifstream fib_file("/proc/1/net/fib_trie");
  std::string fib((std::istreambuf_iterator<char>(fib_file)), std::istreambuf_iterator<char>());
  auto node_v4 = identity::parse_fib_trie(fib);
  EXPECT_FALSE(node_v4.empty()) << "the host namespace has no IPv4 address besides loopback";
  for (const auto& a : node_v4)
    EXPECT_EQ(sum(m, "hostscope_endpoint_info", {{"address", a}, {"service", ""}, {"node", "mx-node"}}), 1) << a;
  EXPECT_EQ(sum(m, "hostscope_endpoint_info_refused", {}), 0);

  // promtool accepts the real scrape.
  auto file = events_dir_ / "scrape.txt";
  std::ofstream(file) << text;
  auto pt = sh("promtool check metrics < " + file.string());
  EXPECT_EQ(pt.status, 0) << pt.out;
  EXPECT_EQ(pt.out, "");

  // The event file: the workload's lines, each in the `connections -o json` schema.
  std::vector<json> web_closes, cart_closes, web_refused;
  const std::set<std::string> schema{"ts", "event", "role", "pid", "tid", "comm", "cgroup_id", "netns", "family",
                                     "saddr", "sport", "daddr", "dport", "duration_ms", "connect_latency_us",
                                     "bytes_sent", "bytes_received", "srtt_us", "retransmits", "outcome"};
  bool all = eventually(
      [&] {
        web_closes.clear();
        cart_closes.clear();
        web_refused.clear();
        std::ifstream in(events_dir_ / "events.jsonl");
        for (std::string l; std::getline(in, l);) {
          auto j = json::parse(l, nullptr, false);
          if (j.is_discarded() || j.value("event", "") != "close") continue;
          auto svc = j.value("service", "");
          if (svc == "mx-web" && j["dport"] == port) web_closes.push_back(j);
          if (svc == "mx-cart" && j["sport"] == port) cart_closes.push_back(j);
          if (svc == "mx-web" && j["dport"] == kClosedPort) web_refused.push_back(j);
        }
        return web_closes.size() == size_t(kConns) && cart_closes.size() == size_t(kConns) &&
               web_refused.size() == size_t(kRefused);
      },
      std::chrono::seconds(20));
  ASSERT_TRUE(all) << web_closes.size() << " " << cart_closes.size() << " " << web_refused.size();
  for (auto& j : web_closes) {
    for (auto& k : schema) EXPECT_TRUE(j.contains(k)) << k << " missing in " << j.dump();
    EXPECT_EQ(j["bytes_sent"], kBytes);
    EXPECT_EQ(j["bytes_received"], kBytes);
    EXPECT_EQ(j["outcome"], "closed");
    EXPECT_EQ(j["role"], "active");
    EXPECT_EQ(client_ports.count(std::to_string(j["sport"].get<int>())), 1u);
  }
  for (auto& j : web_refused) EXPECT_EQ(j["outcome"], "refused");
  for (auto& j : cart_closes) EXPECT_EQ(j["role"], "passive");
  EXPECT_EQ(node_->stop_agent(), 0);
}

// Policy state through the collector: a policy applied for real with iptables in a namespace the test owns,
// traffic that hits its allow rule and its audit-mode deny default, a reconciler record on disk.
TEST(PolicyMetrics, GenerationCommitAttemptsRuleHitsAndWouldDeny) {
  HS_REQUIRE_ROOT();
  Netns ns("pmet");
  HS_REQUIRE_SETUP(ns.ok(), "ip netns add");
  HS_REQUIRE_SETUP(sh("ip netns exec " + ns.name() + " ip link set lo up").status == 0, "lo up");
  char t[] = "/tmp/hs-pmet-XXXXXX";
  ASSERT_NE(mkdtemp(t), nullptr);
  fs::path state = t;
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{state};

  // The service's local processes live in a cgroup the test creates (ingress to them is scoped by port on INPUT).
  std::string cg_root = fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
  std::string cg = "/" + ns.name();
  std::error_code cg_ec;
  fs::create_directories(cg_root + cg, cg_ec);
  HS_REQUIRE_SETUP(!cg_ec, "cgroup " + cg_root + cg);
  struct CgCleanup {
    std::string dir;
    ~CgCleanup() { rmdir(dir.c_str()); }
  } cg_cleanup{cg_root + cg};
  policy::Context ctx;
  ctx.services.push_back({"web", {cg}, {}, {8080, 8081}, "", "", "", ""});
  auto yaml = std::string("---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: web-in}\n") +
              "subject: {service: web}\nmode: audit\ndefault: {ingress: deny}\n"
              "ingress:\n  - action: allow\n    ports: [8080]\n";
  auto c = policy::compile(policy::load_text(yaml, "web.yaml"), ctx, policy::CompileOptions{8});
  ASSERT_TRUE(c.ok());
  policy::IptablesOptions io;
  io.command_prefix = {"ip", "netns", "exec", ns.name()};
  io.state_dir = state.string();
  io.ipv6 = false;
  policy::IptablesBackend backend(io);
  auto applied = backend.apply(*c.ir);
  HS_REQUIRE_SETUP(applied, "iptables apply in the namespace: " + (applied ? std::string() : applied.error().str()));

  policy::ReconcileStatus rs;
  rs.generation = applied->generation;
  rs.applied_commit = "4f1c2e9";
  rs.attempts = {{"applied", 1}, {"refused", 2}};
  rs.drift_repairs = 1;
  std::ofstream(state / "reconcile.json") << rs.to_json().dump();

  // Connects to closed local ports: refused at once, but their SYNs pass INPUT (allow: 8080; audit deny: 8081).
  auto connect = [&](int port, int n) {
    for (int i = 0; i < n; ++i)
      sh("ip netns exec " + ns.name() + " bash -c 'echo > /dev/tcp/127.0.0.1/" + std::to_string(port) + "'");
  };
  connect(8080, 2);
  connect(8081, 4);
  auto st = backend.status();
  ASSERT_TRUE(st) << st.error().str();

  daemon::PolicyHealthOptions po;
  po.iptables = io;
  po.refresh_seconds = 3600;  // cached: a second scrape must not re-read the backend
  daemon::PolicyHealthReader pc(po);
  exporters::Exposition out;
  exporters::write_policy_health(out, pc.read());
  auto m = parse_exposition(out.text());
  EXPECT_EQ(sum(m, "hostscope_policy_generation", {}), applied->generation);
  EXPECT_EQ(sum(m, "hostscope_policy_info", {{"generation", std::to_string(applied->generation)}, {"commit", "4f1c2e9"}}), 1);
  EXPECT_EQ(sum(m, "hostscope_policy_apply_attempts_total", {{"result", "applied"}}), 1);
  EXPECT_EQ(sum(m, "hostscope_policy_apply_attempts_total", {{"result", "refused"}}), 2);
  EXPECT_EQ(sum(m, "hostscope_policy_drift_repairs_total", {}), 1);
  EXPECT_EQ(sum(m, "hostscope_policy_drift", {}), 0);
  EXPECT_EQ(sum(m, "hostscope_policy_audit_would_deny_packets_total", {}), double(st->audit_would_deny_packets));
  EXPECT_EQ(st->audit_would_deny_packets, 4u) << st->text();
  // Per-rule counters: the allow rule for 8080 saw the two SYNs; every kernel rule is exported.
  double all_hits = sum(m, "hostscope_policy_rule_hits_packets_total", {{"policy", "web-in"}});
  uint64_t backend_hits = 0;
  for (auto& r : st->counters)
    if (r.owner == "web-in") backend_hits += r.packets;
  EXPECT_EQ(all_hits, double(backend_hits)) << st->text();
  EXPECT_EQ(sum(m, "hostscope_policy_rule_hits_packets_total", {{"policy", "web-in"}, {"mode", "audit"}, {"target", "RETURN"}}), 2)
      << out.text() << st->text();

  connect(8081, 1);
  exporters::Exposition again;
  exporters::write_policy_health(again, pc.read());
  EXPECT_EQ(sum(parse_exposition(again.text()), "hostscope_policy_audit_would_deny_packets_total", {}), 4)
      << "status is cached for refresh_seconds";
  daemon::PolicyHealthOptions fresh = po;
  fresh.refresh_seconds = 0;
  daemon::PolicyHealthReader pc2(fresh);
  exporters::Exposition third;
  exporters::write_policy_health(third, pc2.read());
  EXPECT_EQ(sum(parse_exposition(third.text()), "hostscope_policy_audit_would_deny_packets_total", {}), 5);
  auto file = state / "policy.txt";
  std::ofstream(file) << third.text();
  auto pt = sh("promtool check metrics < " + file.string());
  EXPECT_EQ(pt.status, 0) << pt.out;
  ASSERT_TRUE(backend.flush());
}

}  // namespace
}  // namespace hostscope::testing
