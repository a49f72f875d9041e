// `policy export`: a policy set as Kubernetes NetworkPolicy / CiliumNetworkPolicy. An exactly expressible set comes
// out as the expected objects (parsed back with yaml-cpp) and exit 0; every element the targets cannot express gets
// its note (stderr and a comment on the object) and exit 3; a set that does not lint exports nothing (exit 1).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "policy/export.h"
#include "policy/loader.h"
#include "support/policy_cli.h"

namespace hostscope::policy {
namespace {
namespace fs = std::filesystem;
using ::testing::HasSubstr;
using cli_test::Captured;

Context catalogue() {
  Context c;
  c.services.push_back({"web", {}, {"10.244.0.5", "fd00::5"}, {}, "", "shop", "web", ""});
  c.services.push_back({"api", {}, {"10.244.0.6"}, {}, "", "shop", "api", ""});
  c.services.push_back({"db", {}, {"10.244.1.3"}, {}, "", "data", "db", ""});
  c.services.push_back({"backup", {"/system.slice/backup.service"}, {}, {}, "", "", "", "/usr/bin/backup"});
  c.networks["office"] = {"192.0.2.0/24", "2001:db8::/32"};
  return c;
}

const std::string kHead = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: web}\n";

// Expressible exactly in both formats: a namespaced pod subject, default deny both ways, allow rules with CIDR,
// network and same- and cross-namespace service peers, a port range, tcp+udp ports, and a protocol without ports.
const std::string kExact = kHead + R"(subject: {service: web, namespace: shop}
failsafe: false
default: {ingress: deny, egress: deny}
ingress:
  - action: allow
    peers: [{cidr: 10.0.0.0/8}, {service: api}]
    ports: [80, "8000-8080"]
    protocol: tcp
egress:
  - action: allow
    peers: [{service: db}, {network: office}]
    ports: [5432]
  - action: allow
    protocol: udp
)";

// A namespaced pod subject whose egress is denied by default; failsafes off.
const std::string kWebEgressDeny = kHead + "subject: {service: web, namespace: shop}\nfailsafe: false\ndefault: {egress: deny}\n";

struct Exported {
  LoadResult loaded;
  ExportResult result;
  std::vector<YAML::Node> docs;
  std::string notes;  // every note, one a line
};

Exported run_export(const std::string& yaml, ExportFormat f, const std::string& label_key = kDefaultExportLabelKey) {
  Exported e{load_text(yaml, "web.yaml"), {}, {}, {}};
  EXPECT_FALSE(has_errors(e.loaded.diagnostics));
  e.result = export_policies(e.loaded.set, catalogue(), {f, label_key});
  e.docs = YAML::LoadAll(e.result.stream());
  for (const auto& n : e.result.notes) e.notes += n.str() + "\n";
  return e;
}

// The spec of the one object of an exact export of kExact, after checking the rest of the object.
YAML::Node exact_spec(const Exported& e, const std::string& api_version, const std::string& kind) {
  EXPECT_TRUE(e.result.exact()) << e.notes;
  if (e.docs.size() != 1) {
    ADD_FAILURE() << "expected one object, got " << e.docs.size() << ":\n" << e.result.stream();
    return YAML::Node(YAML::NodeType::Map);
  }
  const auto& d = e.docs[0];
  EXPECT_EQ(d["apiVersion"].as<std::string>(), api_version);
  EXPECT_EQ(d["kind"].as<std::string>(), kind);
  EXPECT_EQ(d["metadata"]["name"].as<std::string>(), "web");
  EXPECT_EQ(d["metadata"]["namespace"].as<std::string>(), "shop");
  return d["spec"];
}

TEST(PolicyExport, KubernetesExact) {
  const auto spec = exact_spec(run_export(kExact, ExportFormat::Kubernetes), "networking.k8s.io/v1", "NetworkPolicy");
  EXPECT_EQ(spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(), "web");
  EXPECT_EQ(spec["policyTypes"].as<std::vector<std::string>>(), (std::vector<std::string>{"Ingress", "Egress"}));

  ASSERT_EQ(spec["ingress"].size(), 1u);
  const auto in = spec["ingress"][0];
  ASSERT_EQ(in["from"].size(), 2u);
  EXPECT_EQ(in["from"][0]["ipBlock"]["cidr"].as<std::string>(), "10.0.0.0/8");
  EXPECT_EQ(in["from"][1]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(), "api");
  EXPECT_FALSE(in["from"][1]["namespaceSelector"]) << "same namespace: no namespaceSelector";
  ASSERT_EQ(in["ports"].size(), 2u);
  EXPECT_EQ(in["ports"][0]["protocol"].as<std::string>(), "TCP");
  EXPECT_EQ(in["ports"][0]["port"].as<int>(), 80);
  EXPECT_FALSE(in["ports"][0]["endPort"]);
  EXPECT_EQ(in["ports"][1]["port"].as<int>(), 8000);
  EXPECT_EQ(in["ports"][1]["endPort"].as<int>(), 8080);

  ASSERT_EQ(spec["egress"].size(), 2u);
  const auto out = spec["egress"][0];
  ASSERT_EQ(out["to"].size(), 3u);  // the network's two CIDRs, then the service
  EXPECT_EQ(out["to"][0]["ipBlock"]["cidr"].as<std::string>(), "192.0.2.0/24");
  EXPECT_EQ(out["to"][1]["ipBlock"]["cidr"].as<std::string>(), "2001:db8::/32");
  EXPECT_EQ(out["to"][2]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(), "db");
  EXPECT_EQ(out["to"][2]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as<std::string>(), "data");
  // Ports without a protocol are tcp and udp in hostscope; Kubernetes would read a missing protocol as TCP only.
  ASSERT_EQ(out["ports"].size(), 2u);
  EXPECT_EQ(out["ports"][0]["protocol"].as<std::string>(), "TCP");
  EXPECT_EQ(out["ports"][1]["protocol"].as<std::string>(), "UDP");
  EXPECT_EQ(out["ports"][1]["port"].as<int>(), 5432);
  // Any peer, every udp port: no `to`, a port entry with the protocol only.
  const auto udp = spec["egress"][1];
  EXPECT_FALSE(udp["to"]);
  ASSERT_EQ(udp["ports"].size(), 1u);
  EXPECT_EQ(udp["ports"][0]["protocol"].as<std::string>(), "UDP");
  EXPECT_FALSE(udp["ports"][0]["port"]);
}

TEST(PolicyExport, CiliumExact) {
  const auto spec = exact_spec(run_export(kExact, ExportFormat::Cilium, "app"), "cilium.io/v2", "CiliumNetworkPolicy");
  EXPECT_EQ(spec["endpointSelector"]["matchLabels"]["app"].as<std::string>(), "web");
  EXPECT_FALSE(spec["ingressDeny"]);
  EXPECT_FALSE(spec["egressDeny"]);

  // CIDR and endpoint peers are separate rules with the same ports.
  ASSERT_EQ(spec["ingress"].size(), 2u);
  EXPECT_EQ(spec["ingress"][0]["fromCIDR"].as<std::vector<std::string>>(), (std::vector<std::string>{"10.0.0.0/8"}));
  EXPECT_EQ(spec["ingress"][1]["fromEndpoints"][0]["matchLabels"]["app"].as<std::string>(), "api");
  for (const auto& r : spec["ingress"]) {
    const auto ports = r["toPorts"][0]["ports"];
    ASSERT_EQ(ports.size(), 2u);
    EXPECT_EQ(ports[0]["port"].as<std::string>(), "80");
    EXPECT_EQ(ports[0]["port"].Tag(), "!") << "Cilium ports are strings: must be quoted";
    EXPECT_EQ(ports[0]["protocol"].as<std::string>(), "TCP");
    EXPECT_EQ(ports[1]["port"].as<std::string>(), "8000");
    EXPECT_EQ(ports[1]["endPort"].as<int>(), 8080);
  }

  ASSERT_EQ(spec["egress"].size(), 3u);
  EXPECT_EQ(spec["egress"][0]["toCIDR"].as<std::vector<std::string>>(), (std::vector<std::string>{"192.0.2.0/24", "2001:db8::/32"}));
  const auto db = spec["egress"][1]["toEndpoints"][0]["matchLabels"];
  EXPECT_EQ(db["app"].as<std::string>(), "db");
  EXPECT_EQ(db["k8s:io.kubernetes.pod.namespace"].as<std::string>(), "data");
  const auto db_ports = spec["egress"][1]["toPorts"][0]["ports"];
  ASSERT_EQ(db_ports.size(), 2u);
  EXPECT_EQ(db_ports[0]["protocol"].as<std::string>(), "TCP");
  EXPECT_EQ(db_ports[1]["protocol"].as<std::string>(), "UDP");
  EXPECT_EQ(spec["egress"][2]["toEntities"].as<std::vector<std::string>>(), (std::vector<std::string>{"all"}));
  EXPECT_EQ(spec["egress"][2]["toPorts"][0]["ports"][0]["port"].as<std::string>(), "0");  // every udp port
  EXPECT_EQ(spec["egress"][2]["toPorts"][0]["ports"][0]["protocol"].as<std::string>(), "UDP");
}

TEST(PolicyExport, DenyRulesThatCannotOverlapLaterAllowsAreExact) {
  // A deny on port 22 cannot match what the port-443 allow matches, so order does not matter: exact in both formats.
  const std::string y = kWebEgressDeny + R"(egress:
  - action: deny
    peers: [{cidr: 10.0.0.0/8}]
    ports: [22]
  - action: allow
    peers: [{cidr: 10.0.0.0/8}]
    ports: [443]
    protocol: tcp
)";
  auto k = run_export(y, ExportFormat::Kubernetes);
  EXPECT_TRUE(k.result.exact()) << k.notes;
  ASSERT_EQ(k.docs.size(), 1u);
  EXPECT_EQ(k.docs[0]["spec"]["policyTypes"].as<std::vector<std::string>>(), (std::vector<std::string>{"Egress"}));
  ASSERT_EQ(k.docs[0]["spec"]["egress"].size(), 1u);
  EXPECT_EQ(k.docs[0]["spec"]["egress"][0]["ports"][0]["port"].as<int>(), 443);
  EXPECT_FALSE(k.docs[0]["spec"]["ingress"]);

  auto c = run_export(y, ExportFormat::Cilium);
  EXPECT_TRUE(c.result.exact()) << c.notes;
  ASSERT_EQ(c.docs.size(), 1u);
  EXPECT_EQ(c.docs[0]["spec"]["egressDeny"][0]["toCIDR"][0].as<std::string>(), "10.0.0.0/8");
  EXPECT_EQ(c.docs[0]["spec"]["egressDeny"][0]["toPorts"][0]["ports"][0]["port"].as<std::string>(), "22");
  EXPECT_EQ(c.docs[0]["spec"]["egress"][0]["toPorts"][0]["ports"][0]["port"].as<std::string>(), "443");
  EXPECT_FALSE(c.docs[0]["spec"]["ingress"]);
}

TEST(PolicyExport, DenyBeforeAllowKubernetesLeavesTheAllowOutCiliumKeepsBoth) {
  const std::string y = kWebEgressDeny + R"(egress:
  - action: deny
    peers: [{cidr: 10.1.0.0/16}]
  - action: allow
    peers: [{cidr: 10.0.0.0/8}]
)";
  auto k = run_export(y, ExportFormat::Kubernetes);
  EXPECT_THAT(k.notes, HasSubstr("web.yaml:10:5: note: policy web: egress rule 2 (allow): egress rule 1 (deny) before it may deny"));
  ASSERT_EQ(k.docs.size(), 1u);
  EXPECT_FALSE(k.docs[0]["spec"]["egress"]) << "the allow must not be exported: it would allow what the deny denies";
  // Cilium's deny wins over any allow, which is what hostscope's order says here: exact.
  auto c = run_export(y, ExportFormat::Cilium);
  EXPECT_TRUE(c.result.exact()) << c.notes;
  EXPECT_EQ(c.docs[0]["spec"]["egressDeny"][0]["toCIDR"][0].as<std::string>(), "10.1.0.0/16");
  EXPECT_EQ(c.docs[0]["spec"]["egress"][0]["toCIDR"][0].as<std::string>(), "10.0.0.0/8");
}

TEST(PolicyExport, CiliumDefaultAllowWithDenyRulesAllowsAllEntities) {
  const std::string y = kHead + R"(subject: {service: web, namespace: shop}
failsafe: false
ingress:
  - action: deny
    peers: [{cidr: 198.51.100.0/24}]
)";
  auto c = run_export(y, ExportFormat::Cilium);
  EXPECT_TRUE(c.result.exact()) << c.notes;
  ASSERT_EQ(c.docs.size(), 1u);
  EXPECT_EQ(c.docs[0]["spec"]["ingress"][0]["fromEntities"][0].as<std::string>(), "all");
  EXPECT_EQ(c.docs[0]["spec"]["ingressDeny"][0]["fromCIDR"][0].as<std::string>(), "198.51.100.0/24");
  EXPECT_FALSE(c.docs[0]["spec"]["egress"]);
  // Kubernetes cannot deny: nothing left to export.
  auto k = run_export(y, ExportFormat::Kubernetes);
  EXPECT_TRUE(k.docs.empty());
  EXPECT_EQ(k.result.skipped, 1u);
  EXPECT_THAT(k.notes, HasSubstr("a NetworkPolicy can only allow"));
}

TEST(PolicyExport, DefaultDenyWithoutAllowRules) {
  const std::string y = kHead + "subject: {namespace: shop}\nfailsafe: false\ndefault: {ingress: deny}\n";
  auto k = run_export(y, ExportFormat::Kubernetes);
  EXPECT_TRUE(k.result.exact()) << k.notes;
  ASSERT_EQ(k.docs.size(), 1u);
  EXPECT_TRUE(k.docs[0]["spec"]["podSelector"].IsMap());
  EXPECT_EQ(k.docs[0]["spec"]["podSelector"].size(), 0u);  // every pod of the namespace
  EXPECT_EQ(k.docs[0]["spec"]["policyTypes"].as<std::vector<std::string>>(), (std::vector<std::string>{"Ingress"}));
  EXPECT_FALSE(k.docs[0]["spec"]["ingress"]);
  auto c = run_export(y, ExportFormat::Cilium);
  EXPECT_TRUE(c.result.exact()) << c.notes;
  ASSERT_EQ(c.docs[0]["spec"]["ingress"].size(), 1u);
  EXPECT_EQ(c.docs[0]["spec"]["ingress"][0].size(), 0u);  // `- {}`: default deny, nothing allowed
}

TEST(PolicyExport, PeersThatMatchNothingNeverBecomeAnyPeer) {
  const std::string y = kWebEgressDeny + R"(egress:
  - action: allow
    peers: []
    ports: [443]
)";
  for (auto f : {ExportFormat::Kubernetes, ExportFormat::Cilium}) {
    auto e = run_export(y, f);
    ASSERT_EQ(e.docs.size(), 1u);
    EXPECT_FALSE(e.docs[0]["spec"]["egress"] && e.docs[0]["spec"]["egress"][0]["ports"]) << e.result.stream();
    if (f == ExportFormat::Cilium) {
      EXPECT_EQ(e.docs[0]["spec"]["egress"][0].size(), 0u);
    }
  }
}

// One element the targets cannot express, the note it must produce, and whether the policy still yields an object.
struct Inexact {
  const char* what;
  std::string yaml;
  const char* note;
  bool exported;
  bool kubernetes = true, cilium = true;
};

const std::string kDeny = "failsafe: false\ndefault: {egress: deny}\n";

std::vector<Inexact> inexact_cases() {
  const std::string web = "subject: {service: web, namespace: shop}\n";
  return {
      {"cgroup subject", kHead + "subject: {cgroup: /system.slice/web.service}\n" + kDeny, "subject cgroup '/system.slice/web.service' names local processes", false},
      {"exe subject", kHead + "subject: {exe: /usr/bin/web}\n" + kDeny, "subject exe '/usr/bin/web' is a process attribute", false},
      {"go_module subject", kHead + "subject: {go_module: example.com/web}\n" + kDeny, "subject go_module 'example.com/web' is a process attribute", false},
      {"service and workload differ", kHead + "subject: {service: web, workload: other, namespace: shop}\n" + kDeny, "would both be label", false},
      {"default reject", kHead + web + "failsafe: false\ndefault: {egress: reject}\n", "egress: default reject becomes a silent drop", true},
      {"reject rule", kHead + web + kDeny + "egress:\n  - action: reject\n    peers: [{cidr: 10.0.0.0/8}]\n", "egress rule 1 (reject): reject becomes a silent drop",
       true},
      {"log rule", kHead + web + kDeny + "egress:\n  - action: log\n", "egress rule 1 (log):", true},
      {"audit mode", kHead + web + "mode: audit\n" + kDeny, "mode: audit has no", true},
      {"failsafe", kHead + web + "default: {egress: deny}\n", "egress: failsafe ports (udp/53", true},
      {"no namespace", kHead + "subject: {service: web}\n" + kDeny, "subject has no namespace", true},
      {"peer service without namespace", kHead + web + kDeny + "egress:\n  - action: allow\n    peers: [{service: backup}]\n",
       "the catalogue knows no namespace for service 'backup'", true},
      {"default allow, allow rules only", kHead + web + "failsafe: false\ndefault: {ingress: deny}\negress:\n  - action: allow\n    ports: [443]\n",
       "egress: the default is allow and no rule denies", true},
      {"default allow with a deny rule", kHead + web + "failsafe: false\ndefault: {ingress: deny}\negress:\n  - action: deny\n    ports: [25]\n",
       "a NetworkPolicy can only allow", true, true, false},
      {"deny before an overlapping allow", kHead + web + kDeny + "egress:\n  - action: deny\n    ports: [25]\n  - action: allow\n",
       "egress rule 2 (allow): egress rule 1 (deny) before it may deny", true, true, false},
      {"allow before an overlapping deny", kHead + web + kDeny + "egress:\n  - action: allow\n    peers: [{cidr: 10.0.0.0/8}]\n  - action: deny\n",
       "egress rule 2 (deny): Cilium deny rules take precedence over allow rules regardless of order, so this also denies what egress rule 1 (allow)",
       true, false, true},
  };
}

Captured capture_cli(std::vector<std::string> args) { return cli_test::capture_cli(std::move(args), catalogue); }

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/hs-export-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};

TEST(PolicyExportCli, EachInexpressibleElementHasItsNoteAndExit3) {
  for (const auto& c : inexact_cases()) {
    for (auto [format, applies] : {std::pair{"kubernetes", c.kubernetes}, {"cilium", c.cilium}}) {
      if (!applies) continue;
      SCOPED_TRACE(std::string(c.what) + " / " + format);
      TempDir d;
      d.write("web.yaml", c.yaml);
      auto r = capture_cli({"policy", "export", "--format", format, d.path.string()});
      EXPECT_EQ(r.code, 3) << r.err;
      EXPECT_THAT(r.err, HasSubstr(c.note));
      EXPECT_THAT(r.err, HasSubstr("not everything could be expressed exactly"));
      if (c.exported) {
        // The note is also a comment on the object it concerns.
        EXPECT_THAT(r.out, HasSubstr(std::string("# web.yaml:")));
        EXPECT_THAT(r.out, HasSubstr(c.note));
        EXPECT_EQ(YAML::LoadAll(r.out).size(), 1u);
      } else {
        EXPECT_EQ(r.out, "");
      }
    }
  }
}

TEST(PolicyExportCli, ExactSetExits0AndWritesOneFilePerObject) {
  TempDir d, out;
  d.write("web.yaml", kExact);
  d.write("db.yaml", R"(apiVersion: hostscope.io/v1
kind: NetworkPolicy
metadata: {name: db}
subject: {service: db, namespace: data}
failsafe: false
default: {ingress: deny}
ingress:
  - action: allow
    peers: [{service: web}]
    ports: [5432]
    protocol: tcp
)");
  auto r = capture_cli({"policy", "export", "--format", "kubernetes", d.path.string()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto docs = YAML::LoadAll(r.out);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0]["metadata"]["name"].as<std::string>(), "db");  // merge order: db.yaml before web.yaml
  EXPECT_EQ(docs[0]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as<std::string>(), "shop");

  auto dir = (out.path / "k8s").string();
  auto w = capture_cli({"policy", "export", "--format", "cilium", d.path.string(), "-o", dir});
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr("wrote 2 files"));
  ASSERT_TRUE(fs::exists(out.path / "k8s" / "web.yaml"));
  EXPECT_EQ(YAML::LoadFile((out.path / "k8s" / "db.yaml").string())["kind"].as<std::string>(), "CiliumNetworkPolicy");
  EXPECT_EQ(capture_cli({"policy", "export", "--format", "cilium", d.path.string(), "-o", dir}).code, 1);  // exists, no --force
  EXPECT_EQ(capture_cli({"policy", "export", "--format", "cilium", d.path.string(), "-o", dir, "--force"}).code, 0);
}

TEST(PolicyExportCli, InvalidInputExportsNothing) {
  TempDir d, out;
  d.write("good.yaml", kExact);
  d.write("web2.yaml", "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: web2}\nsubject: {service: web}\negress:\n  - action: drop\n");
  auto dir = (out.path / "o").string();
  for (const auto& extra : {std::vector<std::string>{}, std::vector<std::string>{"-o", dir}}) {
    std::vector<std::string> args = {"policy", "export", "--format", "kubernetes", d.path.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = capture_cli(args);
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, HasSubstr("web2.yaml:6:"));
    EXPECT_THAT(r.err, HasSubstr("error: invalid action 'drop'"));
    EXPECT_THAT(r.err, HasSubstr("nothing was exported"));
  }
  EXPECT_FALSE(fs::exists(dir));
  // Usage errors: unknown format, bad label key, missing directory.
  EXPECT_NE(capture_cli({"policy", "export", "--format", "calico", d.path.string()}).code, 0);
  EXPECT_EQ(capture_cli({"policy", "export", "--format", "cilium", "--label-key", "bad key", d.path.string()}).code, 2);
  EXPECT_EQ(capture_cli({"policy", "export", "--format", "cilium", (d.path / "nope").string()}).code, 2);
}

TEST(PolicyExport, NamesAndLabels) {
  EXPECT_EQ(dns_subdomain("web"), "web");
  EXPECT_EQ(dns_subdomain("Web_API.v2"), "web-api.v2");
  EXPECT_EQ(dns_subdomain("-x-"), "x");
  EXPECT_EQ(dns_subdomain("___"), "policy");
  EXPECT_EQ(dns_subdomain(std::string(300, 'a')).size(), 253u);
  EXPECT_TRUE(valid_label_key("app.kubernetes.io/name"));
  EXPECT_TRUE(valid_label_key("app"));
  EXPECT_FALSE(valid_label_key("bad key"));
  EXPECT_FALSE(valid_label_key("/name"));
  EXPECT_FALSE(valid_label_key("Example.com/name"));
  EXPECT_TRUE(valid_label_value("web.v1_2"));
  EXPECT_FALSE(valid_label_value("-web"));
  EXPECT_FALSE(valid_label_value(std::string(64, 'a')));
}

}  // namespace
}  // namespace hostscope::policy
