#pragma once
// The service name of a process, with one deterministic precedence (docs/identity.md):
//   user rule (first match, in config order) > Kubernetes "namespace/workload" > Go main module
//   > systemd service unit (without ".service") > exe basename > comm.
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/cgroup_identity.h"
#include "common/result.h"

namespace hostscope::identity {

// Shell-style glob over a whole string: '*' (any run, '/' included), '?' (one char), '[abc]',
// '[a-z]', '[!a]' / '[^a]', and '\' to escape. Matching is O(pattern * text) with no recursion,
// so a hostile pattern cannot blow up.
class Glob {
 public:
  static Result<Glob> compile(std::string_view pattern);
  bool match(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Token {
    enum Kind : std::uint8_t { literal, any_one, any_run, set };
    Kind kind = literal;
    char ch = 0;
    bool negate = false;
    std::vector<std::pair<char, char>> ranges;  // for `set`

    static Token of(Kind k, char c = 0) {
      Token t;
      t.kind = k;
      t.ch = c;
      return t;
    }
  };
  bool token_matches(const Token& t, char c) const;

  std::string pattern_;
  std::vector<Token> tokens_;
};

// Everything known about a process that can name it. Empty / nullopt means unknown.
struct ProcessFacts {
  std::string comm;
  std::string exe;  // full path of /proc/PID/exe; a " (deleted)" suffix is ignored
  std::string cgroup_path;
  std::string systemd_unit;
  std::optional<std::string> go_module;  // main module path from the Go build info
  std::optional<std::string> k8s_namespace;
  std::optional<std::string> k8s_pod;
  std::optional<std::string> k8s_container;
  std::optional<std::string> k8s_workload;  // derived from k8s_pod when absent
};

class KubeMetaCache;

// Fills cgroup_path and systemd_unit from `cg` and, when `kube` is given, the Kubernetes names:
// by container id, else (a process in the pod but in no container) by pod UID.
void add_cgroup_facts(ProcessFacts& facts, const CgroupIdentity& cg, KubeMetaCache* kube = nullptr);

// One user rule. Every matcher that is set must match (AND); a rule needs at least one matcher.
struct ServiceRule {
  std::string name;
  std::optional<Glob> exe;
  std::optional<std::string> comm;           // exact
  std::optional<std::string> cgroup_prefix;  // whole path components: "/a" matches "/a/b", not "/ab"
  std::optional<Glob> cgroup;
  std::optional<std::string> go_module;  // exact
  std::optional<Glob> k8s_namespace;
  std::optional<Glob> k8s_pod;
  std::optional<Glob> k8s_container;
  std::string origin;  // "line 4, column 5" when loaded from YAML, for logs

  bool matches(const ProcessFacts& f) const;
};

struct ServiceRules {
  std::vector<ServiceRule> rules;
};

enum class ServiceSource : std::uint8_t { rule, kubernetes, go, systemd, exe, comm, none };
std::string_view service_source_name(ServiceSource s);

struct ServiceDecision {
  std::string name;
  ServiceSource source = ServiceSource::none;
  int rule_index = -1;  // index into ServiceRules::rules when source == rule
};

inline constexpr std::size_t kMaxServiceRules = 4096;
inline constexpr std::size_t kMaxRuleStringLen = 1024;

// Loads the sequence under `service_rules:`. A null/absent node gives no rules. Errors name the
// rule and its 1-based line:column, e.g. "service_rules[1] (line 7, column 5): unknown key 'exec'".
Result<ServiceRules> load_service_rules(const YAML::Node& node);

// Parses a YAML document whose top level holds `service_rules:` (convenience for tests and tools).
Result<ServiceRules> load_service_rules_yaml(std::string_view yaml_text);

ServiceDecision decide_service(const ProcessFacts& facts, const ServiceRules& rules);
std::string service_name(const ProcessFacts& facts, const ServiceRules& rules);

}  // namespace hostscope::identity
