#include "policy/export.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "policy/analysis.h"
#include "policy/compiler.h"

namespace hostscope::policy {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

// Label names and values: at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends.
bool label_name(std::string_view s) {
  if (s.empty() || s.size() > 63 || !alnum(s.front()) || !alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '-' || c == '_' || c == '.'; });
}

bool dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63 || !lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return lower_alnum(c) || c == '-'; });
}

// Cilium's key for the namespace of an endpoint (the k8s: source prefix keeps it from matching other label sources).
constexpr const char* kCiliumNamespaceLabel = "k8s:io.kubernetes.pod.namespace";
// Set by Kubernetes (1.21+) on every namespace, so a namespaceSelector can name one namespace exactly.
constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";
// Cilium validates at most this many ports in one `toPorts[].ports` list.
constexpr size_t kCiliumPortsPerRule = 40;

// Pods named by label, in a namespace ("" = the object's own namespace).
struct Pods {
  std::string label, ns;
};

struct PortEntry {
  Protocol proto = Protocol::Tcp;  // Tcp or Udp
  std::optional<PortRange> range;  // none: every port of the protocol
};

// One hostscope rule in the target's terms.
struct OutRule {
  bool any_peer = true;
  std::vector<std::string> cidrs;
  std::vector<Pods> pods;
  std::vector<PortEntry> ports;  // empty: any port of any protocol
};

struct OutDirection {
  bool emit = false;       // the object restricts this direction (policyTypes / a Cilium section)
  bool allow_all = false;  // Cilium, default allow with deny rules: everything the deny rules leave is allowed
  std::vector<OutRule> allow, deny;
};

// A rule of the subject's merged list (every policy with the same subject, merge order).
struct MergedRule {
  const NetworkPolicy* policy;
  const ResolvedRule* rule;
};

bool same_subject(const Selector& a, const Selector& b) { return a.attrs == b.attrs && a.cgroup == b.cgroup; }

bool blocks(Action a) { return a == Action::Deny || a == Action::Reject; }

// Whether one packet could match both rules: false only when their protocols, ports or peers are provably disjoint.
bool may_overlap(const ResolvedRule& a, const ResolvedRule& b) {
  const Rule &ra = *a.rule, &rb = *b.rule;
  if (ra.protocol != Protocol::Any && rb.protocol != Protocol::Any && ra.protocol != rb.protocol) return false;
  if (!ra.ports.empty() && !rb.ports.empty()) {
    bool shared = std::any_of(ra.ports.begin(), ra.ports.end(), [&](const PortRange& x) {
      return std::any_of(rb.ports.begin(), rb.ports.end(), [&](const PortRange& y) { return x.first <= y.last && y.first <= x.last; });
    });
    if (!shared) return false;
  }
  // An explicit peer list that resolved to nothing matches nothing.
  if (a.matches_nothing() || b.matches_nothing()) return false;
  if (a.any_peer || b.any_peer) return true;
  if (a.has_local() && b.has_local()) return true;  // local processes: not compared, assumed to overlap
  return std::any_of(a.peers.begin(), a.peers.end(), [&](const Cidr& x) {
    return std::any_of(b.peers.begin(), b.peers.end(), [&](const Cidr& y) { return x.contains(y) || y.contains(x); });
  });
}

std::string rule_name(Direction d, const Rule& r) { return fmt::format("{} rule {} ({})", to_string(d), r.index, to_string(r.action)); }

std::string merged_rule_name(Direction d, const MergedRule& m, const NetworkPolicy& current) {
  std::string s = rule_name(d, *m.rule->rule);
  return m.policy == &current ? s : fmt::format("{} of policy {}", s, m.policy->name);
}

const char* proto_name(Protocol p) { return p == Protocol::Udp ? "UDP" : "TCP"; }

std::string failsafe_list(Direction d) {
  std::vector<std::string> ports;
  for (const auto& f : failsafe_ports(d)) ports.push_back(fmt::format("{}/{}", to_string(f.proto), f.port));
  return fmt::format("{}", fmt::join(ports, ", "));
}

// ---- YAML ---------------------------------------------------------------------------------------------------------
// Every string that comes from the policy set or the catalogue is double-quoted, so a name like "true" or "80" stays a
// string for the API server.

void quoted(YAML::Emitter& e, const std::string& s) { e << YAML::DoubleQuoted << s; }

void match_labels(YAML::Emitter& e, const std::vector<std::pair<std::string, std::string>>& labels) {
  if (labels.empty()) {
    e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  e << YAML::BeginMap << YAML::Key << "matchLabels" << YAML::Value << YAML::BeginMap;
  for (const auto& [k, v] : labels) {
    e << YAML::Key;
    quoted(e, k);
    e << YAML::Value;
    quoted(e, v);
  }
  e << YAML::EndMap << YAML::EndMap;
}

class Exporter {
 public:
  Exporter(const PolicySet& set, const Context& ctx, const ExportOptions& o) : set_(set), ctx_(ctx), o_(o), analysis_(analyze(set, ctx)) {}

  ExportResult run() {
    ExportResult out;
    for (size_t i = 0; i < set_.policies.size(); ++i) {
      idx_ = i;
      p_ = &set_.policies[i];
      notes_.clear();
      auto obj = export_policy();
      if (obj) {
        obj->out.yaml = render(*obj);
        out.objects.push_back(std::move(obj->out));
      } else {
        out.skipped++;
      }
      out.notes.insert(out.notes.end(), notes_.begin(), notes_.end());
    }
    return out;
  }

 private:
  const PolicySet& set_;
  const Context& ctx_;
  const ExportOptions& o_;
  Analysis analysis_;
  size_t idx_ = 0;
  const NetworkPolicy* p_ = nullptr;
  std::vector<ExportNote> notes_;

  struct Object {
    ExportedObject out;
    std::string ns;
    std::optional<std::string> label;
    OutDirection ingress, egress;
  };

  bool kube() const { return o_.format == ExportFormat::Kubernetes; }
  const char* kind() const { return kube() ? "NetworkPolicy" : "CiliumNetworkPolicy"; }

  void note(const SourceLoc& loc, std::string text) { notes_.push_back({loc, p_->name, std::move(text)}); }

  std::optional<Object> export_policy() {
    Object obj;
    obj.out.policy = p_->name;
    obj.out.name = dns_subdomain(p_->name);
    if (obj.out.name != p_->name)
      note(p_->name_loc, fmt::format("name '{}' is not a valid metadata.name; exported as '{}'", p_->name, obj.out.name));
    if (!subject(obj)) return std::nullopt;
    if (p_->mode == Mode::Audit)
      note(p_->loc, fmt::format("mode: audit has no {} equivalent; the exported object enforces", kind()));
    obj.ingress = direction(Direction::Ingress, obj.ns);
    obj.egress = direction(Direction::Egress, obj.ns);
    if (!obj.ingress.emit && !obj.egress.emit) {
      note(p_->loc, fmt::format("nothing this policy does can be expressed as a {}; not exported", kind()));
      return std::nullopt;
    }
    return obj;
  }

  // The subject as a namespace and a pod label; false (with a note) when the target cannot select it.
  bool subject(Object& obj) {
    const auto& sel = p_->subject;
    auto skip = [&](const std::string& why) {
      note(sel.loc, fmt::format("subject {}; {} selects pods by namespace and label only, so the policy is not exported", why, kind()));
      return false;
    };
    if (sel.cgroup) return skip(fmt::format("cgroup '{}' names local processes, not pods", *sel.cgroup));
    for (const char* key : {"exe", "go_module"})
      if (auto it = sel.attrs.find(key); it != sel.attrs.end()) return skip(fmt::format("{} '{}' is a process attribute", key, it->second));
    auto attr = [&](const char* key) -> std::optional<std::string> {
      auto it = sel.attrs.find(key);
      return it == sel.attrs.end() ? std::nullopt : std::optional(it->second);
    };
    auto service = attr("service"), workload = attr("workload"), ns = attr("namespace");
    if (service && workload && *service != *workload)
      return skip(fmt::format("service '{}' and workload '{}' would both be label {}", *service, *workload, o_.label_key));
    obj.label = service ? service : workload;
    if (obj.label && !valid_label_value(*obj.label)) return skip(fmt::format("'{}' is not a valid label value", *obj.label));
    if (ns && !dns_label(*ns)) return skip(fmt::format("namespace '{}' is not a valid namespace name", *ns));
    if (ns) obj.ns = *ns;
    else
      note(sel.loc, "subject has no namespace: the object has no metadata.namespace, so it applies in the namespace it is created in only "
                    "(hostscope: in every namespace)");
    return true;
  }

  // The rules of every policy with this policy's subject, in merge order, and where this policy's rules start.
  std::pair<std::vector<MergedRule>, size_t> merged(Direction d) const {
    std::vector<MergedRule> all;
    size_t start = 0;
    for (size_t i = 0; i < set_.policies.size(); ++i) {
      if (!same_subject(set_.policies[i].subject, p_->subject)) continue;
      if (i == idx_) start = all.size();
      for (const auto& r : analysis_.policies[i].rules(d)) all.push_back({&set_.policies[i], &r});
    }
    return {std::move(all), start};
  }

  OutDirection direction(Direction d, const std::string& ns) {
    OutDirection out;
    const auto& rules = p_->rules(d);
    const Action def = p_->default_action(d);
    const auto merged_rules = merged(d);
    const auto& all = merged_rules.first;
    const size_t start = merged_rules.second;
    auto first_overlap = [&](size_t from, size_t to, size_t self, bool want_block) -> const MergedRule* {
      for (size_t k = from; k < to; ++k)
        if (blocks(all[k].rule->rule->action) == want_block && all[k].rule->rule->action != Action::Log && may_overlap(*all[k].rule, *all[self].rule))
          return &all[k];
      return nullptr;
    };
    const bool has_block = std::any_of(rules.begin(), rules.end(), [](const Rule& r) { return blocks(r.action); });
    const std::string dir = to_string(d);

    if (def == Action::Allow) {
      if (!has_block) {
        if (!rules.empty())
          note(p_->default_loc.line ? p_->default_loc : p_->loc,
               fmt::format("{}: the default is allow and no rule denies, so hostscope restricts nothing here, while a {} {} section would "
                           "deny everything its rules do not allow; {} not exported", dir, kind(), dir, dir));
        return out;
      }
      if (kube()) {
        note(p_->default_loc.line ? p_->default_loc : p_->loc,
             fmt::format("{}: the default is allow with deny/reject rules, and a NetworkPolicy can only allow; {} not exported, so what those "
                         "rules deny stays allowed", dir, dir));
        return out;
      }
      out.emit = out.allow_all = true;
    } else {
      out.emit = true;
      if (def == Action::Reject)
        note(p_->default_loc, fmt::format("{}: default reject becomes a silent drop ({} cannot reject)", dir, kind()));
    }
    if (p_->failsafe)
      note(p_->failsafe_loc.line ? p_->failsafe_loc : p_->loc,
           fmt::format("{}: failsafe ports ({}) stay open in hostscope whatever the rules say; they are not exported, so the object "
                       "may block them (allow them explicitly, or set failsafe: false)", dir, failsafe_list(d)));

    for (size_t i = 0; i < rules.size(); ++i) {
      const Rule& r = rules[i];
      const size_t self = start + i;
      const std::string name = rule_name(d, r);
      if (r.action == Action::Log) {
        note(r.loc, fmt::format("{}: {} cannot log; left out (no verdict changes)", name, kind()));
        continue;
      }
      if (r.action == Action::Allow) {
        if (out.allow_all) continue;  // covered by the allow-all rule; an overlap with a later deny is noted there
        if (kube()) {
          if (const auto* m = first_overlap(0, self, self, true)) {
            note(r.loc, fmt::format("{}: {} before it may deny some of the same traffic, and a NetworkPolicy cannot deny; left out, so the "
                                    "object does not allow what hostscope denies", name, merged_rule_name(d, *m, *p_)));
            continue;
          }
        }
        if (auto o = convert(r, d, ns)) out.allow.push_back(std::move(*o));
        continue;
      }
      if (r.action == Action::Reject) note(r.loc, fmt::format("{}: reject becomes a silent drop ({} cannot reject)", name, kind()));
      if (kube()) continue;  // under a default deny a deny rule adds nothing once the allows after it that it overlaps are left out
      if (const auto* m = first_overlap(0, self, self, false))
        note(r.loc, fmt::format("{}: Cilium deny rules take precedence over allow rules regardless of order, so this also denies what {} "
                                "before it allows", name, merged_rule_name(d, *m, *p_)));
      if (auto o = convert(r, d, ns)) out.deny.push_back(std::move(*o));
    }
    return out;
  }

  // Peers and ports of one rule; nullopt when its peers match nothing the target can name (the rule is left out).
  std::optional<OutRule> convert(const Rule& r, Direction d, const std::string& ns) {
    OutRule out;
    out.any_peer = r.any_peer;
    const std::string name = rule_name(d, r);
    for (const auto& peer : r.peers) {
      switch (peer.kind) {
        case Peer::Kind::Cidr:
          if (peer.cidr) out.cidrs.push_back(peer.cidr->str());
          break;
        case Peer::Kind::Network: {
          auto it = ctx_.networks.find(peer.value);
          if (it == ctx_.networks.end()) {
            note(peer.loc, fmt::format("{}: network '{}' cannot be resolved to CIDRs; peer left out", name, peer.value));
            break;
          }
          for (const auto& c : it->second) {
            auto pc = parse_cidr(c);
            if (pc.cidr) out.cidrs.push_back(pc.cidr->str());
            else note(peer.loc, fmt::format("{}: network '{}' has an invalid CIDR '{}'; left out", name, peer.value, c));
          }
          break;
        }
        case Peer::Kind::Service: {
          if (!valid_label_value(peer.value)) {
            note(peer.loc, fmt::format("{}: service '{}' is not a valid label value; peer left out", name, peer.value));
            break;
          }
          Pods pods{peer.value, ""};
          const auto* s = ctx_.find_service(peer.value);
          if (s && !s->k8s_namespace.empty()) {
            if (s->k8s_namespace != ns) pods.ns = s->k8s_namespace;
          } else {
            note(peer.loc, fmt::format("{}: the catalogue knows no namespace for service '{}'; it is selected as pods labelled {}={} in the "
                                       "object's own namespace", name, peer.value, o_.label_key, peer.value));
          }
          out.pods.push_back(std::move(pods));
          break;
        }
      }
    }
    // Never let a rule whose peers were all left out (or that had none that resolved) turn into "any peer".
    if (!out.any_peer && out.cidrs.empty() && out.pods.empty()) return std::nullopt;
    // As the compiler: ports without a protocol mean tcp and udp; a protocol without ports every port of it.
    std::vector<Protocol> protos;
    if (r.protocol != Protocol::Any) protos = {r.protocol};
    else if (!r.ports.empty()) protos = {Protocol::Tcp, Protocol::Udp};
    for (auto proto : protos) {
      if (r.ports.empty()) out.ports.push_back({proto, std::nullopt});
      for (const auto& range : r.ports) out.ports.push_back({proto, range});
    }
    return out;
  }

  // ---- rendering ----------------------------------------------------------------------------------------------------

  std::vector<std::pair<std::string, std::string>> subject_labels(const Object& obj) const {
    if (!obj.label) return {};
    return {{o_.label_key, *obj.label}};
  }

  std::string render(const Object& obj) const {
    YAML::Emitter e;
    e << YAML::BeginDoc;
    std::string head = fmt::format("hostscope policy {} ({})", p_->name, p_->loc.str());
    for (const auto& n : notes_) head += "\n" + n.str();
    e << YAML::Comment(head) << YAML::Newline;
    e << YAML::BeginMap;
    e << YAML::Key << "apiVersion" << YAML::Value << (kube() ? "networking.k8s.io/v1" : "cilium.io/v2");
    e << YAML::Key << "kind" << YAML::Value << kind();
    e << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap << YAML::Key << "name" << YAML::Value;
    quoted(e, obj.out.name);
    if (!obj.ns.empty()) {
      e << YAML::Key << "namespace" << YAML::Value;
      quoted(e, obj.ns);
    }
    e << YAML::EndMap;
    e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
    if (kube()) render_kube(e, obj);
    else render_cilium(e, obj);
    e << YAML::EndMap << YAML::EndMap;
    return std::string(e.c_str()) + "\n";
  }

  void render_kube(YAML::Emitter& e, const Object& obj) const {
    e << YAML::Key << "podSelector" << YAML::Value;
    match_labels(e, subject_labels(obj));
    e << YAML::Key << "policyTypes" << YAML::Value << YAML::Flow << YAML::BeginSeq;
    if (obj.ingress.emit) e << "Ingress";
    if (obj.egress.emit) e << "Egress";
    e << YAML::EndSeq;
    for (auto [d, od] : {std::pair{Direction::Ingress, &obj.ingress}, {Direction::Egress, &obj.egress}}) {
      if (!od->emit || od->allow.empty()) continue;  // listed in policyTypes without rules: everything is denied
      e << YAML::Key << to_string(d) << YAML::Value << YAML::BeginSeq;
      for (const auto& r : od->allow) {
        e << YAML::BeginMap;
        if (!r.any_peer) {
          e << YAML::Key << (d == Direction::Ingress ? "from" : "to") << YAML::Value << YAML::BeginSeq;
          for (const auto& c : r.cidrs) {
            e << YAML::BeginMap << YAML::Key << "ipBlock" << YAML::Value << YAML::BeginMap << YAML::Key << "cidr" << YAML::Value;
            quoted(e, c);
            e << YAML::EndMap << YAML::EndMap;
          }
          for (const auto& pods : r.pods) {
            e << YAML::BeginMap << YAML::Key << "podSelector" << YAML::Value;
            match_labels(e, {{o_.label_key, pods.label}});
            if (!pods.ns.empty()) {
              e << YAML::Key << "namespaceSelector" << YAML::Value;
              match_labels(e, {{kNamespaceNameLabel, pods.ns}});
            }
            e << YAML::EndMap;
          }
          e << YAML::EndSeq;
        }
        if (!r.ports.empty()) {
          e << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
          for (const auto& p : r.ports) {
            e << YAML::BeginMap << YAML::Key << "protocol" << YAML::Value << proto_name(p.proto);
            if (p.range) {
              e << YAML::Key << "port" << YAML::Value << p.range->first;
              if (p.range->last != p.range->first) e << YAML::Key << "endPort" << YAML::Value << p.range->last;
            }
            e << YAML::EndMap;
          }
          e << YAML::EndSeq;
        }
        e << YAML::EndMap;
      }
      e << YAML::EndSeq;
    }
  }

  void cilium_ports(YAML::Emitter& e, const OutRule& r) const {
    if (r.ports.empty()) return;
    e << YAML::Key << "toPorts" << YAML::Value << YAML::BeginSeq;
    for (size_t i = 0; i < r.ports.size(); i += kCiliumPortsPerRule) {
      e << YAML::BeginMap << YAML::Key << "ports" << YAML::Value << YAML::BeginSeq;
      for (size_t k = i; k < std::min(r.ports.size(), i + kCiliumPortsPerRule); ++k) {
        const auto& p = r.ports[k];
        // Port "0" is Cilium's every port of the protocol.
        e << YAML::BeginMap << YAML::Key << "port" << YAML::Value;
        quoted(e, std::to_string(p.range ? p.range->first : 0));
        if (p.range && p.range->last != p.range->first) e << YAML::Key << "endPort" << YAML::Value << p.range->last;
        e << YAML::Key << "protocol" << YAML::Value << proto_name(p.proto) << YAML::EndMap;
      }
      e << YAML::EndSeq << YAML::EndMap;
    }
    e << YAML::EndSeq;
  }

  // Cilium refuses one rule that combines endpoint, CIDR and entity selectors, so each kind of peer is its own rule
  // with the same ports (rules are ORed, so this matches the same traffic).
  void cilium_rules(YAML::Emitter& e, Direction d, const std::vector<OutRule>& rules, bool allow_all) const {
    const bool in = d == Direction::Ingress;
    e << YAML::BeginSeq;
    if (allow_all) e << YAML::BeginMap << YAML::Key << (in ? "fromEntities" : "toEntities") << YAML::Value << YAML::Flow << YAML::BeginSeq << "all" << YAML::EndSeq << YAML::EndMap;
    for (const auto& r : rules) {
      if (r.any_peer) {
        e << YAML::BeginMap << YAML::Key << (in ? "fromEntities" : "toEntities") << YAML::Value << YAML::Flow << YAML::BeginSeq << "all" << YAML::EndSeq;
        cilium_ports(e, r);
        e << YAML::EndMap;
        continue;
      }
      if (!r.cidrs.empty()) {
        e << YAML::BeginMap << YAML::Key << (in ? "fromCIDR" : "toCIDR") << YAML::Value << YAML::BeginSeq;
        for (const auto& c : r.cidrs) quoted(e, c);
        e << YAML::EndSeq;
        cilium_ports(e, r);
        e << YAML::EndMap;
      }
      if (!r.pods.empty()) {
        e << YAML::BeginMap << YAML::Key << (in ? "fromEndpoints" : "toEndpoints") << YAML::Value << YAML::BeginSeq;
        for (const auto& pods : r.pods) {
          std::vector<std::pair<std::string, std::string>> labels = {{o_.label_key, pods.label}};
          if (!pods.ns.empty()) labels.emplace_back(kCiliumNamespaceLabel, pods.ns);
          match_labels(e, labels);
        }
        e << YAML::EndSeq;
        cilium_ports(e, r);
        e << YAML::EndMap;
      }
    }
    e << YAML::EndSeq;
  }

  void render_cilium(YAML::Emitter& e, const Object& obj) const {
    e << YAML::Key << "endpointSelector" << YAML::Value;
    match_labels(e, subject_labels(obj));
    for (auto [d, od] : {std::pair{Direction::Ingress, &obj.ingress}, {Direction::Egress, &obj.egress}}) {
      if (!od->emit) continue;
      e << YAML::Key << to_string(d) << YAML::Value;
      if (od->allow.empty() && !od->allow_all) {
        // An empty rule allows nothing but puts the endpoint into default deny for this direction.
        e << YAML::BeginSeq << YAML::Flow << YAML::BeginMap << YAML::EndMap << YAML::EndSeq;
      } else {
        cilium_rules(e, d, od->allow, od->allow_all);
      }
      if (od->deny.empty()) continue;
      e << YAML::Key << (d == Direction::Ingress ? "ingressDeny" : "egressDeny") << YAML::Value;
      cilium_rules(e, d, od->deny, false);
    }
  }
};

}  // namespace

std::string ExportNote::str() const { return fmt::format("{}: note: policy {}: {}", loc.str(), policy, text); }

std::string ExportResult::stream() const {
  std::string s;
  for (const auto& o : objects) s += o.yaml;
  return s;
}

ExportResult export_policies(const PolicySet& set, const Context& ctx, const ExportOptions& o) { return Exporter(set, ctx, o).run(); }

std::string dns_subdomain(std::string_view name) {
  std::string s;
  for (char c : name) {
    char l = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    s += (lower_alnum(l) || l == '-' || l == '.') ? l : '-';
  }
  if (s.size() > 253) s.resize(253);
  auto edge = [](char c) { return !lower_alnum(c); };
  while (!s.empty() && edge(s.back())) s.pop_back();
  size_t lead = 0;
  while (lead < s.size() && edge(s[lead])) ++lead;
  s.erase(0, lead);
  return s.empty() ? "policy" : s;
}

bool valid_label_key(std::string_view key) {
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return label_name(key);
  auto prefix = key.substr(0, slash);
  return !prefix.empty() && prefix.size() <= 253 && dns_subdomain(prefix) == prefix && label_name(key.substr(slash + 1));
}

bool valid_label_value(std::string_view value) { return value.empty() || label_name(value); }

}  // namespace hostscope::policy
