#include "policy/evaluator.h"

#include <fmt/format.h>

namespace hostscope::policy {

const char* to_string(Verdict v) {
  switch (v) {
    case Verdict::Allow: return "allow";
    case Verdict::Deny: return "deny";
    case Verdict::AuditWouldDeny: return "audit-would-deny";
  }
  return "?";
}

namespace {

bool addr_in(const std::optional<Cidr>& c, const std::optional<IpAddr>& a) { return !c || (a && c->contains(*a)); }

bool set_has(const IrTable& t, const std::string& set, const std::optional<IpAddr>& a) {
  if (set.empty()) return true;
  const IrSet* s = t.find_set(set);
  if (!s || !a) return false;
  for (const auto& c : s->members)
    if (c.contains(*a)) return true;
  return false;
}

// xt_cgroup (v2) matches the socket's cgroup and every cgroup below it.
bool cgroup_under(const std::string& path, const std::string& sock) {
  if (path.empty()) return true;
  if (sock.empty()) return false;
  if (path == "/") return true;
  return sock == path || (sock.size() > path.size() && sock.compare(0, path.size(), path) == 0 && sock[path.size()] == '/');
}

bool matches(const IrTable& t, const IrMatch& m, const Packet& p) {
  if (m.established && !p.established) return false;
  if ((m.dst_local && !p.dst_local) || (m.src_local && !p.src_local) || (m.in_not_loopback && p.in_loopback)) return false;
  if (!addr_in(m.src, p.src) || !addr_in(m.dst, p.dst)) return false;
  if (!set_has(t, m.src_set, p.src) || !set_has(t, m.dst_set, p.dst)) return false;
  if (m.proto != Protocol::Any && m.proto != p.proto) return false;
  if (m.icmpv6_type && (p.proto != Protocol::Icmpv6 || p.icmpv6_type != *m.icmpv6_type)) return false;
  if (!m.dports.empty()) {
    bool any = false;
    for (const auto& r : m.dports) any = any || r.contains(p.dport);
    if (!any) return false;
  }
  return cgroup_under(m.cgroup, p.cgroup);
}

struct Walk {
  const IrTable& t;
  const Packet& p;
  Trace* trace;
  bool audit = false;

  // Returns true when the packet was dropped or rejected.
  bool chain(const std::string& name, int depth) {
    const IrChain* c = t.find(name);
    if (!c || depth > 16) return false;
    for (size_t i = 0; i < c->rules.size(); ++i) {
      const IrRule& r = c->rules[i];
      if (!matches(t, r.match, p)) continue;
      if (trace && trace->record_steps)
        trace->steps.push_back(fmt::format("{} #{} {} -> {} ({})", name, i + 1, r.tag(), to_string(r.target), r.what));
      if (trace && r.target != IrTarget::Log && r.target != IrTarget::Jump) trace->decided = &r;
      switch (r.target) {
        case IrTarget::Return: return false;
        case IrTarget::Drop:
        case IrTarget::Reject: return true;
        case IrTarget::Log: break;
        case IrTarget::Audit: audit = true; break;
        case IrTarget::Jump:
          if (chain(r.jump, depth + 1)) return true;
          break;
      }
    }
    return false;
  }
};

}  // namespace

Verdict evaluate_hook(const IrTable& table, Hook hook, const Packet& p, Trace* trace) {
  Walk w{table, p, trace};
  if (w.chain(hook_chain(hook), 0)) return Verdict::Deny;
  return w.audit ? Verdict::AuditWouldDeny : Verdict::Allow;
}

Verdict evaluate_connection(const Ir& ir, const Endpoint& from, const Endpoint& to, Protocol proto, uint16_t port,
                            Trace* trace) {
  Packet p;
  p.src = from.address;
  p.dst = to.address;
  p.proto = proto;
  p.dport = port;
  // A local endpoint has an address of this node; so has an endpoint at a loopback address (never routed).
  p.src_local = from.local || (from.address && is_loopback(*from.address));
  p.dst_local = to.local || (to.address && is_loopback(*to.address));
  // Family follows the addresses; local-to-local without addresses is loopback IPv4.
  Family f = p.dst ? p.dst->family : p.src ? p.src->family : Family::V4;
  const IrTable& t = ir.table(f);
  std::vector<Hook> hooks;
  if (p.src_local) hooks.push_back(Hook::Output);
  if (p.dst_local) hooks.push_back(Hook::Input);
  if (!p.src_local && !p.dst_local) hooks.push_back(Hook::Forward);
  bool audit = false;
  for (auto h : hooks) {
    Packet hp = p;
    hp.cgroup = h == Hook::Output ? from.cgroup : "";  // the socket cgroup is only known on output
    hp.in_loopback = h == Hook::Input && p.src_local;  // a locally sent packet arrives on INPUT over `lo`
    auto v = evaluate_hook(t, h, hp, trace);
    if (v == Verdict::Deny) return v;
    audit = audit || v == Verdict::AuditWouldDeny;
  }
  return audit ? Verdict::AuditWouldDeny : Verdict::Allow;
}

std::vector<Endpoint> endpoints_for(const std::string& name, const Context& ctx) {
  std::vector<Endpoint> out;
  if (const auto* s = ctx.find_service(name)) {
    for (const auto& cg : s->cgroups) out.push_back({std::nullopt, cg, true});
    for (const auto& c : service_addresses(*s)) out.push_back({c.addr, "", false});
    return out;
  }
  if (auto a = IpAddr::parse(name)) out.push_back({*a, "", false});
  return out;
}

std::vector<TestOutcome> run_policy_tests(const PolicySet& set, const Ir& ir, const Context& ctx) {
  std::vector<TestOutcome> out;
  for (const auto& t : set.tests)
    for (const auto& c : t.cases) {
      TestOutcome o{t.name, c.name, c.loc, true, ""};
      auto froms = endpoints_for(c.from, ctx);
      auto tos = endpoints_for(c.to, ctx);
      if (froms.empty() || tos.empty()) {
        o.passed = false;
        o.detail = fmt::format("'{}' has no cgroups or addresses to test with", froms.empty() ? c.from : c.to);
      }
      size_t pairs = 0;
      for (const auto& f : froms)
        for (const auto& to : tos) {
          if (!o.passed) break;
          if (f.address && to.address && f.address->family != to.address->family) continue;  // no such connection
          ++pairs;
          Trace trace;
          auto v = evaluate_connection(ir, f, to, c.protocol, c.port, &trace);
          bool allowed = v != Verdict::Deny;  // audit only reports; the packet passes
          bool as_expected = c.expect_audit ? v == Verdict::AuditWouldDeny : allowed == c.expect_allow;
          if (!as_expected) {
            o.passed = false;
            std::string path;
            for (const auto& s : trace.steps) path += "\n    " + s;
            o.detail = fmt::format("expected {}, got {} (from {} to {}){}",
                                   c.expect_audit ? "audit-would-deny" : c.expect_allow ? "allow" : "deny", to_string(v),
                                   f.local ? "cgroup " + f.cgroup : f.address->str(),
                                   to.local ? "local" : to.address->str(), path);
          }
        }
      if (o.passed && pairs == 0) {
        o.passed = false;
        o.detail = fmt::format("'{}' and '{}' share no address family", c.from, c.to);
      }
      out.push_back(std::move(o));
    }
  return out;
}

}  // namespace hostscope::policy
