// Service-name precedence, user rules and their YAML loader, and the glob matcher rules use.
#include "agent/identity/service_name.h"

#include <gtest/gtest.h>

#include <string>

namespace hostscope::identity {
namespace {

ServiceRules rules_from(const std::string& yaml) {
  auto r = load_service_rules_yaml(yaml);
  EXPECT_TRUE(r) << r.error().str();
  return r ? *r : ServiceRules{};
}

std::string load_error(const std::string& yaml) {
  auto r = load_service_rules_yaml(yaml);
  EXPECT_FALSE(r) << "expected an error for:\n" << yaml;
  return r ? "" : r.error().str();
}

// A process that every source could name, so each test removes sources to walk down the order.
ProcessFacts full_facts() {
  ProcessFacts f;
  f.comm = "api-server";
  f.exe = "/usr/local/bin/api-server-bin";
  f.cgroup_path = "/kubepods.slice/kubepods-burstable.slice/x.scope";
  f.systemd_unit = "api.service";
  f.go_module = "github.com/acme/api";
  f.k8s_namespace = "shop";
  f.k8s_pod = "cart-6f7c9d8b5d-q2w4z";
  f.k8s_container = "cart-api";
  return f;
}

TEST(ServicePrecedence, WalksDownTheOrder) {
  const ServiceRules none;
  ProcessFacts f = full_facts();
  auto d = decide_service(f, none);
  EXPECT_EQ(d.name, "shop/cart");
  EXPECT_EQ(d.source, ServiceSource::kubernetes);
  EXPECT_EQ(d.rule_index, -1);

  f.k8s_namespace.reset();
  d = decide_service(f, none);
  EXPECT_EQ(d.name, "github.com/acme/api");
  EXPECT_EQ(d.source, ServiceSource::go);

  f.go_module.reset();
  d = decide_service(f, none);
  EXPECT_EQ(d.name, "api");
  EXPECT_EQ(d.source, ServiceSource::systemd);

  f.systemd_unit.clear();
  d = decide_service(f, none);
  EXPECT_EQ(d.name, "api-server-bin");
  EXPECT_EQ(d.source, ServiceSource::exe);

  f.exe.clear();
  d = decide_service(f, none);
  EXPECT_EQ(d.name, "api-server");
  EXPECT_EQ(d.source, ServiceSource::comm);

  f.comm.clear();
  d = decide_service(f, none);
  EXPECT_EQ(d.name, "unknown");
  EXPECT_EQ(d.source, ServiceSource::none);
  EXPECT_EQ(service_name(f, none), "unknown");
}

TEST(ServicePrecedence, SourceNames) {
  EXPECT_EQ(service_source_name(ServiceSource::rule), "rule");
  EXPECT_EQ(service_source_name(ServiceSource::kubernetes), "kubernetes");
  EXPECT_EQ(service_source_name(ServiceSource::go), "go");
  EXPECT_EQ(service_source_name(ServiceSource::systemd), "systemd");
  EXPECT_EQ(service_source_name(ServiceSource::exe), "exe");
  EXPECT_EQ(service_source_name(ServiceSource::comm), "comm");
}

TEST(ServicePrecedence, KubernetesDetails) {
  ProcessFacts f;
  f.k8s_namespace = "db";
  f.k8s_pod = "postgres-0";
  EXPECT_EQ(service_name(f, {}), "db/postgres");
  f.k8s_workload = "postgres-primary";  // a known controller name beats the heuristic
  EXPECT_EQ(service_name(f, {}), "db/postgres-primary");
  // A namespace without pod or workload cannot name a service: fall through.
  ProcessFacts g;
  g.k8s_namespace = "db";
  g.comm = "psql";
  EXPECT_EQ(decide_service(g, {}).source, ServiceSource::comm);
}

TEST(ServicePrecedence, SkipsNamesThatNameNothing) {
  ProcessFacts f;
  f.go_module = "command-line-arguments";  // `go run x.go`
  f.systemd_unit = "session-3.scope";      // scopes group unrelated processes
  f.exe = "/tmp/go-build123/b001/exe/main (deleted)";
  auto d = decide_service(f, {});
  EXPECT_EQ(d.source, ServiceSource::exe);
  EXPECT_EQ(d.name, "main");
  f.systemd_unit = ".service";  // nothing before the suffix
  EXPECT_EQ(decide_service(f, {}).source, ServiceSource::exe);
  f.systemd_unit = "getty@tty1.service";
  EXPECT_EQ(service_name(f, {}), "getty@tty1");
  f.systemd_unit.clear();
  f.exe = "/usr/bin/";  // no basename
  f.comm = "x";
  EXPECT_EQ(decide_service(f, {}).source, ServiceSource::comm);
}

TEST(ServiceRules, FirstMatchingRuleWins) {
  const auto rules = rules_from(R"(
service_rules:
  - name: payments
    match:
      k8s_namespace: shop
      k8s_container: "cart-*"
  - name: everything-in-shop
    match:
      k8s_namespace: shop
)");
  ASSERT_EQ(rules.rules.size(), 2u);
  ProcessFacts f = full_facts();
  auto d = decide_service(f, rules);
  EXPECT_EQ(d.name, "payments");
  EXPECT_EQ(d.source, ServiceSource::rule);
  EXPECT_EQ(d.rule_index, 0);
  EXPECT_EQ(rules.rules[0].origin, "line 3, column 5");

  f.k8s_container = "sidecar";
  d = decide_service(f, rules);
  EXPECT_EQ(d.name, "everything-in-shop");
  EXPECT_EQ(d.rule_index, 1);

  f.k8s_namespace = "other";
  EXPECT_EQ(decide_service(f, rules).source, ServiceSource::kubernetes);
}

TEST(ServiceRules, AllMatchersOfARuleMustMatch) {
  const auto rules = rules_from(R"(
service_rules:
  - name: legacy-billing
    match:
      exe: "/opt/billing/*/bin/*"
      comm: java
)");
  ProcessFacts f;
  f.exe = "/opt/billing/v2/bin/java";
  f.comm = "java";
  EXPECT_EQ(service_name(f, rules), "legacy-billing");
  f.comm = "bash";
  EXPECT_EQ(service_name(f, rules), "java");  // exe basename: the rule no longer matches
  f.comm = "java";
  f.exe = "/opt/billing/v2/bin/java (deleted)";  // upgraded in place: still the same service
  EXPECT_EQ(service_name(f, rules), "legacy-billing");
}

TEST(ServiceRules, EachMatcherKind) {
  const auto rules = rules_from(R"(
service_rules:
  - name: by-comm
    match: {comm: redis-server}
  - name: by-prefix
    match: {cgroup_prefix: /system.slice/app}
  - name: by-cgroup-glob
    match: {cgroup: "/machine.slice/libpod-*.scope"}
  - name: by-go
    match: {go_module: github.com/acme/tool}
  - name: by-pod
    match: {k8s_pod: "ingress-?-*"}
  - name: by-exe
    match: {exe: "*/node"}
)");
  ASSERT_EQ(rules.rules.size(), 6u);
  auto name_of = [&](ProcessFacts f) { return service_name(f, rules); };
  ProcessFacts f;
  f.comm = "redis-server";
  EXPECT_EQ(name_of(f), "by-comm");

  ProcessFacts p;
  p.cgroup_path = "/system.slice/app";
  EXPECT_EQ(name_of(p), "by-prefix");
  p.cgroup_path = "/system.slice/app/worker";
  EXPECT_EQ(name_of(p), "by-prefix");
  p.cgroup_path = "/system.slice/application.service";  // prefix matches whole components only
  p.comm = "application";
  EXPECT_EQ(name_of(p), "application");

  ProcessFacts c;
  c.cgroup_path = "/machine.slice/libpod-abc.scope";
  EXPECT_EQ(name_of(c), "by-cgroup-glob");

  ProcessFacts g;
  g.go_module = "github.com/acme/tool";
  EXPECT_EQ(name_of(g), "by-go");
  g.go_module = "github.com/acme/tool/v2";  // exact, not prefix
  EXPECT_EQ(name_of(g), "github.com/acme/tool/v2");

  ProcessFacts k;
  k.k8s_namespace = "edge";
  k.k8s_pod = "ingress-a-xyz";
  EXPECT_EQ(name_of(k), "by-pod");
  k.k8s_pod = "ingress-ab-xyz";
  EXPECT_EQ(name_of(k), "edge/ingress-ab-xyz");

  ProcessFacts e;
  e.exe = "/usr/local/lib/nodejs/bin/node";
  EXPECT_EQ(name_of(e), "by-exe");
  e.exe.clear();
  e.comm = "node";  // an exe rule never matches a process whose exe is unknown
  EXPECT_EQ(name_of(e), "node");
}

TEST(ServiceRules, AbsentOrNullMeansNoRules) {
  EXPECT_TRUE(rules_from("").rules.empty());
  EXPECT_TRUE(rules_from("other: 1\n").rules.empty());
  EXPECT_TRUE(rules_from("service_rules:\n").rules.empty());
  auto r = load_service_rules(YAML::Node());
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->rules.empty());
}

TEST(ServiceRules, ErrorsNameLineAndColumn) {
  // Lines and columns are 1-based as editors show them (yaml-cpp's Mark is 0-based).
  EXPECT_EQ(
      load_error("service_rules:\n  - name: x\n    match:\n      exec: /bin/x\n"),
      "service_rules[0] (line 2, column 5): unknown match key 'exec' (line 4, column 7) (expected exe, comm, "
      "cgroup, cgroup_prefix, go_module, k8s_namespace, k8s_pod, k8s_container)");
  EXPECT_EQ(
      load_error("service_rules:\n  - name: x\n    match: {comm: a}\n  - nam: y\n"),
      "service_rules[1] (line 4, column 5): unknown key 'nam' (line 4, column 5) (expected name, match)");
}

TEST(ServiceRules, RejectsInvalidRules) {
  struct Bad {
    std::string yaml;
    std::string needle;
  };
  for (const auto& b : std::vector<Bad>{
           {"service_rules: {a: 1}\n", "(line 1, column 16): expected a list of rules"},
           {"service_rules: [1]\n", "service_rules[0] (line 1, column 17): expected a map"},
           {"service_rules:\n  - match: {comm: a}\n", "service_rules[0] (line 2, column 5): missing 'name'"},
           {"service_rules:\n  - name: a\n", "missing 'match'"},
           {"service_rules:\n  - name: a\n    match: {}\n", "missing 'match'"},
           {"service_rules:\n  - name: a\n    match: [comm]\n", "'match' (line 3, column 12) must be a map"},
           {"service_rules:\n  - name: [a]\n    match: {comm: a}\n",
            "'name' (line 2, column 11) must be a string"},
           {"service_rules:\n  - name: ''\n    match: {comm: a}\n", "'name' (line 2, column 11) is empty"},
           {"service_rules:\n  - name: \"a\\tb\"\n    match: {comm: a}\n", "control character"},
           {"service_rules:\n  - name: a\n    match: {comm: a-very-long-command-name}\n", "can never match"},
           {"service_rules:\n  - name: a\n    match: {exe: \"/bin/[ab\"}\n", "is not closed"},
           {"service_rules:\n  - name: a\n    match: {exe: \"/bin/\\\\\"}\n", "trailing backslash"},
           {"service_rules:\n  - name: a\n    match: {exe: \"[z-a]\"}\n", "reversed"},
           {"service_rules:\n  - name: a\n    match: {cgroup_prefix: system.slice}\n", "must start with '/'"},
           {"service_rules:\n  - name: a\n    match: {comm: a, comm: b}\n", "given twice"},
           {"service_rules:\n  - name: a\n    match: {comm: {x: 1}}\n",
            "'comm' (line 3, column 19) must be a string"},
           {"service_rules:\n  - name: a\n    match: {? [k] : v}\n", "match keys must be strings"},
           {"service_rules:\n  - name: a\n    match: {comm: x}\n    extra: 1\n", "unknown key 'extra'"},
           {"service_rules: [\n", "parse failed"},
           {"- just a list\n", "top level must be a map"},
       }) {
    const std::string err = load_error(b.yaml);
    EXPECT_NE(err.find(b.needle), std::string::npos) << "yaml:\n" << b.yaml << "error: " << err;
  }
}

TEST(ServiceRules, BoundsOnInputSize) {
  std::string many = "service_rules:\n";
  for (std::size_t i = 0; i <= kMaxServiceRules; ++i) many += "  - {name: a, match: {comm: a}}\n";
  EXPECT_NE(load_error(many).find("at most 4096"), std::string::npos);

  const std::string long_name(kMaxRuleStringLen + 1, 'n');
  EXPECT_NE(
      load_error("service_rules:\n  - name: " + long_name + "\n    match: {comm: a}\n").find("longer than"),
      std::string::npos);
  EXPECT_NE(load_error(std::string((1 << 20) + 1, ' ')).find("at most"), std::string::npos);
}

TEST(ServiceRules, ProgrammaticNodesHaveNoMark) {
  YAML::Node seq(YAML::NodeType::Sequence);
  YAML::Node rule;
  rule["name"] = "x";
  seq.push_back(rule);
  auto r = load_service_rules(seq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(), "service_rules[0]: missing 'match' with at least one matcher");
}

struct GlobCase {
  std::string pattern;
  std::string text;
  bool match;
};

class GlobMatch : public ::testing::TestWithParam<GlobCase> {};

TEST_P(GlobMatch, Matches) {
  auto g = Glob::compile(GetParam().pattern);
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_EQ(g->match(GetParam().text), GetParam().match) << GetParam().pattern << " vs " << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, GlobMatch,
    ::testing::Values(
        GlobCase{"", "", true}, GlobCase{"", "a", false}, GlobCase{"*", "", true},
        GlobCase{"*", "/any/path", true}, GlobCase{"abc", "abc", true}, GlobCase{"abc", "abcd", false},
        GlobCase{"a?c", "abc", true}, GlobCase{"a?c", "ac", false}, GlobCase{"*.go", "main.go", true},
        GlobCase{"*.go", "main.go.bak", false}, GlobCase{"a*b*c", "axxbyyc", true},
        GlobCase{"a*b*c", "axxbyy", false}, GlobCase{"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        GlobCase{"**x", "abx", true}, GlobCase{"[abc]x", "bx", true}, GlobCase{"[abc]x", "dx", false},
        GlobCase{"[a-c]", "b", true}, GlobCase{"[!a-c]", "b", false}, GlobCase{"[^a-c]", "d", true},
        GlobCase{"[]]", "]", true}, GlobCase{"[a-]", "-", true}, GlobCase{"\\*", "*", true},
        GlobCase{"\\*", "a", false}, GlobCase{"[\\]]", "]", true},
        GlobCase{"/opt/*/bin/*", "/opt/x/y/bin/z", true}));

TEST(Glob, HostilePatternStaysLinear) {
  // Exponential in a recursive matcher; here at most pattern*text steps.
  std::string pattern;
  for (int i = 0; i < 100; ++i) pattern += "*a";
  pattern += "b";
  auto g = Glob::compile(pattern);
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->match(std::string(1000, 'a')));
  EXPECT_TRUE(g->match(std::string(1000, 'a') + "b"));
  EXPECT_EQ(g->pattern(), pattern);
}

}  // namespace
}  // namespace hostscope::identity
