#include "agent/identity/service_name.h"

#include <algorithm>
#include <string>

#include "agent/identity/kube_meta.h"
#include "agent/identity/workload.h"

namespace hostscope::identity {
namespace {

// TASK_COMM_LEN is 16 including the NUL: a longer comm rule could never match.
constexpr std::size_t kMaxComm = 15;
constexpr std::size_t kMaxYamlBytes = 1 << 20;
// `go build file.go` and `go run` record this pseudo-module: it names nothing.
constexpr std::string_view kGoNoModule = "command-line-arguments";

std::string_view clean_exe(std::string_view exe) {
  constexpr std::string_view kDeleted = " (deleted)";
  if (exe.size() >= kDeleted.size() && exe.substr(exe.size() - kDeleted.size()) == kDeleted) {
    exe.remove_suffix(kDeleted.size());
  }
  return exe;
}

bool glob_matches(const std::optional<Glob>& g, const std::optional<std::string>& v) {
  return !g || (v && g->match(*v));
}

bool prefix_matches(std::string_view prefix, std::string_view path) {
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || (!prefix.empty() && prefix.back() == '/') ||
         path[prefix.size()] == '/';
}

std::string mark_text(const YAML::Mark& m) {
  if (m.is_null()) return "";
  // yaml-cpp marks are 0-based; editors count from 1.
  return " (line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1) + ")";
}

}  // namespace

Result<Glob> Glob::compile(std::string_view pattern) {
  if (pattern.size() > kMaxRuleStringLen) {
    return errorf("glob '{}...' longer than {} chars", pattern.substr(0, 32), kMaxRuleStringLen);
  }
  Glob g;
  g.pattern_ = std::string(pattern);
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '*') {
      // Runs of '*' are one token: keeps the matcher's backtracking linear in the pattern.
      if (g.tokens_.empty() || g.tokens_.back().kind != Token::any_run)
        g.tokens_.push_back(Token::of(Token::any_run));
    } else if (c == '?') {
      g.tokens_.push_back(Token::of(Token::any_one));
    } else if (c == '\\') {
      if (++i == pattern.size()) return errorf("glob '{}': trailing backslash", pattern);
      g.tokens_.push_back(Token::of(Token::literal, pattern[i]));
    } else if (c == '[') {
      Token t = Token::of(Token::set);
      std::size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
        t.negate = true;
        ++j;
      }
      bool closed = false;
      for (bool first = true; j < pattern.size(); first = false) {
        char lo = pattern[j];
        if (lo == ']' && !first) {
          closed = true;
          break;
        }
        if (lo == '\\' && j + 1 < pattern.size()) lo = pattern[++j];
        ++j;
        char hi = lo;
        if (j + 1 < pattern.size() && pattern[j] == '-' && pattern[j + 1] != ']') {
          hi = pattern[j + 1];
          if (hi == '\\' && j + 2 < pattern.size()) hi = pattern[++j + 1];
          j += 2;
          if (hi < lo) return errorf("glob '{}': range {}-{} is reversed", pattern, lo, hi);
        }
        t.ranges.emplace_back(lo, hi);
      }
      if (!closed) return errorf("glob '{}': '[' at offset {} is not closed", pattern, i);
      g.tokens_.push_back(std::move(t));
      i = j;
    } else {
      g.tokens_.push_back(Token::of(Token::literal, c));
    }
  }
  return g;
}

bool Glob::token_matches(const Token& t, char c) const {
  switch (t.kind) {
    case Token::literal:
      return t.ch == c;
    case Token::any_one:
      return true;
    case Token::any_run:
      return false;
    case Token::set: {
      const bool in = std::any_of(t.ranges.begin(), t.ranges.end(),
                                  [c](const auto& r) { return c >= r.first && c <= r.second; });
      return in != t.negate;
    }
  }
  return false;
}

bool Glob::match(std::string_view text) const {
  // Greedy match with one backtrack point (the last '*'): a later '*' subsumes earlier ones, so
  // this is exact for single-char tokens and needs at most pattern*text steps.
  std::size_t p = 0, t = 0;
  std::size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < tokens_.size() && tokens_[p].kind == Token::any_run) {
      star_p = p++;
      star_t = t;
    } else if (p < tokens_.size() && token_matches(tokens_[p], text[t])) {
      ++p;
      ++t;
    } else if (star_p != std::string_view::npos) {
      p = star_p + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < tokens_.size() && tokens_[p].kind == Token::any_run) ++p;
  return p == tokens_.size();
}

void add_cgroup_facts(ProcessFacts& f, const CgroupIdentity& cg, KubeMetaCache* kube) {
  f.cgroup_path = cg.path;
  f.systemd_unit = cg.systemd_unit;
  if (!kube) return;
  if (cg.in_container()) {
    if (auto m = kube->by_container_id(cg.container_id)) {
      f.k8s_namespace = m->ns;
      f.k8s_pod = m->pod;
      f.k8s_container = m->container;
      return;
    }
  }
  if (cg.in_pod()) {
    if (auto p = kube->by_pod_uid(cg.pod_uid)) {
      f.k8s_namespace = p->ns;
      f.k8s_pod = p->pod;
    }
  }
}

bool ServiceRule::matches(const ProcessFacts& f) const {
  if (exe && (f.exe.empty() || !exe->match(clean_exe(f.exe)))) return false;
  if (comm && f.comm != *comm) return false;
  if (cgroup_prefix && (f.cgroup_path.empty() || !prefix_matches(*cgroup_prefix, f.cgroup_path)))
    return false;
  if (cgroup && (f.cgroup_path.empty() || !cgroup->match(f.cgroup_path))) return false;
  if (go_module && f.go_module != go_module) return false;
  return glob_matches(k8s_namespace, f.k8s_namespace) && glob_matches(k8s_pod, f.k8s_pod) &&
         glob_matches(k8s_container, f.k8s_container);
}

std::string_view service_source_name(ServiceSource s) {
  switch (s) {
    case ServiceSource::rule:
      return "rule";
    case ServiceSource::kubernetes:
      return "kubernetes";
    case ServiceSource::go:
      return "go";
    case ServiceSource::systemd:
      return "systemd";
    case ServiceSource::exe:
      return "exe";
    case ServiceSource::comm:
      return "comm";
    case ServiceSource::none:
      return "none";
  }
  return "none";
}

Result<ServiceRules> load_service_rules(const YAML::Node& node) {
  ServiceRules out;
  if (!node.IsDefined() || node.IsNull()) return out;
  if (!node.IsSequence()) return errorf("service_rules{}: expected a list of rules", mark_text(node.Mark()));
  if (node.size() > kMaxServiceRules) {
    return errorf("service_rules{}: {} rules, at most {} allowed", mark_text(node.Mark()), node.size(),
                  kMaxServiceRules);
  }
  try {
    std::size_t idx = 0;
    for (const auto& rn : node) {
      const std::string where = fmt::format("service_rules[{}]{}", idx, mark_text(rn.Mark()));
      if (!rn.IsMap()) return errorf("{}: expected a map with 'name' and 'match'", where);
      ServiceRule rule;
      rule.origin = mark_text(rn.Mark());
      if (!rule.origin.empty()) rule.origin = rule.origin.substr(2, rule.origin.size() - 3);
      bool has_match = false;

      auto scalar = [&](const YAML::Node& key, const YAML::Node& v) -> Result<std::string> {
        const std::string k = key.Scalar();
        if (!v.IsScalar()) return errorf("{}: '{}'{} must be a string", where, k, mark_text(v.Mark()));
        const std::string& s = v.Scalar();
        if (s.empty()) return errorf("{}: '{}'{} is empty", where, k, mark_text(v.Mark()));
        if (s.size() > kMaxRuleStringLen) {
          return errorf("{}: '{}'{} longer than {} chars", where, k, mark_text(v.Mark()), kMaxRuleStringLen);
        }
        if (std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
          return errorf("{}: '{}'{} contains a control character", where, k, mark_text(v.Mark()));
        }
        return s;
      };
      auto glob = [&](const YAML::Node& key, const YAML::Node& v) -> Result<Glob> {
        auto s = scalar(key, v);
        if (!s) return s.error();
        auto g = Glob::compile(*s);
        if (!g) return errorf("{}: '{}'{}: {}", where, key.Scalar(), mark_text(v.Mark()), g.error().message);
        return g;
      };

      for (const auto& kv : rn) {
        const YAML::Node& key = kv.first;
        if (!key.IsScalar()) return errorf("{}: keys must be strings", where);
        const std::string& k = key.Scalar();
        if (k == "name") {
          auto s = scalar(key, kv.second);
          if (!s) return s.error();
          rule.name = std::move(*s);
        } else if (k == "match") {
          const YAML::Node& m = kv.second;
          if (!m.IsMap()) return errorf("{}: 'match'{} must be a map", where, mark_text(m.Mark()));
          for (const auto& mkv : m) {
            const YAML::Node& mk = mkv.first;
            const YAML::Node& mv = mkv.second;
            if (!mk.IsScalar())
              return errorf("{}: match keys must be strings{}", where, mark_text(mk.Mark()));
            const std::string& name = mk.Scalar();
            std::optional<Glob>* gslot = nullptr;
            std::optional<std::string>* sslot = nullptr;
            if (name == "exe")
              gslot = &rule.exe;
            else if (name == "cgroup")
              gslot = &rule.cgroup;
            else if (name == "k8s_namespace")
              gslot = &rule.k8s_namespace;
            else if (name == "k8s_pod")
              gslot = &rule.k8s_pod;
            else if (name == "k8s_container")
              gslot = &rule.k8s_container;
            else if (name == "comm")
              sslot = &rule.comm;
            else if (name == "cgroup_prefix")
              sslot = &rule.cgroup_prefix;
            else if (name == "go_module")
              sslot = &rule.go_module;
            else {
              return errorf(
                  "{}: unknown match key '{}'{} (expected exe, comm, cgroup, cgroup_prefix, go_module, "
                  "k8s_namespace, k8s_pod, k8s_container)",
                  where, name, mark_text(mk.Mark()));
            }
            if ((gslot && *gslot) || (sslot && *sslot)) {
              return errorf("{}: match key '{}'{} given twice", where, name, mark_text(mk.Mark()));
            }
            if (gslot) {
              auto g = glob(mk, mv);
              if (!g) return g.error();
              *gslot = std::move(*g);
            } else {
              auto s = scalar(mk, mv);
              if (!s) return s.error();
              if (name == "comm" && s->size() > kMaxComm) {
                return errorf("{}: 'comm'{} '{}' is longer than {} chars and can never match", where,
                              mark_text(mv.Mark()), *s, kMaxComm);
              }
              if (name == "cgroup_prefix" && s->front() != '/') {
                return errorf("{}: 'cgroup_prefix'{} must start with '/'", where, mark_text(mv.Mark()));
              }
              *sslot = std::move(*s);
            }
            has_match = true;
          }
        } else {
          return errorf("{}: unknown key '{}'{} (expected name, match)", where, k, mark_text(key.Mark()));
        }
      }
      if (rule.name.empty()) return errorf("{}: missing 'name'", where);
      if (!has_match) return errorf("{}: missing 'match' with at least one matcher", where);
      out.rules.push_back(std::move(rule));
      ++idx;
    }
  } catch (const YAML::Exception& e) {
    // Conversions above check node types first; this is a backstop so bad config never aborts.
    return errorf("service_rules{}: {}", mark_text(e.mark), e.msg);
  }
  return out;
}

Result<ServiceRules> load_service_rules_yaml(std::string_view yaml_text) {
  if (yaml_text.size() > kMaxYamlBytes) {
    return errorf("service rules YAML: {} bytes, at most {} allowed", yaml_text.size(), kMaxYamlBytes);
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return errorf("service rules YAML parse failed{}: {}", mark_text(e.mark), e.msg);
  }
  if (root.IsNull()) return ServiceRules{};
  if (!root.IsMap()) return errorf("service rules YAML{}: top level must be a map", mark_text(root.Mark()));
  return load_service_rules(root["service_rules"]);
}

ServiceDecision decide_service(const ProcessFacts& f, const ServiceRules& rules) {
  for (std::size_t i = 0; i < rules.rules.size(); ++i) {
    if (rules.rules[i].matches(f)) return {rules.rules[i].name, ServiceSource::rule, static_cast<int>(i)};
  }
  if (f.k8s_namespace && !f.k8s_namespace->empty()) {
    std::string workload;
    if (f.k8s_workload && !f.k8s_workload->empty())
      workload = *f.k8s_workload;
    else if (f.k8s_pod && !f.k8s_pod->empty())
      workload = workload_from_pod_name(*f.k8s_pod).name;
    if (!workload.empty()) return {*f.k8s_namespace + "/" + workload, ServiceSource::kubernetes};
  }
  if (f.go_module && !f.go_module->empty() && *f.go_module != kGoNoModule) {
    return {*f.go_module, ServiceSource::go};
  }
  constexpr std::string_view kService = ".service";
  // Only services name a service: a scope is a session or a transient group of unrelated processes.
  if (f.systemd_unit.size() > kService.size() &&
      std::string_view(f.systemd_unit).substr(f.systemd_unit.size() - kService.size()) == kService) {
    return {f.systemd_unit.substr(0, f.systemd_unit.size() - kService.size()), ServiceSource::systemd};
  }
  const std::string_view exe = clean_exe(f.exe);
  const std::string_view base = exe.substr(exe.rfind('/') == std::string_view::npos ? 0 : exe.rfind('/') + 1);
  if (!base.empty()) return {std::string(base), ServiceSource::exe};
  if (!f.comm.empty()) return {f.comm, ServiceSource::comm};
  return {"unknown", ServiceSource::none};
}

std::string service_name(const ProcessFacts& facts, const ServiceRules& rules) {
  return decide_service(facts, rules).name;
}

}  // namespace hostscope::identity
