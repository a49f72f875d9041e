// `policy generate`: observed topology -> policies + PolicyTests that lint cleanly and pass, also once
// switched to enforce mode (audit never denies, so that is where the tests bite); unobserved traffic is
// denied; output is stable; bad topology input is refused with its JSON path; the agent socket client;
// the CLI subcommand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "policy/cli.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/generate.h"
#include "policy/iptables.h"
#include "policy/loader.h"
#include "support/policy_cli.h"

namespace hostscope::policy {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

// Host processes (cgroups + listening ports), pods (addresses), a client-only process, a named network.
Context node() {
  Context c;
  c.services.push_back({"web", {"/system.slice/web.service"}, {}, {80}, "", "", "", "/usr/bin/web"});
  c.services.push_back({"db", {"/system.slice/db.service"}, {}, {5432}, "", "", "", "/usr/bin/postgres"});
  c.services.push_back({"cron", {"/system.slice/cron.service"}, {}, {}, "", "", "", "/usr/sbin/cron"});
  c.services.push_back({"api", {}, {"10.244.0.5"}, {}, "", "shop", "api", ""});
  c.services.push_back({"cache", {}, {"10.244.0.6", "fd00:10::6"}, {}, "", "shop", "cache", ""});
  c.networks["office"] = {"192.0.2.0/24"};
  return c;
}

json end(const std::string& kind, const std::string& service, const std::string& ns, const std::string& address) {
  return {{"kind", kind}, {"service", service}, {"namespace", ns}, {"pod", ""}, {"address", address}};
}
json svc(const std::string& name, const std::string& ns, const std::string& address) { return end("service", name, ns, address); }
json ext(const std::string& address) { return end("external", "external", "", address); }

json edge(json client, json server, int port, uint64_t connections, const std::string& proto = "tcp") {
  return {{"client", std::move(client)}, {"server", std::move(server)}, {"port", port}, {"protocol", proto},
          {"connections", connections}, {"closed", connections}, {"failed", json::object()}, {"resets", 0}, {"active", 0},
          {"bytes_sent", 100}, {"bytes_received", 200}, {"latency_us", {{"samples", 1}, {"p50", 1}, {"p90", 1}, {"p99", 1}}},
          {"srtt_us", 50}, {"retransmits", 0}, {"first_seen", "2024-05-01T12:00:00.000000000Z"},
          {"last_seen", "2024-05-01T12:00:05.000000000Z"}};
}

std::vector<json> observed_edges() {
  std::vector<json> e;
  e.push_back(edge(svc("web", "", "127.0.0.1"), svc("db", "", "127.0.0.1"), 5432, 40));            // host -> host, loopback
  e.push_back(edge(end("network", "office", "", "192.0.2.10"), svc("web", "", "192.0.2.1"), 80, 100));  // named network -> host
  e.push_back(edge(ext("2001:db8::5"), svc("web", "", "2001:db8::1"), 80, 6));                      // IPv6 client
  e.push_back(edge(svc("api", "shop", "10.244.0.5"), svc("cache", "shop", "10.244.0.6"), 6379, 7));  // pod -> pod
  e.push_back(edge(svc("web", "", "10.0.0.1"), ext("93.184.216.34"), 443, 3));                      // host -> internet
  e.push_back(edge(svc("cron", "", "127.0.0.1"), svc("db", "", "127.0.0.1"), 5432, 2));             // client-only process
  e.push_back(edge(svc("unknown", "", "10.0.0.9"), svc("web", "", "10.0.0.1"), 80, 5));             // unidentified client
  e.push_back(edge(svc("web", "", "10.244.0.1"), svc("api", "shop", "10.244.0.5"), 8443, 9));       // host -> pod
  e.push_back(edge(ext("198.51.100.7"), svc("api", "shop", "10.244.0.5"), 8443, 4));                // internet -> pod
  e.push_back(edge(svc("api", "shop", "10.244.0.5"), svc("cache", "shop", "fd00:10::6"), 6379, 1)); // pod -> pod, IPv6
  e.push_back(edge(svc("api", "shop", "10.244.0.5"), ext("10.244.0.10"), 53, 12, "udp"));          // DNS
  auto dnat = edge(svc("api", "shop", "10.244.0.5"), ext("10.96.0.20"), 80, 8);                     // ClusterIP
  dnat["dialed"] = "10.96.0.20:80";
  dnat["actual"] = {"10.244.1.7:8080", "10.244.1.8:8080"};
  e.push_back(dnat);
  auto refused = edge(svc("web", "", "127.0.0.1"), svc("db", "", "127.0.0.1"), 5433, 0);           // never established
  refused["failed"] = {{"refused", 4}};
  e.push_back(refused);
  return e;
}

json topology(const std::vector<json>& edges) {
  return {{"schema", "hostscope.topology/v1"}, {"taken_at", "2024-05-01T12:00:06.000000000Z"}, {"counters", json::object()},
          {"nodes", json::array()}, {"edges", edges}};
}

Generated must_generate(const json& t, const Context& ctx = node()) {
  auto g = generate(t, ctx);
  EXPECT_TRUE(g.has_value()) << (g ? "" : g.error().str());
  return g ? std::move(*g) : Generated{};
}

LoadResult load_files(const std::vector<GeneratedFile>& files, bool enforce = false) {
  LoadResult r;
  for (const auto& f : files) {
    std::string text = f.text;
    if (enforce)
      for (size_t p; (p = text.find("mode: audit")) != std::string::npos;) text.replace(p, 11, "mode: enforce");
    load_into(r, text, f.name);
  }
  return r;
}

std::string diag_text(const Diagnostics& d) {
  std::string s;
  for (const auto& x : d) s += x.str() + "\n";
  return s;
}

std::string file_text(const Generated& g, const std::string& name) {
  for (const auto& f : g.files)
    if (f.name == name) return f.text;
  ADD_FAILURE() << "no generated file " << name;
  return "";
}

std::vector<TestOutcome> run_tests(const LoadResult& loaded, const Context& ctx) {
  auto c = compile(loaded, ctx);
  EXPECT_TRUE(c.ok()) << diag_text(c.diagnostics);
  if (!c.ok()) return {};
  return run_policy_tests(loaded.set, *c.ir, ctx);
}

TEST(PolicyGenerate, OnePolicyAndOneTestPerLocalService) {
  auto g = must_generate(topology(observed_edges()));
  std::vector<std::string> names;
  for (const auto& f : g.files) names.push_back(f.name);
  EXPECT_THAT(names, ::testing::ElementsAre("cron.test.yaml", "cron.yaml", "db.test.yaml", "db.yaml", "shop-api.test.yaml",
                                            "shop-api.yaml", "shop-cache.test.yaml", "shop-cache.yaml", "web.test.yaml", "web.yaml"));
  EXPECT_EQ(g.policies, 5u);
  EXPECT_EQ(g.edges_used, 12u);
  EXPECT_EQ(g.edges_skipped, 1u);
}

TEST(PolicyGenerate, LintsCleanlyAndTestsPass) {
  auto g = must_generate(topology(observed_edges()));
  auto loaded = load_files(g.files);
  auto report = lint(loaded, node());
  EXPECT_TRUE(report.diagnostics.empty()) << diag_text(report.diagnostics) << g.stream();
  auto results = run_tests(loaded, node());
  EXPECT_EQ(results.size(), g.cases);
  EXPECT_GE(results.size(), 12u);
  for (const auto& r : results) EXPECT_TRUE(r.passed) << r.loc.str() << " " << r.case_name << ": " << r.detail;
}

// Audit mode never denies, so the cases are only meaningful once enforced: they must hold then too.
TEST(PolicyGenerate, TestsPassWhenEnforced) {
  auto g = must_generate(topology(observed_edges()));
  auto loaded = load_files(g.files, /*enforce=*/true);
  auto report = lint(loaded, node());
  EXPECT_TRUE(report.diagnostics.empty()) << diag_text(report.diagnostics);
  auto results = run_tests(loaded, node());
  ASSERT_FALSE(results.empty());
  for (const auto& r : results) EXPECT_TRUE(r.passed) << r.loc.str() << " " << r.case_name << ": " << r.detail;
}

// The generated tests catch a policy that no longer allows an observed edge.
TEST(PolicyGenerate, TestsFailWhenAnObservedEdgeIsNotAllowed) {
  auto all = observed_edges();
  auto full = must_generate(topology(all));
  auto fewer = all;
  fewer.erase(fewer.begin() + 8);  // 198.51.100.7 -> api:8443
  fewer.erase(fewer.begin());      // web -> db:5432 (cron -> db keeps db's ingress open to cron)
  auto partial = must_generate(topology(fewer));
  std::vector<GeneratedFile> files;
  for (const auto& f : partial.files)
    if (f.name.find(".test.") == std::string::npos) files.push_back(f);
  for (const auto& f : full.files)
    if (f.name.find(".test.") != std::string::npos) files.push_back(f);
  auto results = run_tests(load_files(files, /*enforce=*/true), node());
  std::vector<std::string> failed;
  for (const auto& r : results)
    if (!r.passed) failed.push_back(r.case_name);
  // web -> db is caught on both sides: web's egress and db's ingress (which names its local clients, cron only now).
  EXPECT_THAT(failed, ::testing::UnorderedElementsAre("web -> db:5432/tcp", "web -> db:5432/tcp", "198.51.100.7 -> api:8443/tcp"));
}

Verdict verdict(const Ir& ir, const Endpoint& from, const Endpoint& to, uint16_t port, Protocol proto = Protocol::Tcp) {
  return evaluate_connection(ir, from, to, proto, port);
}

TEST(PolicyGenerate, EnforcedPoliciesAllowOnlyWhatWasObserved) {
  auto g = must_generate(topology(observed_edges()));
  auto c = compile(load_files(g.files, true), node());
  ASSERT_TRUE(c.ok()) << diag_text(c.diagnostics);
  const Ir& ir = *c.ir;
  Endpoint web_proc{std::nullopt, "/system.slice/web.service", true};
  Endpoint cron_proc{std::nullopt, "/system.slice/cron.service", true};
  Endpoint db_proc{std::nullopt, "/system.slice/db.service", true};
  auto ip = [](const char* a) { return Endpoint{IpAddr::parse(a), "", false}; };
  auto from_ip = [](const char* a) { return Endpoint{IpAddr::parse(a), "", false}; };

  EXPECT_EQ(verdict(ir, web_proc, ip("127.0.0.1"), 5432), Verdict::Allow);
  EXPECT_EQ(verdict(ir, web_proc, db_proc, 5432), Verdict::Allow);
  EXPECT_EQ(verdict(ir, cron_proc, db_proc, 5432), Verdict::Allow);
  EXPECT_EQ(verdict(ir, web_proc, ip("127.0.0.1"), 5433), Verdict::Deny);  // only ever refused: not allowed
  EXPECT_EQ(verdict(ir, web_proc, ip("93.184.216.34"), 443), Verdict::Allow);
  EXPECT_EQ(verdict(ir, web_proc, ip("93.184.216.35"), 443), Verdict::Deny);
  EXPECT_EQ(verdict(ir, web_proc, ip("93.184.216.34"), 80), Verdict::Deny);
  EXPECT_EQ(verdict(ir, cron_proc, ip("93.184.216.34"), 443), Verdict::Deny);
  // Ingress to the host processes, matched by their listening ports.
  EXPECT_EQ(verdict(ir, from_ip("192.0.2.77"), db_proc, 5432), Verdict::Deny);
  EXPECT_EQ(verdict(ir, from_ip("127.0.0.1"), db_proc, 5432), Verdict::Deny);  // a local process that is neither web nor cron
  EXPECT_EQ(verdict(ir, from_ip("192.0.2.77"), web_proc, 80), Verdict::Allow);  // whole office network
  EXPECT_EQ(verdict(ir, from_ip("198.18.0.1"), web_proc, 80), Verdict::Deny);
  EXPECT_EQ(verdict(ir, from_ip("2001:db8::5"), web_proc, 80), Verdict::Allow);
  EXPECT_EQ(verdict(ir, from_ip("2001:db8::6"), web_proc, 80), Verdict::Deny);
  // Pods, on FORWARD: both ends' policies apply.
  EXPECT_EQ(verdict(ir, ip("10.244.0.5"), ip("10.244.0.6"), 6379), Verdict::Allow);
  EXPECT_EQ(verdict(ir, ip("10.244.0.5"), ip("10.244.0.6"), 6380), Verdict::Deny);
  EXPECT_EQ(verdict(ir, ip("10.244.0.6"), ip("10.244.0.5"), 8443), Verdict::Deny);  // cache never called api
  EXPECT_EQ(verdict(ir, ip("198.51.100.7"), ip("10.244.0.5"), 8443), Verdict::Allow);
  EXPECT_EQ(verdict(ir, ip("198.51.100.8"), ip("10.244.0.5"), 8443), Verdict::Deny);
  EXPECT_EQ(verdict(ir, ip("10.244.0.5"), ip("10.244.0.10"), 53, Protocol::Udp), Verdict::Allow);
  // DNAT: the filter table sees the backends, not the ClusterIP.
  EXPECT_EQ(verdict(ir, ip("10.244.0.5"), ip("10.244.1.7"), 8080), Verdict::Allow);
  EXPECT_EQ(verdict(ir, ip("10.244.0.5"), ip("10.244.1.9"), 8080), Verdict::Deny);
}

TEST(PolicyGenerate, PolicyTextIsReadableAndStable) {
  auto edges = observed_edges();
  auto g = must_generate(topology(edges));
  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(edges.begin(), edges.end(), rng);
    EXPECT_EQ(must_generate(topology(edges)).stream(), g.stream()) << "output depends on edge order";
  }
  EXPECT_EQ(file_text(g, "web.yaml"), R"(# Generated by `hostscope policy generate` from the topology taken at 2024-05-01T12:00:06.000000000Z.
# Allows exactly the observed connections; everything else is denied. Review, then set `mode: enforce`.
# left out: web -> db port 5433/tcp: never established (4 failed); not allowed
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata:
  name: web
subject:
  service: "web"
mode: audit
default:
  egress: deny
  ingress: deny
egress:
  # to external:93.184.216.34: 3 connections
  - action: allow
    protocol: tcp
    ports: [443]
    peers:
      - cidr: "93.184.216.34"
    comment: "observed 3 connections"
  # to db: 40 connections
  - action: allow
    protocol: tcp
    ports: [5432]
    peers:
      - service: "db"
    comment: "observed 40 connections"
  # to shop/api: 9 connections
  - action: allow
    protocol: tcp
    ports: [8443]
    peers:
      - service: "api"
    comment: "observed 9 connections"
ingress:
  # from network:office: 100 connections
  # from unidentified process at 10.0.0.9: 5 connections
  # from external:2001:db8::5: 6 connections
  - action: allow
    protocol: tcp
    ports: [80]
    peers:
      - network: "office"
      - cidr: "10.0.0.9"
      - cidr: "2001:db8::5"
    comment: "observed 111 connections"
)");
}

TEST(PolicyGenerate, GoldenPolicyAndTest) {
  auto g = must_generate(topology(observed_edges()));
  EXPECT_EQ(file_text(g, "shop-cache.yaml"), R"(# Generated by `hostscope policy generate` from the topology taken at 2024-05-01T12:00:06.000000000Z.
# Allows exactly the observed connections; everything else is denied. Review, then set `mode: enforce`.
apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata:
  name: shop-cache
subject:
  service: "cache"
  namespace: "shop"
mode: audit
default:
  egress: deny
  ingress: deny
ingress:
  # from shop/api: 8 connections
  - action: allow
    protocol: tcp
    ports: [6379]
    peers:
      - service: "api"
    comment: "observed 8 connections"
)");
  EXPECT_EQ(file_text(g, "shop-cache.test.yaml"), R"(# Generated by `hostscope policy generate`: every connection observed for policy shop-cache stays allowed.
# `mode: audit` never blocks, so these cases matter once the policy is enforced.
apiVersion: hostscope.io/v1
kind: PolicyTest
metadata:
  name: shop-cache
cases:
  # observed 8 connections
  - {from: "api", to: "cache", port: 6379, protocol: tcp, expect: allow}
)");
  auto cron = file_text(g, "cron.yaml");
  EXPECT_THAT(cron, HasSubstr("  # ingress: not restricted; no listening ports or addresses are known for this service\n"));
  auto web_test = file_text(g, "web.test.yaml");
  // api's ingress names web by its cgroups, so the evaluator decides web -> api too.
  EXPECT_THAT(web_test, ::testing::Not(HasSubstr("# not checked:")));
  EXPECT_THAT(web_test, HasSubstr("  - {from: \"web\", to: \"api\", port: 8443, protocol: tcp, expect: allow}\n"));
  EXPECT_THAT(web_test, HasSubstr("  - {from: \"web\", to: \"db\", port: 5432, protocol: tcp, expect: allow}\n"));
  auto api = file_text(g, "shop-api.yaml");
  EXPECT_THAT(api, HasSubstr("#   note: dialled 10.96.0.20:80 (DNAT); backends may change\n"));
  EXPECT_THAT(api, HasSubstr("    ports: [8080]\n    peers:\n      - cidr: \"10.244.1.7\"\n      - cidr: \"10.244.1.8\"\n"));
}

// Issue 19: one rule per (protocol, peer set) listing its ports, consecutive runs as ranges, instead of one rule per
// port; every port is in exactly one rule, so nothing shadows and the set still lints and its tests pass.
TEST(PolicyGenerate, PortsWithTheSamePeersShareOneRule) {
  // A pod (FORWARD, matched by address) so every port is enforced, not only the catalogued listening ones.
  auto api = [] { return svc("api", "shop", "10.244.0.5"); };
  std::vector<json> edges;
  for (int p : {8000, 8001, 8002, 8003, 8004, 9000, 9001}) edges.push_back(edge(ext("198.51.100.7"), api(), p, 1));
  edges.push_back(edge(ext("198.51.100.8"), api(), 8006, 1));         // other peer: its own rule
  edges.push_back(edge(ext("198.51.100.7"), api(), 8007, 1));         // same peer, not adjacent
  edges.push_back(edge(ext("198.51.100.7"), api(), 8002, 1, "udp"));  // other protocol
  auto g = must_generate(topology(edges));
  auto text = file_text(g, "shop-api.yaml");
  EXPECT_THAT(text, HasSubstr("    protocol: tcp\n    ports: [\"8000-8004\", 8007, 9000, 9001]\n    peers:\n      - cidr: \"198.51.100.7\"\n"));
  EXPECT_THAT(text, HasSubstr("    protocol: tcp\n    ports: [8006]\n    peers:\n      - cidr: \"198.51.100.8\"\n"));
  EXPECT_THAT(text, HasSubstr("    protocol: udp\n    ports: [8002]\n"));
  auto loaded = load_files(g.files, /*enforce=*/true);
  ASSERT_EQ(loaded.set.policies.size(), 1u);
  EXPECT_EQ(loaded.set.policies[0].ingress.size(), 3u);
  auto report = lint(loaded, node());
  EXPECT_TRUE(report.diagnostics.empty()) << diag_text(report.diagnostics) << text;
  auto results = run_tests(loaded, node());
  EXPECT_EQ(results.size(), 10u);
  for (const auto& r : results) EXPECT_TRUE(r.passed) << r.case_name << ": " << r.detail;
  auto c = compile(loaded, node());
  ASSERT_TRUE(c.ok()) << diag_text(c.diagnostics);
  auto ip = [](const char* a) { return Endpoint{IpAddr::parse(a), "", false}; };
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 8003), Verdict::Allow);
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 9001), Verdict::Allow);
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 8005), Verdict::Deny);  // not observed, inside no range
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 8006), Verdict::Deny);  // that port's peer is .8
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.8"), ip("10.244.0.5"), 8006), Verdict::Allow);
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.8"), ip("10.244.0.5"), 8003), Verdict::Deny);
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 8001, Protocol::Udp), Verdict::Deny);
  EXPECT_EQ(verdict(*c.ir, ip("198.51.100.7"), ip("10.244.0.5"), 8002, Protocol::Udp), Verdict::Allow);
}

// Peer grouping is conservative: two or more observed addresses on one port inside a catalogued network (or service)
// become that name; a single address, or addresses sharing only a /24 nobody named, stay addresses.
TEST(PolicyGenerate, AddressesInsideACataloguedNameBecomeTheName) {
  Context ctx = node();
  ctx.networks["lab"] = {"198.18.0.0/15"};
  ctx.networks["lab-rack"] = {"198.18.5.0/28"};  // narrower: wins for the addresses it covers
  std::vector<json> edges = {
      edge(ext("198.18.5.1"), svc("web", "", "10.0.0.1"), 22, 1),  edge(ext("198.18.5.2"), svc("web", "", "10.0.0.1"), 22, 1),
      edge(ext("198.18.9.9"), svc("web", "", "10.0.0.1"), 22, 1),  // alone in lab outside the rack: stays an address
      edge(ext("198.51.100.1"), svc("web", "", "10.0.0.1"), 22, 1),  edge(ext("198.51.100.2"), svc("web", "", "10.0.0.1"), 22, 1),
      edge(ext("198.18.5.3"), svc("web", "", "10.0.0.1"), 23, 1),  // alone on its port
  };
  auto g = must_generate(topology(edges), ctx);
  auto web = file_text(g, "web.yaml");
  EXPECT_THAT(web, HasSubstr("    ports: [22]\n    peers:\n      - network: \"lab-rack\"\n      - cidr: \"198.18.9.9\"\n"
                             "      - cidr: \"198.51.100.1\"\n      - cidr: \"198.51.100.2\"\n"));
  EXPECT_THAT(web, HasSubstr("#   note: 2 observed addresses inside network lab-rack are allowed as `network: lab-rack`\n"));
  EXPECT_THAT(web, HasSubstr("    ports: [23]\n    peers:\n      - cidr: \"198.18.5.3\"\n"));
  auto loaded = load_files(g.files, /*enforce=*/true);
  auto report = lint(loaded, ctx);
  EXPECT_TRUE(report.diagnostics.empty()) << diag_text(report.diagnostics) << web;
  for (const auto& r : run_tests(loaded, ctx)) EXPECT_TRUE(r.passed) << r.case_name << ": " << r.detail;
  ASSERT_EQ(std::count_if(g.notes.begin(), g.notes.end(), [](const Note& n) { return n.kind.find("catalogued network") != std::string::npos; }), 1);
}

// Issue 19: a local service reached over loopback (127.0.0.1, ::1) is named, never written as `cidr: 127.0.0.1` /
// `cidr: ::1`, which would allow every local process on that port. Egress names the server (its listening ports at a
// local address), ingress the client (its cgroups, judged on OUTPUT); the set lints cleanly, its tests name the
// services and pass in audit and enforce mode, and once enforced only the named local processes get through.
TEST(PolicyGenerate, LocalServicePeersOverLoopbackAreNamedNotAddresses) {
  std::vector<json> edges = {
      edge(svc("web", "", "127.0.0.1"), svc("db", "", "127.0.0.1"), 5432, 40),  // IPv4 loopback
      edge(svc("cron", "", "::1"), svc("web", "", "::1"), 80, 3),                // IPv6 loopback
      edge(svc("web", "", "::1"), svc("db", "", "::1"), 5432, 2),
  };
  auto g = must_generate(topology(edges));
  for (const auto& f : g.files) {
    EXPECT_THAT(f.text, ::testing::Not(HasSubstr("127.0.0.1"))) << f.name << ":\n" << f.text;
    EXPECT_THAT(f.text, ::testing::Not(HasSubstr("::1"))) << f.name << ":\n" << f.text;
    EXPECT_THAT(f.text, ::testing::Not(HasSubstr("cidr:"))) << f.name << ":\n" << f.text;
  }
  const std::string web = file_text(g, "web.yaml"), db = file_text(g, "db.yaml"), cron = file_text(g, "cron.yaml");
  EXPECT_THAT(web, HasSubstr("egress:\n  # to db: 42 connections\n  - action: allow\n    protocol: tcp\n    ports: [5432]\n"
                             "    peers:\n      - service: \"db\"\n"));
  EXPECT_THAT(web, HasSubstr("ingress:\n  # from cron: 3 connections\n  - action: allow\n    protocol: tcp\n    ports: [80]\n"
                             "    peers:\n      - service: \"cron\"\n"));
  EXPECT_THAT(db, HasSubstr("    ports: [5432]\n    peers:\n      - service: \"web\"\n"));
  EXPECT_THAT(cron, HasSubstr("    ports: [80]\n    peers:\n      - service: \"web\"\n"));
  for (const auto& n : g.notes) EXPECT_EQ(n.kind.find("local service"), std::string::npos) << n.str();
  EXPECT_THAT(file_text(g, "web.test.yaml"), HasSubstr("  - {from: \"web\", to: \"db\", port: 5432, protocol: tcp, expect: allow}\n"));
  EXPECT_THAT(file_text(g, "web.test.yaml"), HasSubstr("  - {from: \"cron\", to: \"web\", port: 80, protocol: tcp, expect: allow}\n"));
  EXPECT_THAT(file_text(g, "db.test.yaml"), HasSubstr("  - {from: \"web\", to: \"db\", port: 5432, protocol: tcp, expect: allow}\n"));

  for (bool enforce : {false, true}) {
    auto loaded = load_files(g.files, enforce);
    auto report = lint(loaded, node());
    EXPECT_TRUE(report.diagnostics.empty()) << diag_text(report.diagnostics) << g.stream();
    auto results = run_tests(loaded, node());
    EXPECT_EQ(results.size(), 4u);
    for (const auto& r : results) EXPECT_TRUE(r.passed) << r.loc.str() << " " << r.case_name << ": " << r.detail;
  }

  auto c = compile(load_files(g.files, true), node());
  ASSERT_TRUE(c.ok()) << diag_text(c.diagnostics);
  const Ir& ir = *c.ir;
  for (const char* lo : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(lo);
    auto at = [&](const char* cgroup) { return Endpoint{IpAddr::parse(lo), cgroup, true}; };
    EXPECT_EQ(verdict(ir, at("/system.slice/web.service"), at("/system.slice/db.service"), 5432), Verdict::Allow);
    EXPECT_EQ(verdict(ir, at("/system.slice/cron.service"), at("/system.slice/web.service"), 80), Verdict::Allow);
    // Another local process on the same port, also at the loopback address: `cidr: 127.0.0.1` let it through.
    EXPECT_EQ(verdict(ir, at("/system.slice/other.service"), at("/system.slice/db.service"), 5432), Verdict::Deny);
    EXPECT_EQ(verdict(ir, at("/system.slice/cron.service"), at("/system.slice/db.service"), 5432), Verdict::Deny);
    EXPECT_EQ(verdict(ir, Endpoint{IpAddr::parse(lo), "", false}, at("/system.slice/web.service"), 80), Verdict::Deny);
    // web's egress allows db's listening port at a local address only, not the same port elsewhere.
    EXPECT_EQ(verdict(ir, at("/system.slice/web.service"), at(""), 5433), Verdict::Deny);
  }
  EXPECT_EQ(verdict(ir, Endpoint{std::nullopt, "/system.slice/web.service", true}, Endpoint{IpAddr::parse("192.0.2.5"), "", false}, 5432),
            Verdict::Deny);
  // Both families carry the local rules: ingress by the client's cgroup, egress by the server's port at a local address.
  for (const auto* t : {&ir.v4, &ir.v6}) {
    std::string text;
    for (const auto& l : render(*t).rules) text += l + "\n";
    EXPECT_THAT(text, HasSubstr(" -p tcp -m addrtype --src-type LOCAL -m cgroup --path \"/system.slice/cron.service\" -m tcp --dport 80 "));
    EXPECT_THAT(text, HasSubstr(" -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 5432 "));
  }
}

// A local service whose catalogued listening ports do not include the observed one cannot be named on egress (the
// name would not match the connection): its observed address is allowed, with a note saying why.
TEST(PolicyGenerate, LocalServerWithoutTheObservedPortFallsBackToItsAddressWithANote) {
  auto g = must_generate(topology({edge(svc("web", "", "127.0.0.1"), svc("db", "", "127.0.0.1"), 6432, 5)}));
  EXPECT_THAT(file_text(g, "web.yaml"), HasSubstr("    ports: [6432]\n    peers:\n      - cidr: \"127.0.0.1\"\n"));
  EXPECT_THAT(file_text(g, "db.yaml"), HasSubstr("    ports: [6432]\n    peers:\n      - service: \"web\"\n"));
  std::vector<std::string> local;
  for (const auto& n : g.notes)
    if (n.kind.rfind("local service allowed by its observed address", 0) == 0) local.push_back(n.text);
  EXPECT_THAT(local, ::testing::ElementsAre(HasSubstr("web -> db port 6432/tcp (egress of web): local service db is allowed as its observed "
                                                      "address 127.0.0.1: port 6432 is not among its catalogued listening ports")));
  // db's case names web, whose egress allows db only by that address: the evaluator cannot decide it (a comment).
  EXPECT_THAT(file_text(g, "web.test.yaml"), HasSubstr("  - {from: \"web\", to: \"127.0.0.1\", port: 6432, protocol: tcp, expect: allow}\n"));
  auto loaded = load_files(g.files, true);
  EXPECT_TRUE(lint(loaded, node()).diagnostics.empty());
  auto results = run_tests(loaded, node());
  EXPECT_EQ(results.size(), 1u);
  for (const auto& r : results) EXPECT_TRUE(r.passed) << r.case_name << ": " << r.detail;
}

TEST(PolicyGenerate, NotesAreSummarisedByKindAndCapped) {
  std::vector<Note> notes;
  for (int i = 0; i < 5; ++i) notes.push_back({"b kind", fmt::format("edge {}", i)});
  notes.push_back({"a kind", "only"});
  std::sort(notes.begin(), notes.end());
  EXPECT_THAT(note_summary(notes, "", 3, 200),
              ::testing::ElementsAre("note: a kind (1): only", "note: b kind (5): edge 0; edge 1; edge 2; ... 2 more"));
  std::vector<Note> many;
  for (int k = 0; k < 300; ++k) many.push_back({fmt::format("kind {:03}", k), "x"});
  auto lines = note_summary(many, "", 3, 200);
  ASSERT_EQ(lines.size(), 200u);
  EXPECT_EQ(lines.back(), "... 101 more (101 notes of 101 more kinds; see --notes-file)");
  EXPECT_EQ(note_summary(many, "all.txt", 3, 200).back(), "... 101 more (101 notes of 101 more kinds; see all.txt)");
  many.resize(200);  // exactly the cap: no "more" line
  EXPECT_EQ(note_summary(many, "", 3, 200).back(), "note: kind 199 (1): x");
  EXPECT_EQ(notes_text(notes).substr(0, 14), "a kind: only\nb");
}

TEST(PolicyGenerate, NamesAreValidUniqueAndQuoted) {
  Context ctx;
  std::vector<json> edges = {
      edge(svc("Weird Name!", "", "10.0.0.1"), ext("192.0.2.1"), 80, 1),
      edge(svc("weird-name", "", "10.0.0.2"), ext("192.0.2.1"), 80, 1),
      edge(svc(std::string(80, 'x'), "ns", "10.0.0.3"), ext("192.0.2.1"), 80, 1),
      edge(svc("a\"b\\c\nd", "", "10.0.0.4"), ext("192.0.2.1"), 80, 1),
      edge(svc("\xff\xfe", "", "10.0.0.5"), ext("192.0.2.1"), 80, 1),
  };
  auto g = must_generate(topology(edges), ctx);
  auto loaded = load_files(g.files);
  EXPECT_FALSE(has_errors(lint(loaded, ctx).diagnostics)) << diag_text(lint(loaded, ctx).diagnostics);
  ASSERT_EQ(loaded.set.policies.size(), 5u);
  std::set<std::string> services;
  for (const auto& p : loaded.set.policies) {
    EXPECT_LE(p.name.size(), 63u);
    services.insert(p.subject.attrs.at("service"));
  }
  EXPECT_TRUE(services.count("Weird Name!"));
  EXPECT_TRUE(services.count("weird-name"));
  EXPECT_TRUE(services.count("a\"b\\c\nd"));
  EXPECT_TRUE(services.count("\xEF\xBF\xBD\xEF\xBF\xBD"));  // invalid UTF-8 became U+FFFD
  // Not in the catalogue: no test can be evaluated, so none is written.
  EXPECT_EQ(g.cases, 0u);
}

TEST(PolicyGenerate, RefusesBadTopology) {
  auto err = [](const json& j) {
    auto g = generate(j, node());
    return g ? std::string("ok") : g.error().str();
  };
  auto base = topology({edge(svc("web", "", "127.0.0.1"), ext("192.0.2.1"), 80, 1)});
  EXPECT_EQ(err(base), "ok");
  auto j = base;
  j["schema"] = "hostscope.topology/v2";
  EXPECT_THAT(err(j), HasSubstr("$.schema: unsupported schema 'hostscope.topology/v2'"));
  j = base;
  j.erase("edges");
  EXPECT_THAT(err(j), HasSubstr("$.edges: missing"));
  j = base;
  j["edges"][0]["port"] = 70000;
  EXPECT_THAT(err(j), HasSubstr("$.edges[0].port: expected an integer 0..65535"));
  j = base;
  j["edges"][0]["client"]["kind"] = "pod";
  EXPECT_THAT(err(j), HasSubstr("$.edges[0].client.kind: unknown node kind 'pod'"));
  j = base;
  j["edges"][0]["protocol"] = "sctp";
  EXPECT_THAT(err(j), HasSubstr("$.edges[0].protocol: unknown protocol 'sctp'"));
  j = base;
  j["edges"][0]["connections"] = -1;
  EXPECT_THAT(err(j), HasSubstr("$.edges[0].connections: expected an integer"));
  j = base;
  j["edges"][0]["actual"] = {"not-an-address"};
  EXPECT_THAT(err(j), HasSubstr("$.edges[0].actual[0]: expected \"address:port\""));
  EXPECT_THAT(err(json::array()), HasSubstr("expected an object"));

  EXPECT_FALSE(parse_topology_text("{").has_value());
  auto deep = parse_topology_text(std::string(100000, '[') + std::string(100000, ']'));
  ASSERT_FALSE(deep.has_value());
  EXPECT_THAT(deep.error().str(), HasSubstr("nested deeper than 16"));
  EXPECT_TRUE(parse_topology_text(R"({"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})").has_value());  // brackets in strings do not count
  auto big = parse_topology_text(std::string(kMaxTopologyBytes + 1, ' '));
  ASSERT_FALSE(big.has_value());
  EXPECT_THAT(big.error().str(), HasSubstr("the limit is"));
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-polgen-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

TEST(PolicyGenerate, WritesADirectoryThatLoadsAsOneSet) {
  TempDir tmp;
  auto g = must_generate(topology(observed_edges()));
  auto dir = (tmp.path / "policies").string();
  ASSERT_TRUE(write_generated(g, dir, false).has_value());
  auto loaded = load_dir(dir);
  EXPECT_TRUE(lint(loaded, node()).diagnostics.empty()) << diag_text(lint(loaded, node()).diagnostics);
  EXPECT_EQ(loaded.set.policies.size(), 5u);
  EXPECT_EQ(loaded.set.tests.size(), 5u);
  auto again = write_generated(g, dir, false);
  ASSERT_FALSE(again.has_value());
  EXPECT_THAT(again.error().str(), HasSubstr("already exists; pass --force"));
  EXPECT_TRUE(write_generated(g, dir, true).has_value());
  // The stdout form is one valid policy file holding the same set.
  auto one = load_text(g.stream(), "all.yaml");
  EXPECT_TRUE(lint(one, node()).diagnostics.empty()) << diag_text(lint(one, node()).diagnostics);
  EXPECT_EQ(one.set.policies.size(), 5u);
}

// A fake agent on a Unix socket: records the request line, answers with `reply`.
class FakeAgent {
 public:
  FakeAgent(const fs::path& path, std::string reply) : path_(path.string()) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path_.c_str());
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(listen(fd_, 1), 0);
    thread_ = std::thread([this, reply = std::move(reply)] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char ch;
      while (read(c, &ch, 1) == 1 && ch != '\n') request_ += ch;
      for (size_t off = 0; off < reply.size();) {
        ssize_t n = write(c, reply.data() + off, reply.size() - off);
        if (n <= 0) break;
        off += size_t(n);
      }
      close(c);
    });
  }
  ~FakeAgent() {
    shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  std::string request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::string request_;
};

TEST(PolicyGenerate, FetchesTopologyFromTheAgentSocket) {
  TempDir tmp;
  auto t = topology(observed_edges());
  {
    FakeAgent agent(tmp.path / "ok.sock", json{{"ok", true}, {"result", t}}.dump() + "\n");
    auto got = fetch_topology(agent.path(), 5000);
    ASSERT_TRUE(got.has_value()) << got.error().str();
    EXPECT_EQ(*got, t);
    EXPECT_EQ(agent.request(), R"({"method":"topology","params":{}})");
  }
  {
    FakeAgent agent(tmp.path / "err.sock", R"({"ok":false,"error":"topology is disabled"})" "\n");
    auto got = fetch_topology(agent.path(), 5000);
    ASSERT_FALSE(got.has_value());
    EXPECT_EQ(got.error().str(), "agent topology request failed: topology is disabled");
  }
  {
    FakeAgent agent(tmp.path / "cut.sock", R"({"ok":true,"result":{)");
    auto got = fetch_topology(agent.path(), 5000);
    ASSERT_FALSE(got.has_value());
    EXPECT_THAT(got.error().str(), HasSubstr("closed before a complete topology reply"));
  }
  auto none = fetch_topology((tmp.path / "absent.sock").string(), 1000);
  ASSERT_FALSE(none.has_value());
  EXPECT_THAT(none.error().str(), HasSubstr("connect failed"));
}

int run_cli(std::vector<std::string> args) { return cli_test::run_cli(std::move(args), node); }

TEST(PolicyGenerate, CliGeneratesThenLintAndTestPass) {
  TempDir tmp;
  auto topo = tmp.path / "topology.json";
  std::ofstream(topo) << topology(observed_edges()).dump(2);
  auto out = (tmp.path / "out").string();
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "-o", out}), 0);
  EXPECT_TRUE(fs::exists(fs::path(out) / "web.yaml"));
  EXPECT_EQ(run_cli({"policy", "lint", out}), 0);
  EXPECT_EQ(run_cli({"policy", "test", out}), 0);
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "-o", out}), 1);  // exists, no --force
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "-o", out, "--force"}), 0);
  auto notes = tmp.path / "notes.txt";
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "-o", out, "--force", "--notes-file", notes.string()}), 0);
  std::stringstream all;
  all << std::ifstream(notes).rdbuf();
  EXPECT_THAT(all.str(), HasSubstr("edge left out: web -> db port 5433/tcp: never established (4 failed); not allowed\n"));
  EXPECT_THAT(all.str(), HasSubstr("DNAT: the backends conntrack reported are allowed, not the dialled address: "));
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "--notes-file", (tmp.path / "no" / "dir.txt").string()}), 1);
  EXPECT_EQ(run_cli({"policy", "generate", "--from", (tmp.path / "missing.json").string()}), 2);
  std::ofstream(tmp.path / "bad.json") << R"({"schema":"nope","edges":[]})";
  EXPECT_EQ(run_cli({"policy", "generate", "--from", (tmp.path / "bad.json").string()}), 1);
  EXPECT_EQ(run_cli({"policy", "generate", "--from", topo.string(), "--socket", "/x.sock"}), static_cast<int>(CLI::ExitCodes::ExcludesError));  // CLI11: excludes
}

}  // namespace
}  // namespace hostscope::policy
