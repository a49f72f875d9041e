#include "policy/compiler.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "policy/analysis.h"
#include "policy/hash.h"

namespace hostscope::policy {

const char* to_string(Hook h) {
  switch (h) {
    case Hook::Input: return "input";
    case Hook::Output: return "output";
    case Hook::Forward: return "forward";
  }
  return "?";
}
const char* hook_chain(Hook h) {
  switch (h) {
    case Hook::Input: return "HOSTSCOPE-INPUT";
    case Hook::Output: return "HOSTSCOPE-OUTPUT";
    case Hook::Forward: return "HOSTSCOPE-FORWARD";
  }
  return "?";
}
const char* to_string(IrTarget t) {
  switch (t) {
    case IrTarget::Return: return "RETURN";
    case IrTarget::Drop: return "DROP";
    case IrTarget::Reject: return "REJECT";
    case IrTarget::Log: return "LOG";
    case IrTarget::Audit: return "AUDIT";
    case IrTarget::Jump: return "JUMP";
  }
  return "?";
}

const IrChain* IrTable::find(const std::string& name) const {
  for (const auto& c : chains)
    if (c.name == name) return &c;
  return nullptr;
}
const IrSet* IrTable::find_set(const std::string& name) const {
  for (const auto& s : sets)
    if (s.name == name) return &s;
  return nullptr;
}
size_t IrTable::rule_count() const {
  size_t n = 0;
  for (const auto& c : chains) n += c.rules.size();
  return n;
}

const std::vector<NeighbourDiscoveryType>& neighbour_discovery_types() {
  static const std::vector<NeighbourDiscoveryType> types = {
      {130, "multicast listener query"},  {131, "multicast listener report"}, {132, "multicast listener done"},
      {133, "router solicitation"},       {134, "router advertisement"},      {135, "neighbour solicitation"},
      {136, "neighbour advertisement"}};
  return types;
}

const std::vector<FailsafePort>& failsafe_ports(Direction d) {
  static const std::vector<FailsafePort> in = {{Protocol::Tcp, 22},   {Protocol::Udp, 68},   {Protocol::Tcp, 179},
                                               {Protocol::Tcp, 2379}, {Protocol::Tcp, 2380}, {Protocol::Tcp, 5473},
                                               {Protocol::Tcp, 6443}, {Protocol::Tcp, 6666}, {Protocol::Tcp, 6667}};
  static const std::vector<FailsafePort> out = {{Protocol::Udp, 53},   {Protocol::Udp, 67},   {Protocol::Tcp, 179},
                                                {Protocol::Tcp, 2379}, {Protocol::Tcp, 2380}, {Protocol::Tcp, 5473},
                                                {Protocol::Tcp, 6443}, {Protocol::Tcp, 6666}, {Protocol::Tcp, 6667}};
  return d == Direction::Ingress ? in : out;
}

namespace {

// iptables' multiport takes at most 15 ports, a range counting as two.
std::vector<std::vector<PortRange>> port_chunks(const std::vector<PortRange>& ports) {
  std::vector<std::vector<PortRange>> out;
  if (ports.empty()) return {{}};
  int used = 0;
  for (const auto& p : ports) {
    int cost = p.first == p.last ? 1 : 2;
    if (out.empty() || used + cost > 15) {
      out.emplace_back();
      used = 0;
    }
    out.back().push_back(p);
    used += cost;
  }
  return out;
}

std::string describe_match(const IrMatch& m) {
  std::string s;
  auto cidr = [](const std::optional<Cidr>& c) { return c ? c->str() : std::string(); };
  s += cidr(m.src) + "|" + cidr(m.dst) + "|" + m.src_set + "|" + m.dst_set + "|" + to_string(m.proto) + "|";
  for (auto& p : m.dports) s += p.to_string() + ",";
  s += "|" + m.cgroup + "|" + (m.established ? "est" : "");
  if (m.icmpv6_type) s += fmt::format("|icmpv6 {}", *m.icmpv6_type);
  if (m.dst_local) s += "|dst-local";
  if (m.src_local) s += "|src-local";
  if (m.in_not_loopback) s += "|in-not-lo";
  return s;
}

class Compiler {
 public:
  Compiler(const Analysis& a, const CompileOptions& o) : a_(a), opts_(o) {}

  IrTable build(Family f) {
    table_ = IrTable{f, {}, {}};
    hashes_.clear();
    forward_of_.clear();
    for (auto h : {Hook::Input, Hook::Output, Hook::Forward}) {
      table_.chains.push_back({hook_chain(h), {}});
      // IPv6 neighbour discovery and MLD are never policy's to block, whatever `failsafe` says: without
      // them a subject's neighbour entries fail and its allowed flows (even failsafe ones) time out.
      if (f == Family::V6)
        for (const auto& nd : neighbour_discovery_types()) {
          IrRule r;
          r.match.proto = Protocol::Icmpv6;
          r.match.icmpv6_type = nd.type;
          r.target = IrTarget::Return;
          r.owner = "hs.nd";
          r.what = fmt::format("always open: ICMPv6 type {} ({})", nd.type, nd.name);
          add(table_.chains.back(), r);
        }
      IrRule est;
      est.match.established = true;
      est.target = IrTarget::Return;
      est.owner = "hs.conntrack";
      est.what = "failsafe: established and related connections";
      add(table_.chains.back(), est);
    }
    for (auto dir : {Direction::Egress, Direction::Ingress}) build_direction(f, dir);
    return std::move(table_);
  }

 private:
  IrChain& hook(Hook h) { return table_.chains[static_cast<size_t>(h)]; }

  void add(IrChain& chain, IrRule r) {
    Hasher h;
    h.add(chain.name).add(describe_match(r.match)).add(to_string(r.target)).add(r.jump).add(r.owner).add(to_string(r.mode));
    std::string hex = h.hex(12);
    for (int salt = 1; !hashes_.insert(hex).second; ++salt) hex = Hasher(h).add(std::to_string(salt)).hex(12);
    r.hash = hex;
    chain.rules.push_back(std::move(r));
  }

  static bool in_family(const Target& t, Family f) { return t.kind != Target::Kind::Address || t.cidr.addr.family == f; }

  void build_direction(Family f, Direction dir) {
    // Group each target with the ordered list of policies selecting it; targets with the same
    // list share one subject chain.
    std::map<std::string, std::vector<const ResolvedPolicy*>> by_target;
    std::vector<Target> order;
    for (const auto& rp : a_.policies)
      for (const auto& t : rp.targets(dir)) {
        if (!in_family(t, f)) continue;
        auto& v = by_target[t.str()];
        if (v.empty()) order.push_back(t);
        if (std::find(v.begin(), v.end(), &rp) == v.end()) v.push_back(&rp);
      }
    std::map<std::vector<const ResolvedPolicy*>, std::string> chain_of;
    for (const auto& t : order) {
      const auto& group = by_target[t.str()];
      auto it = chain_of.find(group);
      if (it == chain_of.end()) it = chain_of.emplace(group, subject_chain(f, dir, group)).first;
      dispatch(dir, t, it->second, group.front()->policy->name);
    }
  }

  // The chain FORWARD jumps to for subject chain `name`. xt_cgroup is valid on INPUT, OUTPUT and POSTROUTING only:
  // the kernel refuses the whole restore (both iptables-legacy and iptables-nft) when a chain holding a `-m cgroup`
  // rule can be reached from FORWARD, which a subject chain shared by an address subject (FORWARD -d/-s pod) and
  // ingress rules naming local clients by cgroup would be. Such a chain gets a FORWARD copy without its cgroup rules,
  // "HOSTSCOPE-F-<same 16 hex>": a forwarded packet has no local socket, so those rules never match it there and the
  // copy decides every forwarded packet exactly as the chain does. Otherwise FORWARD jumps to the chain itself.
  std::string forward_chain(const std::string& name) {
    if (auto it = forward_of_.find(name); it != forward_of_.end()) return it->second;
    const IrChain* c = table_.find(name);
    std::vector<IrRule> kept;
    bool has_cgroup = false;
    if (c)
      for (const auto& r : c->rules) {
        if (r.match.cgroup.empty()) kept.push_back(r);
        else has_cgroup = true;
      }
    std::string out = name;
    if (has_cgroup) {
      IrChain copy{"HOSTSCOPE-F-" + name.substr(std::string("HOSTSCOPE-P-").size()), {}};
      for (auto& r : kept) add(copy, std::move(r));
      out = copy.name;
      table_.chains.push_back(std::move(copy));
    }
    forward_of_[name] = out;
    return out;
  }

  void dispatch(Direction dir, const Target& t, const std::string& chain, const std::string& first_policy) {
    IrRule r;
    r.target = IrTarget::Jump;
    r.jump = chain;
    r.owner = "hs.dispatch";
    r.what = fmt::format("{} of {} (policy {})", to_string(dir), t.str(), first_policy);
    switch (t.kind) {
      case Target::Kind::Cgroup:  // only locally generated packets carry a socket cgroup
        r.match.cgroup = t.cgroup;
        add(hook(Hook::Output), r);
        break;
      case Target::Kind::Address:
        if (dir == Direction::Egress) {
          r.match.src = t.cidr;
          add_forward_dispatch(r);
          add(hook(Hook::Input), r);
        } else {
          r.match.dst = t.cidr;
          add_forward_dispatch(r);
          add(hook(Hook::Output), r);
        }
        break;
      case Target::Kind::LocalPort:
        // A local client's packet takes the loopback path, OUTPUT then INPUT on `lo`, and only OUTPUT knows its
        // socket's cgroup: it is judged there, so an ingress rule can name a local client (a `service:` peer with
        // cgroups). INPUT judges every packet that did not come over `lo` (`! -i lo`), whatever its source address:
        // IPv6 delivers a packet from another host with a spoofed source that is one of this node's addresses, so
        // `! --src-type LOCAL` would let it past the policy. Broadcasts and multicasts a local process loops back to
        // itself arrive on their real device and stay judged on INPUT, as before.
        for (auto p : {Protocol::Tcp, Protocol::Udp}) {
          r.match.proto = p;
          r.match.dports = {{t.port, t.port}};
          r.match.in_not_loopback = true;
          add(hook(Hook::Input), r);
        }
        r.match.in_not_loopback = false;
        for (auto p : {Protocol::Tcp, Protocol::Udp}) {
          r.match.proto = p;
          r.match.dports = {{t.port, t.port}};
          r.match.dst_local = true;
          add(hook(Hook::Output), r);
        }
        break;
    }
  }

  void add_forward_dispatch(IrRule r) {
    r.jump = forward_chain(r.jump);
    add(hook(Hook::Forward), std::move(r));
  }

  std::string subject_chain(Family f, Direction dir, const std::vector<const ResolvedPolicy*>& group) {
    Hasher h;
    h.add(to_string(f)).add(to_string(dir));
    for (const auto* rp : group) h.add(rp->policy->name);
    IrChain chain{fmt::format("HOSTSCOPE-P-{}", h.hex(16)), {}};
    const NetworkPolicy& first = *group.front()->policy;  // lint guarantees the group agrees on these
    if (first.failsafe) {
      std::map<Protocol, std::vector<PortRange>> ports;
      for (const auto& fp : failsafe_ports(dir)) ports[fp.proto].push_back({fp.port, fp.port});
      for (const auto& [proto, list] : ports)
        for (const auto& chunk : port_chunks(list)) {
          IrRule r;
          r.match.proto = proto;
          r.match.dports = chunk;
          r.owner = "hs.failsafe";
          r.what = fmt::format("failsafe {} {} ports", to_string(dir), to_string(proto));
          add(chain, r);
        }
    }
    for (const auto* rp : group)
      for (const auto& rr : rp->rules(dir)) compile_rule(chain, f, dir, *rp->policy, rr);
    Action def = first.default_action(dir);
    if (def != Action::Allow) {
      IrRule r;
      r.owner = first.name;
      r.mode = first.mode;
      r.target = first.mode == Mode::Audit ? IrTarget::Audit : def == Action::Reject ? IrTarget::Reject : IrTarget::Drop;
      r.what = fmt::format("{} default {}", to_string(dir), to_string(def));
      r.loc = (first.default_loc.line ? first.default_loc : first.loc).str();
      add(chain, r);
    }
    table_.chains.push_back(std::move(chain));
    return table_.chains.back().name;
  }

  std::string ipset_for(Family f, const std::vector<Cidr>& members) {
    Hasher h;
    h.add(to_string(f));
    for (const auto& c : members) h.add(c.str());
    std::string name = "hs-" + h.hex(16);
    if (!table_.find_set(name)) table_.sets.push_back({name, f, members});
    return name;
  }

  void compile_rule(IrChain& chain, Family f, Direction dir, const NetworkPolicy& p, const ResolvedRule& rr) {
    const Rule& rule = *rr.rule;
    // Peers of this family; a /0 peer means any peer (and ipset hash:net cannot hold /0).
    bool any = rr.any_peer;
    std::vector<Cidr> peers;
    for (const auto& c : rr.peers)
      if (c.addr.family == f) {
        if (c.prefix == 0) any = true;
        peers.push_back(c);
      }
    // Local processes among the peers, in both families: ingress by the clients' cgroups, egress by a local
    // destination on the ports they listen on (those the rule allows).
    std::vector<std::string> local_cgroups;
    std::vector<PortRange> local_ports;
    if (!any) {
      if (dir == Direction::Ingress) local_cgroups = rr.local_cgroups;
      else local_ports = local_port_atoms(rule.ports, rr.local_ports);
    }
    if (!any && peers.empty() && local_cgroups.empty() && local_ports.empty()) return;  // nothing in this family can match
    std::vector<std::optional<Cidr>> peer_atoms;
    std::string set;
    if (any) peer_atoms.push_back(std::nullopt);
    else if (peers.size() > opts_.ipset_threshold) set = ipset_for(f, peers);
    else for (const auto& c : peers) peer_atoms.push_back(c);
    if (!set.empty()) peer_atoms.push_back(std::nullopt);

    std::vector<Protocol> protos;
    if (rule.protocol != Protocol::Any) protos = {rule.protocol};
    else if (!rule.ports.empty()) protos = {Protocol::Tcp, Protocol::Udp};
    else protos = {Protocol::Any};

    IrTarget target = IrTarget::Return;
    switch (rule.action) {
      case Action::Allow: target = IrTarget::Return; break;
      case Action::Deny: target = p.mode == Mode::Audit ? IrTarget::Audit : IrTarget::Drop; break;
      case Action::Reject: target = p.mode == Mode::Audit ? IrTarget::Audit : IrTarget::Reject; break;
      case Action::Log: target = IrTarget::Log; break;
    }
    IrRule base;
    base.target = target;
    base.owner = p.name;
    base.mode = p.mode;
    base.what = fmt::format("{} rule {} ({}){}", to_string(dir), rule.index, to_string(rule.action),
                            rule.comment.empty() ? "" : ": " + rule.comment);
    base.loc = rule.loc.str();
    // One rule per protocol and port chunk, `set` adding the peer match. Address atoms first, then local processes;
    // rules of one source rule never overlap in what they decide.
    auto emit = [&](const std::vector<Protocol>& ps, const std::vector<PortRange>& ports, const auto& set) {
      for (auto proto : ps)
        for (const auto& chunk : port_chunks(ports)) {
          IrRule r = base;
          r.match.proto = proto;
          r.match.dports = chunk;
          set(r.match);
          add_rule(chain, r);
        }
    };
    for (const auto& peer : peer_atoms)
      emit(protos, rule.ports, [&](IrMatch& m) {
        if (dir == Direction::Egress) {
          m.dst = peer;
          m.dst_set = set;
        } else {
          m.src = peer;
          m.src_set = set;
        }
      });
    // Only a locally sent packet carries its sender's socket (on INPUT, early demux may attach the receiver's).
    for (const auto& cg : local_cgroups)
      emit(protos, rule.ports, [&](IrMatch& m) {
        m.cgroup = cg;
        m.src_local = true;
      });
    if (!local_ports.empty()) {
      // Listening ports need a protocol to match on: tcp and udp when the rule names none.
      std::vector<Protocol> port_protos = protos;
      if (rule.protocol == Protocol::Any) port_protos = {Protocol::Tcp, Protocol::Udp};
      emit(port_protos, local_ports, [](IrMatch& m) { m.dst_local = true; });
    }
  }

  // Adds a policy rule; an audit rule ends this policy chain where the enforce rule would have ended it: nothing
  // after it (later rules, the audit default) sees or counts the packet again. The count stays on the Audit rule.
  void add_rule(IrChain& chain, IrRule r) {
    bool audit = r.target == IrTarget::Audit;
    add(chain, r);
    if (audit) {
      r.target = IrTarget::Return;
      r.what += " (audit: ends the chain)";
      add(chain, std::move(r));
    }
  }

  // The ports a local peer listens on that the rule allows (all of them when the rule names no port), as ranges.
  static std::vector<PortRange> local_port_atoms(const std::vector<PortRange>& rule_ports, const std::vector<uint16_t>& listening) {
    std::vector<PortRange> out;
    for (auto port : listening) {  // sorted, unique
      bool allowed = rule_ports.empty() ||
                     std::any_of(rule_ports.begin(), rule_ports.end(), [&](const PortRange& r) { return r.contains(port); });
      if (!allowed) continue;
      if (!out.empty() && out.back().last + 1 == port) out.back().last = port;
      else out.push_back({port, port});
    }
    return out;
  }

  const Analysis& a_;
  const CompileOptions& opts_;
  IrTable table_;
  std::set<std::string> hashes_;
  std::map<std::string, std::string> forward_of_;  // subject chain -> the chain FORWARD jumps to for it
};

}  // namespace

CompileResult compile(const LoadResult& loaded, const Context& ctx, const CompileOptions& opts) {
  CompileResult out;
  auto analysis = analyze(loaded.set, ctx);
  out.diagnostics = loaded.diagnostics;
  out.diagnostics.insert(out.diagnostics.end(), analysis.diagnostics.begin(), analysis.diagnostics.end());
  sort_diagnostics(out.diagnostics);
  if (has_errors(out.diagnostics)) return out;
  for (const auto& rp : analysis.policies)
    if (rp.egress_targets.empty() && rp.ingress_targets.empty()) out.unselected.emplace_back(rp.policy->name, rp.policy->subject.loc);
  Ir ir;
  Compiler c(analysis, opts);
  ir.v4 = c.build(Family::V4);
  ir.v6 = c.build(Family::V6);
  ir.source_hash = loaded.set.source_hash;
  for (const auto& p : loaded.set.policies) ir.policy_modes[p.name] = p.mode;
  out.ir = std::move(ir);
  return out;
}

}  // namespace hostscope::policy
