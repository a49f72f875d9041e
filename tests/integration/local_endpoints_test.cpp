// Privileged test of local endpoints: a fake pod on this node, with no context file.
//   - a network namespace with one end of a veth pair, an IPv4 and an IPv6 address on it;
//   - a fake kubelet log tree and a kubepods cgroup leaf for the pod;
//   - a listener started inside the namespace, moved into the pod's cgroup from outside the namespace;
// then the node catalogue (cli::node_services, what `hostscope policy` uses) must know the pod's service with its
// addresses and listening port, and a policy whose peer is that service lints clean and its PolicyTest passes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "agent/cli/policy_context.h"
#include "agent/identity/local_endpoints.h"
#include "policy/analysis.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/loader.h"
#include "support/fake_pod.h"
#include "support/privileged.h"

using namespace hostscope;
using namespace hostscope::testing;
namespace fs = std::filesystem;

namespace {

std::string peer_bin() {
  const char* v = std::getenv("HS_PEER");
  return v ? v : "hs_peer";
}

TEST(LocalEndpoints, FakePodIsInTheNodeCatalogue) {
  HS_REQUIRE_ROOT();
  const fs::path cg_root = "/sys/fs/cgroup/unified";
  HS_REQUIRE_SETUP(fs::exists(cg_root / "cgroup.procs"), cg_root.string() + " is not a cgroup2 mount");
  HS_REQUIRE_SETUP(sh("command -v ip").status == 0, "iproute2 (ip) is not installed");

  // Addresses unique to this run: another test may run a pod of its own.
  const unsigned x = unsigned(getpid()) % 250 + 1;
  const std::string v4 = fmt::format("10.213.{}.2", x), v6 = fmt::format("fd00:213:{:x}::2", x);
  Netns netns("ep");
  HS_REQUIRE_SETUP(netns.ok(), "ip netns add");
  const std::string host_if = fmt::format("hsep{}h", getpid() % 100000), pod_if = fmt::format("hsep{}p", getpid() % 100000);
  auto setup = sh("ip link add " + host_if + " type veth peer name " + pod_if + " netns " + netns.name() + " && ip link set " +
                  host_if + " up && " + netns.exec("ip addr add " + v4 + "/24 dev " + pod_if) + " && " +
                  netns.exec("ip addr add " + v6 + "/64 dev " + pod_if + " nodad") + " && " +
                  netns.exec("ip link set " + pod_if + " up"));
  HS_REQUIRE_SETUP(setup.status == 0, "veth pair and addresses: " + setup.out);

  FakePod pod("shop", "web-7d4b9c8f6d-x2x4z", "app", uint64_t(getpid()));
  ASSERT_TRUE(pod.make_cgroup(cg_root)) << "mkdir " << pod.leaf(cg_root) << ": " << strerror(errno);
  {
    // Listens on [::] (dual stack): a tcp6 socket of the pod's namespace, not of the host's.
    Child server({"ip", "netns", "exec", netns.name(), peer_bin(), "server", "::", "0", "8", "1"});
    auto ready = server.line();
    ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0) << (ready ? *ready : "no output");
    const uint16_t port = uint16_t(std::stoi(ready->substr(6)));
    ASSERT_TRUE(pod.join(cg_root, server.pid())) << "moving " << server.pid() << " into " << pod.leaf(cg_root);

    auto services = cli::node_services(pod.kubelet_root().string());
    policy::Context ctx;
    ctx.services = services;
    const auto* web = ctx.find_service("shop/web");
    ASSERT_TRUE(web) << "shop/web is not in the node catalogue (" << services.size() << " services)";
    EXPECT_EQ(web->k8s_namespace, "shop");
    EXPECT_EQ(web->workload, "web");
    EXPECT_EQ(web->cgroups, std::vector<std::string>{"/" + fs::relative(pod.leaf(cg_root), cg_root).string()});
    EXPECT_EQ(web->addresses, (std::vector<std::string>{v4, v6}));
    EXPECT_EQ(web->ports, std::vector<uint16_t>{port});
    // The node's own addresses (pid 1's namespace) are nobody's service addresses; the pod's are no other
    // service's.
    std::ifstream fib_file("/proc/1/net/fib_trie");
    auto node_v4 = identity::parse_fib_trie(std::string(std::istreambuf_iterator<char>(fib_file), {}));
    EXPECT_FALSE(node_v4.empty()) << "the host namespace has no IPv4 address besides loopback";
    for (const auto& s : services) {
      for (const auto& a : node_v4)
        EXPECT_TRUE(std::find(s.addresses.begin(), s.addresses.end(), a) == s.addresses.end()) << s.name << " has " << a;
      if (s.name != "shop/web") {
        EXPECT_TRUE(std::find(s.addresses.begin(), s.addresses.end(), v4) == s.addresses.end()) << s.name;
      }
    }

    // A policy naming the pod's service as a peer, and a PolicyTest that goes to its addresses: without them the
    // peer matches nothing (egress to the pod's own address is denied) and its address is no subject (the denied
    // port is allowed).
    const std::string text = fmt::format(R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata:
  name: web
subject:
  service: shop/web
default:
  egress: deny
egress:
  - action: allow
    peers: [{{service: shop/web}}]
    ports: [{0}]
    protocol: tcp
ingress:
  - action: deny
    peers: [{{cidr: 198.51.100.0/24}}]
    ports: [{3}]
    protocol: tcp
---
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata:
  name: web-tests
cases:
  - {{from: shop/web, to: {1}, port: {0}, protocol: tcp, expect: allow}}
  - {{from: shop/web, to: {2}, port: {0}, protocol: tcp, expect: allow}}
  - {{from: shop/web, to: 198.51.100.9, port: {0}, protocol: tcp, expect: deny}}
  - {{from: 198.51.100.9, to: shop/web, port: {0}, protocol: tcp, expect: allow}}
  - {{from: 198.51.100.9, to: {1}, port: {3}, protocol: tcp, expect: deny}}
)",
                                         port, v4, v6, port + 1);
    auto loaded = policy::load_text(text, "web.yaml");
    auto report = policy::lint(loaded, ctx);
    for (const auto& d : report.diagnostics) ADD_FAILURE() << d.str();
    auto compiled = policy::compile(loaded, ctx);
    ASSERT_TRUE(compiled.ok());
    for (const auto& r : policy::run_policy_tests(loaded.set, *compiled.ir, ctx))
      EXPECT_TRUE(r.passed) << r.loc.str() << " " << r.case_name << ": " << r.detail;
  }  // the server is killed and reaped here, so the cgroups can be removed
}

}  // namespace
