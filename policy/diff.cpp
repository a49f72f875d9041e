#include "policy/diff.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/topology_json.h"

namespace hostscope::policy {
namespace {

// Bound on the classes evaluated (each against both generations): about a second of evaluator time here.
constexpr size_t kMaxClasses = 2'000'000;

// The address after the last one of `c`, or nothing when `c` ends the address space.
std::optional<IpAddr> after_last(const Cidr& c) {
  IpAddr a = c.addr;
  const int bytes = a.is_v4() ? 4 : 16;
  for (int i = c.prefix; i < bytes * 8; ++i) a.bytes[i / 8] |= uint8_t(0x80u >> (i % 8));
  for (int i = bytes - 1; i >= 0; --i)
    if (++a.bytes[i] != 0) return a;
  return std::nullopt;
}

struct SubjectEnd {
  Endpoint ep;
  std::string label;
  std::optional<uint16_t> only_port;  // a local-port target is reached on that port only
};

SubjectEnd subject_end(const Target& t) {
  switch (t.kind) {
    case Target::Kind::Cgroup: return {Endpoint{std::nullopt, t.cgroup, true}, t.str(), std::nullopt};
    case Target::Kind::Address: return {Endpoint{t.cidr.addr, "", false}, "address " + t.cidr.addr.str(), std::nullopt};
    case Target::Kind::LocalPort: return {Endpoint{std::nullopt, "", true}, t.str(), t.port};
  }
  return {};
}

const ResolvedPolicy* find_policy(const Analysis* a, const std::string& name) {
  if (!a) return nullptr;
  for (const auto& p : a->policies)
    if (p.policy && p.policy->name == name) return &p;
  return nullptr;
}

bool starts_with(const std::string& s, std::string_view p) { return s.size() >= p.size() && s.compare(0, p.size(), p) == 0; }

// The rules of one IR by owner (policy name, or "hs.*" for hostscope's own), indexed once per diff rather than
// walked again for every policy.
using RulesByOwner = std::map<std::string, std::vector<std::pair<const IrTable*, const IrRule*>>>;

RulesByOwner by_owner(const Ir* ir) {
  RulesByOwner out;
  if (!ir) return out;
  for (const IrTable* t : {&ir->v4, &ir->v6})
    for (const auto& c : t->chains)
      for (const auto& r : c.rules) out[r.owner].push_back({t, &r});
  return out;
}

// Peers (by direction) and port boundaries named by the rules of policy `name` and by hostscope's own rules, and the
// cgroups of local peers its ingress rules name (a local sender is matched by its cgroup).
void collect_atoms(const RulesByOwner& rules, const std::string& name, Direction dir, std::vector<Cidr>& peers,
                   std::set<uint32_t>& ports, std::set<std::string>& peer_cgroups) {
  const std::string dir_prefix = std::string(to_string(dir)) + " ";
  for (const auto& [owner, list] : rules) {
    const bool own = owner == name;
    if (!own && !starts_with(owner, "hs.")) continue;
    for (const auto& [t, r] : list) {
      for (const auto& pr : r->match.dports) {
        ports.insert(pr.first);
        ports.insert(uint32_t(pr.last) + 1);
      }
      if (!own || !starts_with(r->what, dir_prefix)) continue;
      const auto& cidr = dir == Direction::Egress ? r->match.dst : r->match.src;
      const auto& set = dir == Direction::Egress ? r->match.dst_set : r->match.src_set;
      if (cidr) peers.push_back(*cidr);
      if (dir == Direction::Ingress && !r->match.cgroup.empty()) peer_cgroups.insert(r->match.cgroup);
      if (!set.empty())
        if (const IrSet* s = t->find_set(set)) peers.insert(peers.end(), s->members.begin(), s->members.end());
    }
  }
}

std::string peer_label(const IpAddr& a, const std::vector<Cidr>& peers, const Context& ctx) {
  const Cidr* best = nullptr;
  for (const auto& c : peers)
    if (c.contains(a) && (!best || c.prefix > best->prefix)) best = &c;
  if (!best) return a.is_v4() ? "any other IPv4 address" : "any other IPv6 address";
  for (const auto& s : ctx.services)
    for (const auto& sc : service_addresses(s))
      if (sc == *best) return fmt::format("service {} ({})", s.name, best->str());
  return best->str();
}

// A representative peer: an address, or local processes (at a loopback address) of one cgroup or of any.
struct Probe {
  Endpoint ep;
  std::string key;
  bool local = false;
  std::string cgroup;
};

// A cgroup below none that a rule can name except "/": local processes the rules do not name.
constexpr std::string_view kOtherCgroup = "/.hostscope-diff-other";

std::string local_peer_label(Direction dir, const std::string& cgroup, const Context& ctx) {
  if (dir == Direction::Egress) return "local processes";
  if (cgroup == kOtherCgroup) return "other local processes";
  for (const auto& s : ctx.services)
    if (std::find(s.cgroups.begin(), s.cgroups.end(), cgroup) != s.cgroups.end())
      return fmt::format("local processes in cgroup {} (service {})", cgroup, s.name);
  return "local processes in cgroup " + cgroup;
}

struct Eval {
  Verdict v = Verdict::Allow;
  const IrRule* decided = nullptr;
};

Eval eval(const Ir& ir, const Endpoint& from, const Endpoint& to, Protocol proto, uint16_t port) {
  Trace t;
  t.record_steps = false;
  Eval e;
  e.v = evaluate_connection(ir, from, to, proto, port, &t);
  e.decided = t.decided;
  return e;
}

std::string ports_text(const PortRange& r) { return r.first == r.last ? std::to_string(r.first) : r.to_string(); }

}  // namespace

std::string describe_rule(const IrRule* r, const PolicySet& set) {
  if (!r) return "";
  if (starts_with(r->owner, "hs.")) return "hostscope: " + r->what;
  for (const auto& p : set.policies) {
    if (p.name != r->owner) continue;
    SourceLoc loc = p.loc;
    for (auto dir : {Direction::Egress, Direction::Ingress}) {
      const std::string d = to_string(dir);
      int n = 0;
      if (std::sscanf(r->what.c_str(), (d + " rule %d").c_str(), &n) == 1 && n >= 1 && size_t(n) <= p.rules(dir).size())
        loc = p.rules(dir)[size_t(n) - 1].loc;
      else if (starts_with(r->what, d + " default"))
        loc = p.default_loc.line ? p.default_loc : p.loc;
    }
    return fmt::format("policy {}: {} at {}", p.name, r->what, loc.str());
  }
  return fmt::format("policy {}: {}", r->owner, r->what);
}

bool DiffResult::newly_denied() const {
  return std::any_of(changes.begin(), changes.end(), [](const VerdictChange& c) { return c.newly_denied(); });
}

DiffResult semantic_diff(const DiffSide& before, const DiffSide& after, const Context& ctx) {
  DiffResult out;
  std::vector<std::string> names;
  for (const DiffSide* side : {&before, &after})
    if (side->set)
      for (const auto& p : side->set->policies)
        if (std::find(names.begin(), names.end(), p.name) == names.end()) names.push_back(p.name);

  // One evaluated class per (direction, subject end, peer address, protocol, port atom), whichever policy led to it.
  std::set<std::string> seen;
  const RulesByOwner rules_before = by_owner(before.ir), rules_after = by_owner(after.ir);
  for (const auto& name : names)
    for (auto dir : {Direction::Egress, Direction::Ingress}) {
      std::vector<SubjectEnd> ends;
      std::set<std::string> end_keys;
      for (const auto* rp : {find_policy(before.analysis, name), find_policy(after.analysis, name)})
        if (rp)
          for (const auto& t : rp->targets(dir))
            if (end_keys.insert(t.str()).second) ends.push_back(subject_end(t));
      if (ends.empty()) continue;
      std::vector<Cidr> peers;
      std::set<uint32_t> points{1};
      std::set<std::string> peer_cgroups;
      collect_atoms(rules_before, name, dir, peers, points, peer_cgroups);
      collect_atoms(rules_after, name, dir, peers, points, peer_cgroups);
      auto peer_atoms = std::make_shared<const std::vector<Cidr>>(peers);
      std::vector<Probe> probes;
      std::set<std::string> probe_keys;
      auto add_probe = [&](const IpAddr& a) {
        if (probe_keys.insert(a.str()).second) probes.push_back({Endpoint{a, "", false}, a.str(), false, ""});
      };
      for (const auto& c : peers) {
        add_probe(c.addr);
        if (auto n = after_last(c)) add_probe(*n);
      }
      add_probe(*IpAddr::parse("192.0.2.1"));
      add_probe(*IpAddr::parse("2001:db8::1"));
      // Local processes as peers: egress reaches them whatever their cgroup (INPUT cannot see it); ingress from them
      // is told apart by the sender's cgroup, so one class per cgroup the rules name and one for the rest.
      if (dir == Direction::Ingress) peer_cgroups.insert(std::string(kOtherCgroup));
      else peer_cgroups = {""};
      for (const char* lo : {"127.0.0.1", "::1"})
        for (const auto& cg : peer_cgroups)
          probes.push_back({Endpoint{*IpAddr::parse(lo), cg, true}, fmt::format("local:{}:{}", lo, cg), true, cg});
      std::vector<PortRange> atoms;
      for (auto it = points.begin(); it != points.end() && *it <= 65535; ++it) {
        auto next = std::next(it);
        uint32_t last = next == points.end() ? 65535 : std::min<uint32_t>(*next - 1, 65535);
        atoms.push_back({uint16_t(*it), uint16_t(last)});
      }

      for (const auto& end : ends)
        for (const auto& probe : probes) {
          if (end.ep.address && end.ep.address->family != probe.ep.address->family) continue;
          const Endpoint& peer = probe.ep;
          const Endpoint& from = dir == Direction::Egress ? end.ep : peer;
          const Endpoint& to = dir == Direction::Egress ? peer : end.ep;
          for (auto proto : {Protocol::Tcp, Protocol::Udp}) {
            VerdictChange* open = nullptr;  // the last change, extended while the next atom changes the same way
            for (const auto& atom : atoms) {
              if (end.only_port && !atom.contains(*end.only_port)) continue;
              const uint16_t port = end.only_port ? *end.only_port : atom.first;
              auto key = fmt::format("{}|{}|{}|{}|{}", int(dir), end.label, probe.key, int(proto), atom.first);
              if (!seen.insert(key).second) {
                open = nullptr;
                continue;
              }
              if (++out.classes > kMaxClasses) {
                out.truncated = true;
                goto done;
              }
              Eval b = before.ir ? eval(*before.ir, from, to, proto, port) : Eval{};
              Eval a = after.ir ? eval(*after.ir, from, to, proto, port) : Eval{};
              if (b.v == a.v) {
                open = nullptr;
                continue;
              }
              std::string db = before.set ? describe_rule(b.decided, *before.set) : "";
              std::string da = after.set ? describe_rule(a.decided, *after.set) : "";
              PortRange shown = end.only_port ? PortRange{port, port} : atom;
              if (open && open->before == b.v && open->after == a.v && open->decided_before == db &&
                  open->decided_after == da && uint32_t(open->ports.last) + 1 == shown.first) {
                open->ports.last = shown.last;
                continue;
              }
              VerdictChange c;
              c.subject = name;
              c.direction = dir;
              c.endpoint = end.label;
              c.peer = probe.local ? local_peer_label(dir, probe.cgroup, ctx) : peer_label(*probe.ep.address, peers, ctx);
              c.peer_address = probe.ep.address->str();
              c.peer_local = probe.local;
              c.peer_cgroup = probe.cgroup;
              c.protocol = proto;
              c.ports = shown;
              c.before = b.v;
              c.after = a.v;
              c.decided_before = std::move(db);
              c.decided_after = std::move(da);
              c.atoms = peer_atoms;
              out.changes.push_back(std::move(c));
              open = &out.changes.back();
            }
          }
        }
    }
done:
  std::stable_sort(out.changes.begin(), out.changes.end(), [](const VerdictChange& x, const VerdictChange& y) {
    return std::make_tuple(!x.newly_denied(), x.subject, int(x.direction), x.endpoint, x.peer_local, x.peer_address, x.peer_cgroup,
                           int(x.protocol), x.ports.first) <
           std::make_tuple(!y.newly_denied(), y.subject, int(y.direction), y.endpoint, y.peer_local, y.peer_address, y.peer_cgroup,
                           int(y.protocol), y.ports.first);
  });
  return out;
}

bool VerdictChange::covers(const IpAddr& peer, Protocol proto, uint16_t port) const {
  if (proto != protocol || !ports.contains(port)) return false;
  auto rep = IpAddr::parse(peer_address);
  if (!rep || rep->family != peer.family) return false;
  if (peer_local) return is_loopback(peer);
  if (!atoms) return true;
  return std::all_of(atoms->begin(), atoms->end(), [&](const Cidr& c) { return c.contains(peer) == c.contains(*rep); });
}

DiffImpact attach_impact(const DiffResult& d, const ImpactReport& report) {
  DiffImpact out;
  out.report = &report;
  out.per_change.resize(d.changes.size());
  for (size_t i = 0; i < report.changes.size(); ++i) {
    const auto& ch = report.changes[i];
    const auto& e = ch.edge;
    const Protocol proto = e.protocol == topology::Protocol::Udp ? Protocol::Udp : Protocol::Tcp;
    // Where each direction's peer is: the server (or the DNAT backends, as the filter table sees them) for egress,
    // the client for ingress, on the port the server was reached at.
    std::vector<std::pair<IpAddr, uint16_t>> servers;
    for (const auto& a : e.actual)
      if (auto hp = topology::parse_addr_port(a)) servers.push_back(*hp);
    if (servers.empty())
      if (auto a = IpAddr::parse(e.server.address)) servers.push_back({*a, e.port});
    const auto client = IpAddr::parse(e.client.address);
    bool placed = false;
    for (size_t k = 0; k < d.changes.size(); ++k) {
      const auto& c = d.changes[k];
      if (c.before != ch.before || c.after != ch.after || c.decided_before != ch.decided_before ||
          c.decided_after != ch.decided_after)
        continue;
      bool hit = false;
      if (c.direction == Direction::Egress) {
        hit = std::any_of(servers.begin(), servers.end(), [&](const auto& s) { return c.covers(s.first, proto, s.second); });
      } else if (client) {
        hit = std::any_of(servers.begin(), servers.end(), [&](const auto& s) { return c.covers(*client, proto, s.second); });
      }
      if (hit) {
        out.per_change[k].push_back(i);
        placed = true;
      }
    }
    if (!placed) out.outside.push_back(i);
  }
  return out;
}

namespace {

std::string observed_line(const ImpactChange& c) {
  return observed_edge_text(c.edge) + ", " + observed_counts_text(c.edge);
}

uint64_t observed_connections(const DiffImpact& impact, const std::vector<size_t>& edges) {
  uint64_t n = 0;
  for (size_t i : edges) n += impact.report->changes[i].edge.connections;
  return n;
}

}  // namespace

std::string diff_text(const DiffResult& d, const DiffImpact* impact) {
  std::string s;
  size_t denied = 0;
  for (size_t k = 0; k < d.changes.size(); ++k) {
    const auto& c = d.changes[k];
    denied += c.newly_denied();
    const bool egress = c.direction == Direction::Egress;
    s += fmt::format("{}{} {}: {} {} {} {}/{}: {} -> {}\n", c.newly_denied() ? "NEWLY DENIED " : "", c.subject,
                     to_string(c.direction), egress ? c.endpoint : c.peer, egress ? "->" : "<-", egress ? c.peer : c.endpoint,
                     to_string(c.protocol), ports_text(c.ports), to_string(c.before), to_string(c.after));
    if (!c.decided_before.empty()) s += fmt::format("    before: {}\n", c.decided_before);
    if (!c.decided_after.empty()) s += fmt::format("    after:  {}\n", c.decided_after);
    if (!impact) continue;
    const auto& edges = impact->per_change[k];  // report order: most connections first
    if (edges.empty()) s += "    observed: no edge\n";
    for (size_t j = 0; j < edges.size() && j < kObservedShown; ++j)
      s += "    observed: " + observed_line(impact->report->changes[edges[j]]) + "\n";
    if (edges.size() > kObservedShown)
      s += fmt::format("    observed: and {} more edge(s), {} connection(s) in all\n", edges.size() - kObservedShown,
                       observed_connections(*impact, edges));
  }
  s += fmt::format("{} verdict change(s), {} newly denied, over {} connection classes{}\n", d.changes.size(), denied,
                   d.classes, d.truncated ? fmt::format(" (stopped at the bound of {} classes: the diff is incomplete)", kMaxClasses) : "");
  if (impact) {
    const auto& r = *impact->report;
    size_t with_edges = 0;
    for (const auto& e : impact->per_change) with_edges += !e.empty();
    size_t newly = std::count_if(r.changes.begin(), r.changes.end(), [](const ImpactChange& c) { return c.newly_denied(); });
    s += fmt::format("observed traffic: {} edge(s) judged{}{}; {} change verdict ({} newly denied, {} connection(s)), behind {} of "
                     "the {} class(es)\n",
                     r.edges, r.outside_window ? fmt::format(", {} older left out", r.outside_window) : "",
                     r.unjudged ? fmt::format(", {} without an address to judge", r.unjudged) : "", r.changes.size(), newly,
                     r.newly_denied_connections, with_edges, d.changes.size());
    for (size_t i : impact->outside)
      s += "  in no listed class: " + observed_line(r.changes[i]) + "\n";
  }
  return s;
}

nlohmann::json diff_json(const DiffResult& d, const DiffImpact* impact) {
  nlohmann::json changes = nlohmann::json::array();
  auto edge_json = [&](size_t i) { return observed_edge_json(impact->report->changes[i].edge); };
  for (size_t k = 0; k < d.changes.size(); ++k) {
    const auto& c = d.changes[k];
    changes.push_back({{"subject", c.subject},
                       {"direction", to_string(c.direction)},
                       {"endpoint", c.endpoint},
                       {"peer", c.peer},
                       {"peer_address", c.peer_address},
                       {"protocol", to_string(c.protocol)},
                       {"ports", ports_text(c.ports)},
                       {"before", to_string(c.before)},
                       {"after", to_string(c.after)},
                       {"newly_denied", c.newly_denied()},
                       {"decided_before", c.decided_before},
                       {"decided_after", c.decided_after}});
    if (c.peer_local) {
      changes.back()["peer_local"] = true;
      changes.back()["peer_cgroup"] = c.peer_cgroup;
    }
    if (impact) {
      nlohmann::json observed = nlohmann::json::array();
      for (size_t i : impact->per_change[k]) observed.push_back(edge_json(i));
      changes.back()["observed"] = std::move(observed);
    }
  }
  nlohmann::json out = {{"changes", changes}, {"classes", d.classes}, {"truncated", d.truncated}, {"newly_denied", d.newly_denied()}};
  if (impact) {
    const auto& r = *impact->report;
    nlohmann::json outside = nlohmann::json::array();
    for (size_t i : impact->outside) outside.push_back(edge_json(i));
    out["impact"] = {{"edges", r.edges},
                     {"unjudged", r.unjudged},
                     {"outside_window", r.outside_window},
                     {"since", r.since_ns ? topology::format_time(r.since_ns) : ""},
                     {"changed", r.changes.size()},
                     {"newly_denied_connections", r.newly_denied_connections},
                     {"in_no_class", std::move(outside)}};
  }
  return out;
}

}  // namespace hostscope::policy
