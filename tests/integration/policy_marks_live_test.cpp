// Policy marks on the live topology equal what the kernel did (issue 14). A simulated node (topology_scenario.h) runs
// local services in cgroups the test creates: mk-front talks to mk-cart over 127.0.0.1 and to mk-db at the node's
// own address. `hostscope policy generate` writes policies from the agent's topology, they are switched to enforce
// and applied in the node's namespace, then the kernel decides: front -> cart again (allowed, must connect) and
// front -> mk-other (never observed, so front's egress default drops it). `hostscope topology --policy-state` must
// mark exactly the dropped edge `denied` and leave the edges the kernel allowed unmarked.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "topology_scenario.h"

namespace hostscope::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::vector<std::string> kServices = {"mk-front", "mk-cart", "mk-db", "mk-other"};
constexpr const char* kNodeAddr = "10.214.9.1";

std::string cgroup2_root() { return fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"; }

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class PolicyMarksLive : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    HS_REQUIRE_THAT(fs::exists(cgroup2_root() + "/cgroup.procs") ? "" : "no cgroup v2");
    HS_REQUIRE_THAT(sh("command -v iptables-restore && command -v nsenter").status == 0 ? "" : "missing iptables-restore or nsenter");
    node_ = std::make_unique<TopologyNode>(kServices);
    HS_REQUIRE_SETUP(node_->error().empty(), node_->error());
    // The node's own address on a veth link (both ends in the node; no dummy module here): a connection to it stays on this host, like one over loopback.
    auto r = sh("ip netns exec " + node_->netns().name() + " sh -c 'ip link add hsd0 type veth peer name hsd1 && ip addr add " +
                std::string(kNodeAddr) + "/24 dev hsd0 && ip link set hsd0 up'");
    HS_REQUIRE_SETUP(r.status == 0, "dummy link: " + r.out);
    cg_ = "/hs-t-marks-" + random_suffix();
    for (const auto& s : kServices) {
      std::error_code ec;
      fs::create_directories(cgroup2_root() + cg_ + "/" + s, ec);
      HS_REQUIRE_SETUP(!ec, "cgroup " + cg_ + "/" + s + ": " + ec.message());
    }
    HS_REQUIRE_SETUP(node_->start_agent(), "hostscope agent did not answer on " + node_->sock());
  }
  void TearDown() override {
    children_.clear();  // SIGKILLed and reaped before their cgroups go
    node_.reset();
    std::error_code ec;
    if (!cg_.empty()) {
      for (const auto& s : kServices) fs::remove(cgroup2_root() + cg_ + "/" + s, ec);
      fs::remove(cgroup2_root() + cg_, ec);
    }
  }

  // hs_peer copy `service` in the node namespace, inside the service's cgroup before it runs (exec keeps the pid).
  Child& start(const std::string& service, const std::vector<std::string>& args) {
    std::string cmd = "echo $$ > " + cgroup2_root() + cg_ + "/" + service + "/cgroup.procs && exec nsenter --net=/run/netns/" +
                      node_->netns().name() + " " + node_->exe(service);
    for (const auto& a : args) cmd += " " + a;
    children_.push_back(std::make_unique<Child>(std::vector<std::string>{"sh", "-c", cmd}));
    return *children_.back();
  }
  // hostscope, run in the node namespace (its catalogue reads that namespace's listening sockets).
  CmdResult hostscope(const std::string& args) const {
    return sh("nsenter --net=/run/netns/" + node_->netns().name() + " " + hostscope_bin() + " " + args);
  }
  // The agent's topology (with marks when `state` is given), our clients' edges by "client -> port" (a dropped
  // connection never reached its server, so the agent names that end by address only).
  std::map<std::string, json> edges(const std::string& state = "") const {
    auto out = node_->dir() / "topology.json";
    auto r = hostscope("topology -o json --socket " + node_->sock() + (state.empty() ? "" : " --policy-state " + state) + " > " +
                       out.string());
    std::map<std::string, json> m;
    if (r.status != 0) return m;
    auto snap = json::parse(slurp(out), nullptr, false);
    if (!snap.is_object()) return m;
    std::set<std::string> ours(kServices.begin(), kServices.end());
    for (const auto& e : snap["edges"])
      if (ours.count(e["client"].value("service", "")))
        m[e["client"]["service"].get<std::string>() + " -> " + std::to_string(e["port"].get<int>())] = e;
    return m;
  }

  std::unique_ptr<TopologyNode> node_;
  std::string cg_;
  std::vector<std::unique_ptr<Child>> children_;
};

TEST_F(PolicyMarksLive, MarksEqualWhatTheKernelDid) {
  // A long-lived front process keeps the service (and its cgroup) in the catalogue while policies resolve.
  Child& anchor = start("mk-front", {"server", "127.0.0.1", "0", "0", "1"});
  Child& cart = start("mk-cart", {"server", "127.0.0.1", "0", "100", "1000"});
  Child& db = start("mk-db", {"server", kNodeAddr, "0", "100", "1000"});
  Child& other = start("mk-other", {"server", "127.0.0.1", "0", "100", "1000"});
  ASSERT_GT(ready_port(anchor), 0);
  int cart_port = ready_port(cart), db_port = ready_port(db), other_port = ready_port(other);
  ASSERT_GT(cart_port, 0);
  ASSERT_GT(db_port, 0);
  ASSERT_GT(other_port, 0);
  const std::string to_cart = "mk-front -> " + std::to_string(cart_port);
  const std::string to_db = "mk-front -> " + std::to_string(db_port);
  const std::string to_other = "mk-front -> " + std::to_string(other_port);

  // Observed traffic: front -> cart over loopback, front -> db at the node's address.
  ASSERT_EQ(start("mk-front", {"client", "127.0.0.1", std::to_string(cart_port), "100", "concurrent=2"}).wait(), 0);
  ASSERT_EQ(start("mk-front", {"client", kNodeAddr, std::to_string(db_port), "100"}).wait(), 0);
  std::map<std::string, json> seen;
  ASSERT_TRUE(eventually(
      [&] {
        nudge_agent();
        seen = edges();
        return seen.count(to_cart) && seen.count(to_db);
      },
      std::chrono::seconds(20)))
      << "the agent never showed both observed edges";

  // Generate from exactly these edges, enforce, apply in the node namespace.
  json topo = {{"schema", "hostscope.topology/v1"}, {"edges", json::array()}};
  for (const auto& [k, e] : seen) topo["edges"].push_back(e);
  std::ofstream(node_->dir() / "observed.json") << topo.dump();
  auto gen = (node_->dir() / "gen").string(), state = (node_->dir() / "state").string();
  auto r = hostscope("policy generate --from " + (node_->dir() / "observed.json").string() + " -o " + gen);
  ASSERT_EQ(r.status, 0) << r.out;
  r = sh("sed -i 's/^mode: audit$/mode: enforce/' " + gen + "/*.yaml && grep -l '^mode: enforce' " + gen + "/*.yaml | wc -l");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(std::stoi(r.out), 3) << "one enforcing policy per service seen";
  r = hostscope("policy apply " + gen + " --state-dir " + state);
  ASSERT_EQ(r.status, 0) << r.out;

  // What the kernel does now: the observed connection still connects, the new one is dropped.
  EXPECT_EQ(start("mk-front", {"client", "127.0.0.1", std::to_string(cart_port), "100"}).wait(), 0);
  EXPECT_EQ(start("mk-front", {"client", kNodeAddr, std::to_string(db_port), "100"}).wait(), 0);
  Child& dropped = start("mk-front", {"client", "127.0.0.1", std::to_string(other_port), "100", "syncnt=1"});
  auto line = dropped.line();
  EXPECT_TRUE(line && line->rfind("ERROR", 0) == 0) << "front -> other was not dropped: " << line.value_or("(no output)");
  dropped.wait();

  // The marks say the same.
  std::map<std::string, json> marked;
  ASSERT_TRUE(eventually(
      [&] {
        nudge_agent();
        marked = edges(state);
        return marked.count(to_cart) && marked.count(to_db) && marked.count(to_other);
      },
      std::chrono::seconds(20)))
      << "the dropped connection never showed as an edge: " << [&] {
           std::string k;
           for (const auto& [key, e] : marked) k += "\n  " + e.dump();
           return k;
         }();
  EXPECT_EQ(marked[to_cart].value("policy", ""), "") << marked[to_cart].dump();
  EXPECT_EQ(marked[to_db].value("policy", ""), "") << marked[to_db].dump();
  EXPECT_EQ(marked[to_other].value("policy", ""), "denied") << marked[to_other].dump();

  // The same set with a catalogue that knows none of its services would remove the rules in force: `plan` warns,
  // `apply` refuses naming the policies with file:line and changes nothing, unless --allow-mass-removal.
  // (Without the PolicyTests: they name the services, which lint would refuse first.)
  std::ofstream(node_->dir() / "empty.json") << R"({"services": []})";
  const std::string empty = " --context " + (node_->dir() / "empty.json").string() + " --state-dir " + state;
  ASSERT_EQ(sh("rm " + gen + "/*.test.yaml").status, 0);
  r = hostscope("policy plan " + gen + empty);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("WARNING: the plan removes"), std::string::npos) << r.out;
  r = hostscope("policy apply " + gen + empty);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("policy apply refused; nothing was changed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 of 3 policies select nothing on this node: 'mk-cart' (mk-cart.yaml:"), std::string::npos) << r.out;
  EXPECT_EQ(start("mk-front", {"client", "127.0.0.1", std::to_string(other_port), "100", "syncnt=1"}).wait(), 3)
      << "the rules in force must be unchanged";
  r = hostscope("policy apply " + gen + empty + " --allow-mass-removal");
  EXPECT_EQ(r.status, 0) << r.out;
}


// `policy plan --impact` on the same node (issue 19): a known workload (front -> cart once, front -> db with three
// connections), then a planned policy that allows front only to cart. The report must name the front -> db edge as
// newly denied, with its three connections and the rule that decides (file:line), and exit 3; with a policy that
// keeps db allowed it reports no change and exits 0; `policy diff --impact` of the two sets lists the same edge under
// the class that changes. Nothing is applied: plan and diff never touch the kernel.
TEST_F(PolicyMarksLive, PlanImpactNamesTheObservedEdgeThePlanWouldDeny) {
  Child& anchor = start("mk-front", {"server", "127.0.0.1", "0", "0", "1"});
  Child& cart = start("mk-cart", {"server", "127.0.0.1", "0", "100", "1000"});
  Child& db = start("mk-db", {"server", kNodeAddr, "0", "100", "1000"});
  ASSERT_GT(ready_port(anchor), 0);
  int cart_port = ready_port(cart), db_port = ready_port(db);
  ASSERT_GT(cart_port, 0);
  ASSERT_GT(db_port, 0);
  const std::string to_cart = "mk-front -> " + std::to_string(cart_port);
  const std::string to_db = "mk-front -> " + std::to_string(db_port);
  ASSERT_EQ(start("mk-front", {"client", "127.0.0.1", std::to_string(cart_port), "100"}).wait(), 0);
  ASSERT_EQ(start("mk-front", {"client", kNodeAddr, std::to_string(db_port), "100", "concurrent=3"}).wait(), 0);
  std::map<std::string, json> seen;
  ASSERT_TRUE(eventually(
      [&] {
        nudge_agent();
        seen = edges();
        return seen.count(to_cart) && seen.count(to_db) && seen[to_db].value("connections", 0) == 3;
      },
      std::chrono::seconds(20)))
      << "the agent never showed both observed edges with the known counts";

  auto write_policy = [&](const std::string& dir, const std::string& ports) {
    fs::create_directories(dir);
    std::ofstream(dir + "/front.yaml") << "apiVersion: hostscope.io/v1\n"
                                          "kind: NetworkPolicy\n"
                                          "metadata: {name: front}\n"
                                          "subject: {service: mk-front}\n"
                                          "mode: enforce\n"
                                          "default: {egress: deny}\n"
                                          "egress:\n"
                                          "  - action: allow\n"
                                          "    ports: [" + ports + "]\n";
  };
  const std::string narrow = (node_->dir() / "narrow").string(), wide = (node_->dir() / "wide").string();
  write_policy(narrow, std::to_string(cart_port));
  write_policy(wide, std::to_string(cart_port) + ", " + std::to_string(db_port));
  const std::string opts = " --impact --socket " + node_->sock() + " --state-dir " + (node_->dir() / "no-state").string();

  auto r = hostscope("policy plan " + narrow + opts);
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("port " + std::to_string(db_port) + "/tcp: allowed -> denied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("observed 3 connection(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after:  policy front: egress default deny at front.yaml:6:"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("port " + std::to_string(cart_port) + "/tcp: allowed -> denied"), std::string::npos) << r.out;

  r = hostscope("policy plan " + narrow + opts + " --json");
  EXPECT_EQ(r.status, 3) << r.out;
  auto j = json::parse(r.out.substr(r.out.find('{')), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  ASSERT_EQ(j["changes"].size(), 1u) << r.out;
  EXPECT_EQ(j["changes"][0]["port"], db_port);
  EXPECT_EQ(j["changes"][0]["connections"], 3);
  EXPECT_EQ(j["newly_denied_connections"], 3);

  r = hostscope("policy plan " + wide + opts);
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("no observed edge changes verdict"), std::string::npos) << r.out;

  // `policy diff wide narrow --impact`: the class that loses db's port lists the observed front -> db edge with its
  // three connections; cart's edge keeps its verdict and is listed nowhere.
  r = hostscope("policy diff " + wide + " " + narrow + " --impact --socket " + node_->sock());
  EXPECT_EQ(r.status, 3) << r.out;
  EXPECT_NE(r.out.find("tcp/" + std::to_string(db_port) + ": allow -> deny"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("port " + std::to_string(db_port) + "/tcp, 3 connection(s)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("port " + std::to_string(cart_port) + "/tcp, "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 change verdict (1 newly denied, 3 connection(s))"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("in no listed class"), std::string::npos) << r.out;

  // Bad input changes nothing and says why.
  r = hostscope("policy plan " + narrow + opts + " --since yesterday");
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("--since yesterday"), std::string::npos) << r.out;
  r = hostscope("policy diff " + wide + " " + narrow + " --impact --socket " + node_->sock() + " --since yesterday");
  EXPECT_EQ(r.status, 2) << r.out;
}

}  // namespace
}  // namespace hostscope::testing
