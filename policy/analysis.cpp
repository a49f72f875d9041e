#include "policy/analysis.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

namespace hostscope::policy {

std::string Target::str() const {
  switch (kind) {
    case Kind::Cgroup: return fmt::format("cgroup {}", cgroup);
    case Kind::Address: return fmt::format("address {}", cidr.str());
    case Kind::LocalPort: return fmt::format("local port {}", port);
  }
  return "?";
}

std::vector<Cidr> service_addresses(const ServiceInfo& s) {
  std::vector<Cidr> out;
  for (const auto& a : s.addresses)
    if (auto c = parse_cidr(a); c.cidr) out.push_back(*c.cidr);
  return out;
}

namespace {

// Drops CIDRs covered by another one so "can this peer list match X" questions stay simple.
std::vector<Cidr> minimize(std::vector<Cidr> v) {
  std::sort(v.begin(), v.end(), [](const Cidr& a, const Cidr& b) { return a.prefix < b.prefix || (a.prefix == b.prefix && a < b); });
  std::vector<Cidr> out;
  for (const auto& c : v)
    if (std::none_of(out.begin(), out.end(), [&](const Cidr& o) { return o.contains(c); })) out.push_back(c);
  std::sort(out.begin(), out.end());
  return out;
}

bool ports_cover(const std::vector<PortRange>& outer, const std::vector<PortRange>& inner) {
  if (outer.empty()) return true;
  if (inner.empty()) return false;
  for (const auto& r : inner) {
    // Walk the inner range through the (possibly overlapping) outer ranges.
    uint32_t next = r.first;
    bool progress = true;
    while (next <= r.last && progress) {
      progress = false;
      for (const auto& o : outer)
        if (o.first <= next && o.last >= next) {
          next = static_cast<uint32_t>(o.last) + 1;
          progress = true;
        }
    }
    if (next <= r.last) return false;
  }
  return true;
}

// xt_cgroup matches a cgroup and everything below it.
bool cgroup_covers(const std::string& outer, const std::string& inner) {
  return outer == "/" || inner == outer || (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 && inner[outer.size()] == '/');
}

bool peers_cover(const ResolvedRule& outer, const ResolvedRule& inner) {
  if (outer.any_peer) return true;
  if (inner.any_peer) return false;
  bool cidrs = std::all_of(inner.peers.begin(), inner.peers.end(), [&](const Cidr& c) {
    return std::any_of(outer.peers.begin(), outer.peers.end(), [&](const Cidr& o) { return o.contains(c); });
  });
  bool cgroups = std::all_of(inner.local_cgroups.begin(), inner.local_cgroups.end(), [&](const std::string& c) {
    return std::any_of(outer.local_cgroups.begin(), outer.local_cgroups.end(), [&](const std::string& o) { return cgroup_covers(o, c); });
  });
  bool ports = std::includes(outer.local_ports.begin(), outer.local_ports.end(), inner.local_ports.begin(), inner.local_ports.end());
  return cidrs && cgroups && ports;
}

class Analyzer {
 public:
  Analyzer(const PolicySet& set, const Context& ctx) : set_(set), ctx_(ctx) {}

  Analysis run() {
    check_duplicate_names();
    for (const auto& p : set_.policies) out_.policies.push_back(resolve(p));
    for (const auto& rp : out_.policies) {
      check_shadowing(rp);
      check_families(rp);
    }
    check_conflicts();
    check_tests();
    return std::move(out_);
  }

 private:
  void error(const SourceLoc& l, std::string m) { out_.diagnostics.push_back({Severity::Error, l, std::move(m)}); }
  void warning(const SourceLoc& l, std::string m) { out_.diagnostics.push_back({Severity::Warning, l, std::move(m)}); }

  std::string unknown_service_hint(const std::string& name) const {
    std::vector<std::string_view> names;
    names.reserve(ctx_.services.size());
    for (const auto& s : ctx_.services) names.push_back(s.name);
    auto hint = closest_word(name, names);
    return hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint);
  }

  void check_duplicate_names() {
    std::map<std::string, SourceLoc> seen;
    for (const auto& p : set_.policies) {
      auto [it, fresh] = seen.emplace(p.name, p.name_loc);
      if (!fresh)
        error(p.name_loc, fmt::format("duplicate NetworkPolicy name '{}': also defined at {}; names must be unique in a policy set",
                                      p.name, it->second.str()));
    }
    std::map<std::string, SourceLoc> tests;
    for (const auto& t : set_.tests) {
      auto [it, fresh] = tests.emplace(t.name, t.name_loc);
      if (!fresh)
        error(t.name_loc, fmt::format("duplicate PolicyTest name '{}': also defined at {}", t.name, it->second.str()));
    }
  }

  bool attr_match(const ServiceInfo& s, const std::string& key, const std::string& v) const {
    if (key == "service") return s.name == v;
    if (key == "go_module") return s.go_module == v;
    if (key == "namespace") return s.k8s_namespace == v;
    if (key == "workload") return s.workload == v;
    if (key == "exe") return s.exe == v;
    return false;
  }

  ResolvedPolicy resolve(const NetworkPolicy& p) {
    ResolvedPolicy rp;
    rp.policy = &p;
    std::vector<std::string> cgroups;
    std::vector<Cidr> addrs;
    std::vector<uint16_t> ports;
    if (p.subject.cgroup) {
      cgroups.push_back(*p.subject.cgroup);
    } else if (!p.subject.attrs.empty()) {
      std::vector<const ServiceInfo*> matched;
      for (const auto& s : ctx_.services)
        if (std::all_of(p.subject.attrs.begin(), p.subject.attrs.end(),
                        [&](const auto& kv) { return attr_match(s, kv.first, kv.second); }))
          matched.push_back(&s);
      if (matched.empty()) {
        auto svc = p.subject.attrs.find("service");
        if (svc != p.subject.attrs.end() && p.subject.attrs.size() == 1)
          warning(p.subject.loc, fmt::format("subject service '{}' is not in the service catalogue{}; policy '{}' selects nothing until it appears",
                                             svc->second, unknown_service_hint(svc->second), p.name));
        else
          warning(p.subject.loc, fmt::format("subject of policy '{}' matches no known service; it selects nothing until one appears", p.name));
      }
      for (const auto* s : matched) {
        for (const auto& cg : s->cgroups) {
          if (safe_cgroup_path(cg)) cgroups.push_back(cg);
          else warning(p.subject.loc, fmt::format("service '{}' has an unusable cgroup path '{}' in the catalogue; skipped", s->name, cg));
        }
        auto a = service_addresses(*s);
        addrs.insert(addrs.end(), a.begin(), a.end());
        if (!s->cgroups.empty()) ports.insert(ports.end(), s->ports.begin(), s->ports.end());
      }
    }
    std::sort(cgroups.begin(), cgroups.end());
    cgroups.erase(std::unique(cgroups.begin(), cgroups.end()), cgroups.end());
    addrs = minimize(addrs);
    std::sort(ports.begin(), ports.end());
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());

    for (const auto& c : cgroups) rp.egress_targets.push_back({Target::Kind::Cgroup, c, {}, 0});
    for (const auto& a : addrs) {
      rp.egress_targets.push_back({Target::Kind::Address, "", a, 0});
      rp.ingress_targets.push_back({Target::Kind::Address, "", a, 0});
    }
    for (auto port : ports) rp.ingress_targets.push_back({Target::Kind::LocalPort, "", {}, port});
    if (!p.ingress.empty() || p.default_ingress != Action::Allow) {
      if (!cgroups.empty() && ports.empty())
        warning(p.subject.loc, fmt::format("ingress of policy '{}' is not enforced for its local processes: no listening ports are known "
                                           "for them and the cgroup match only sees packets they send",
                                           p.name));
    }
    for (const auto& r : p.egress) rp.egress.push_back(resolve_rule(r, Direction::Egress));
    for (const auto& r : p.ingress) rp.ingress.push_back(resolve_rule(r, Direction::Ingress));
    return rp;
  }

  ResolvedRule resolve_rule(const Rule& r, Direction dir) {
    ResolvedRule rr;
    rr.rule = &r;
    rr.any_peer = r.any_peer;
    std::vector<Cidr> peers;
    for (const auto& peer : r.peers) {
      size_t before = peers.size();
      bool local = false;
      switch (peer.kind) {
        case Peer::Kind::Cidr:
          if (peer.cidr) peers.push_back(*peer.cidr);
          break;
        case Peer::Kind::Service: {
          const auto* s = ctx_.find_service(peer.value);
          if (!s) {
            warning(peer.loc, fmt::format("peer service '{}' is not in the service catalogue{}; this peer matches nothing",
                                          peer.value, unknown_service_hint(peer.value)));
            break;
          }
          auto a = service_addresses(*s);
          local = resolve_local_peer(*s, peer, dir, rr);
          if (a.empty() && !local) {
            if (s->cgroups.empty())
              warning(peer.loc, fmt::format("peer service '{}' has no known addresses; this peer matches nothing", peer.value));
            else
              warning(peer.loc, fmt::format("peer service '{}' has no known addresses and no known listening ports for its local "
                                            "processes; this egress peer matches nothing",
                                            peer.value));
          }
          peers.insert(peers.end(), a.begin(), a.end());
          break;
        }
        case Peer::Kind::Network: {
          auto it = ctx_.networks.find(peer.value);
          if (it == ctx_.networks.end()) {
            std::vector<std::string_view> names;
            names.reserve(ctx_.networks.size());
            for (const auto& [n, _] : ctx_.networks) names.push_back(n);
            auto hint = closest_word(peer.value, names);
            error(peer.loc, fmt::format("unknown network '{}'{}; named networks come from the agent config (networks:)",
                                        peer.value, hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
            break;
          }
          for (const auto& c : it->second) {
            auto pc = parse_cidr(c);
            if (pc.cidr) peers.push_back(*pc.cidr);
            else error(peer.loc, fmt::format("network '{}' in the agent config has an invalid CIDR '{}': {}", peer.value, c, pc.error));
          }
          break;
        }
      }
      rr.peer_families.push_back(local ? kV4 | kV6 : families_of(peers.begin() + before, peers.end()));
    }
    rr.peers = minimize(peers);
    for (auto* v : {&rr.local_cgroups}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    std::sort(rr.local_ports.begin(), rr.local_ports.end());
    rr.local_ports.erase(std::unique(rr.local_ports.begin(), rr.local_ports.end()), rr.local_ports.end());
    return rr;
  }

  // A `service:` peer with local processes stands for them too (docs/policy.md, "Local services as peers"): as
  // clients by their cgroups (ingress), as servers by their listening ports at a local address (egress). Returns
  // whether it stands for any.
  bool resolve_local_peer(const ServiceInfo& s, const Peer& peer, Direction dir, ResolvedRule& rr) {
    if (s.cgroups.empty()) return false;
    if (dir == Direction::Egress) {
      rr.local_ports.insert(rr.local_ports.end(), s.ports.begin(), s.ports.end());
      return !s.ports.empty();
    }
    bool any = false;
    for (const auto& cg : s.cgroups) {
      if (!safe_cgroup_path(cg)) {
        warning(peer.loc, fmt::format("service '{}' has an unusable cgroup path '{}' in the catalogue; skipped", s.name, cg));
        continue;
      }
      rr.local_cgroups.push_back(cg);
      any = true;
    }
    return any;
  }

  static constexpr unsigned kV4 = 1, kV6 = 2;
  template <typename It>
  static unsigned families_of(It first, It last) {
    unsigned f = 0;
    for (; first != last; ++first) f |= first->addr.family == Family::V4 ? kV4 : kV6;
    return f;
  }
  static const char* family_name(unsigned f) { return f == kV4 ? "IPv4" : "IPv6"; }

  // A subject made only of addresses of one family is dispatched in that family's table only (local processes,
  // cgroups and listening ports, send and receive in both): rules and peers of the other family never match.
  void check_families(const ResolvedPolicy& rp) {
    for (auto dir : {Direction::Egress, Direction::Ingress}) {
      unsigned subject = 0;
      std::string addrs;
      for (const auto& t : rp.targets(dir)) {
        if (t.kind != Target::Kind::Address) subject |= kV4 | kV6;
        else {
          subject |= t.cidr.addr.family == Family::V4 ? kV4 : kV6;
          if (addrs.size() < 200) addrs += (addrs.empty() ? "" : ", ") + t.cidr.str();
        }
      }
      if (subject != kV4 && subject != kV6) continue;  // both families, or selects nothing (warned already)
      unsigned other = subject ^ (kV4 | kV6);
      for (const auto& rr : rp.rules(dir)) {
        if (rr.any_peer || rr.peers.empty()) continue;
        const Rule& r = *rr.rule;
        if (!rr.has_local() && families_of(rr.peers.begin(), rr.peers.end()) == other) {
          warning(r.loc, fmt::format("{} rule {} of policy '{}' can never match: its peers are all {} and the subject has only {} "
                                     "addresses ({}), so it is enforced in the {} table only",
                                     to_string(dir), r.index, rp.policy->name, family_name(other), family_name(subject), addrs,
                                     family_name(subject)));
          continue;
        }
        for (size_t i = 0; i < r.peers.size() && i < rr.peer_families.size(); ++i)
          if (rr.peer_families[i] == other)
            warning(r.peers[i].loc, fmt::format("peer {} '{}' of {} rule {} of policy '{}' can never match: it is {} and the subject has "
                                                "only {} addresses ({})",
                                                peer_kind(r.peers[i].kind), r.peers[i].value, to_string(dir), r.index, rp.policy->name,
                                                family_name(other), family_name(subject), addrs));
      }
    }
  }
  static const char* peer_kind(Peer::Kind k) {
    switch (k) {
      case Peer::Kind::Service: return "service";
      case Peer::Kind::Cidr: return "cidr";
      case Peer::Kind::Network: return "network";
    }
    return "?";
  }

  static bool protocols_cover(const Rule& outer, const Rule& inner) {
    return outer.protocol == Protocol::Any || outer.protocol == inner.protocol;
  }

  // A rule is shadowed when an earlier rule (not `log`) covers its protocol, ports and peers. Checking every
  // earlier rule is quadratic (10k rules: 50M checks), so earlier rules are indexed by what a covering rule must
  // contain: the later rule's first port (rules with any peer) or its first peer (rules with peers). Candidates are
  // then checked in order with the same predicate, so the first shadowing rule is still the one reported.
  class ShadowIndex {
   public:
    void add(size_t i, const ResolvedRule& rr) {
      const Rule& r = *rr.rule;
      if (rr.any_peer) {
        if (r.ports.empty()) return any_port_.push_back(i);
        size_t width = 0;
        for (const auto& pr : r.ports) width += size_t(pr.last) - pr.first + 1;
        if (width > kMaxIndexedPorts) return wide_.push_back(i);
        for (const auto& pr : r.ports)
          for (uint32_t port = pr.first; port <= pr.last; port++) by_port_[uint16_t(port)].push_back(i);
        return;
      }
      if (rr.has_local()) local_.push_back(i);
      for (const auto& c : rr.peers) {
        by_peer_[key(c.addr, c.prefix)].push_back(i);
        lengths_[c.addr.family == Family::V4 ? 0 : 1].insert(c.prefix);
      }
    }

    // Earlier rules that might cover `rr`, ascending; everything when no index applies.
    std::vector<size_t> candidates(const ResolvedRule& rr, size_t j) const {
      std::vector<size_t> out;
      if (rr.matches_nothing()) {  // any earlier rule covers it
        for (size_t i = 0; i < j; i++) out.push_back(i);
        return out;
      }
      const Rule& r = *rr.rule;
      out.insert(out.end(), any_port_.begin(), any_port_.end());
      if (!r.ports.empty()) {
        out.insert(out.end(), wide_.begin(), wide_.end());
        if (auto it = by_port_.find(r.ports.front().first); it != by_port_.end())
          out.insert(out.end(), it->second.begin(), it->second.end());
      }
      // A rule with local peers is covered only by one with local peers too (or any peer); with addresses as well,
      // the covering rule also has a peer covering the first address, so the address index finds it.
      if (!rr.any_peer && rr.peers.empty()) out.insert(out.end(), local_.begin(), local_.end());
      if (!rr.any_peer && !rr.peers.empty()) {
        const Cidr& c = rr.peers.front();
        for (int len : lengths_[c.addr.family == Family::V4 ? 0 : 1]) {
          if (len > c.prefix) break;
          if (auto it = by_peer_.find(key(c.addr, len)); it != by_peer_.end())
            out.insert(out.end(), it->second.begin(), it->second.end());
        }
      }
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
    }

   private:
    static constexpr size_t kMaxIndexedPorts = 256;
    static std::string key(const IpAddr& a, int len) {
      std::string k(1, char(a.family == Family::V4 ? 4 : 6));
      k.push_back(char(len));
      for (int b = 0; b < (a.family == Family::V4 ? 4 : 16); b++) {
        int keep = std::clamp(len - 8 * b, 0, 8);
        k.push_back(char(keep == 0 ? 0 : a.bytes[b] & uint8_t(0xff << (8 - keep))));
      }
      return k;
    }
    std::vector<size_t> any_port_, wide_, local_;
    std::unordered_map<uint16_t, std::vector<size_t>> by_port_;
    std::unordered_map<std::string, std::vector<size_t>> by_peer_;
    std::set<int> lengths_[2];
  };

  void check_shadowing(const ResolvedPolicy& rp) {
    for (auto dir : {Direction::Egress, Direction::Ingress}) {
      const auto& rules = rp.rules(dir);
      ShadowIndex index;
      for (size_t j = 0; j < rules.size(); ++j) {
        const Rule& b = *rules[j].rule;
        for (size_t i : index.candidates(rules[j], j)) {
          const Rule& a = *rules[i].rule;
          if (a.action == Action::Log) continue;  // log does not stop evaluation
          if (protocols_cover(a, b) && ports_cover(a.ports, b.ports) && peers_cover(rules[i], rules[j])) {
            warning(b.loc, fmt::format("{} rule {} of policy '{}' can never match: rule {} at {} ({}) already matches everything it matches",
                                       to_string(dir), b.index, rp.policy->name, a.index, a.loc.str(), to_string(a.action)));
            break;
          }
        }
        if (b.action != Action::Log) index.add(j, rules[j]);
      }
    }
  }

  void check_conflicts() {
    struct Claim {
      const NetworkPolicy* p;
    };
    for (auto dir : {Direction::Egress, Direction::Ingress}) {
      std::map<std::string, const NetworkPolicy*> first;  // target -> first policy selecting it
      std::set<std::pair<std::string, std::string>> reported;
      for (const auto& rp : out_.policies) {
        const auto* p = rp.policy;
        for (const auto& t : rp.targets(dir)) {
          auto [it, fresh] = first.emplace(t.str(), p);
          if (fresh || it->second == p) continue;
          const auto* q = it->second;
          if (!reported.emplace(q->name, p->name).second) continue;
          std::string what;
          if (q->default_action(dir) != p->default_action(dir))
            what = fmt::format("different {} defaults ({} in '{}', {} in '{}')", to_string(dir), to_string(q->default_action(dir)),
                               q->name, to_string(p->default_action(dir)), p->name);
          else if (q->failsafe != p->failsafe)
            what = fmt::format("different failsafe settings ({} in '{}', {} in '{}')", q->failsafe, q->name, p->failsafe, p->name);
          else if (q->mode != p->mode)
            what = fmt::format("different modes ({} in '{}', {} in '{}')", to_string(q->mode), q->name, to_string(p->mode), p->name);
          else
            continue;
          error(p->default_loc, fmt::format("policy '{}' conflicts with policy '{}' ({}): both select {} for {} but have {}; "
                                            "make them agree or select disjoint subjects",
                                            p->name, q->name, q->name_loc.str(), t.str(), to_string(dir), what));
        }
      }
    }
  }

  void check_tests() {
    for (const auto& t : set_.tests)
      for (const auto& c : t.cases)
        for (const auto* end : {&c.from, &c.to}) {
          if (ctx_.find_service(*end) || IpAddr::parse(*end)) continue;
          error(c.loc, fmt::format("test case '{}': '{}' is neither a known service{} nor an IP address", c.name, *end,
                                   unknown_service_hint(*end)));
        }
  }

  const PolicySet& set_;
  const Context& ctx_;
  Analysis out_;
};

}  // namespace

Analysis analyze(const PolicySet& set, const Context& ctx) { return Analyzer(set, ctx).run(); }

LintReport lint(const LoadResult& loaded, const Context& ctx) {
  LintReport r;
  r.diagnostics = loaded.diagnostics;
  auto a = analyze(loaded.set, ctx);
  r.diagnostics.insert(r.diagnostics.end(), a.diagnostics.begin(), a.diagnostics.end());
  sort_diagnostics(r.diagnostics);
  return r;
}

}  // namespace hostscope::policy
