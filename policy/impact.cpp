#include "policy/impact.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/topology_json.h"
#include "policy/diff.h"

namespace hostscope::policy {
namespace {

int severity(Verdict v) { return v == Verdict::Deny ? 2 : v == Verdict::AuditWouldDeny ? 1 : 0; }

const char* verdict_word(Verdict v) { return v == Verdict::Deny ? "denied" : v == Verdict::AuditWouldDeny ? "would-deny" : "allowed"; }

std::string describe(const IrRule* r, const PolicySet* set) {
  if (!r) return "";
  if (set) return describe_rule(r, *set);
  if (r->owner.rfind("hs.", 0) == 0) return "hostscope: " + r->what;
  return fmt::format("policy {}: {}{}", r->owner, r->what, r->loc.empty() ? "" : " at " + r->loc);  // IRs stored before loc: none
}

std::string end_text(const topology::EdgeEnd& e) {
  std::string id = topology::node_id(e);
  if (e.kind == topology::NodeKind::Service && !e.address.empty()) id += " (" + e.address + ")";
  return id;
}

}  // namespace

// A local process is judged where the kernel judges it: its cgroups on OUTPUT, and on both hooks the address it was
// observed at (loopback or the node's address; rules may name such peers by address, as `policy generate` did before
// it named local services). Dropping that address made every address rule miss, so loopback edges the kernel allowed
// were marked denied. An
// observed address the catalogue lists for the service (a pod's) is routed, not local. Without an observed address,
// every cgroup and address of the service.
std::vector<Endpoint> edge_endpoints(const topology::EdgeEnd& end, const Context& ctx) {
  auto addr = IpAddr::parse(end.address);
  if (end.kind == topology::NodeKind::Service && !end.service.empty()) {
    const auto* s = ctx.find_service(end.service);
    if (s && addr) {
      auto own = service_addresses(*s);
      bool routed = std::any_of(own.begin(), own.end(), [&](const Cidr& c) { return c.contains(*addr); });
      if (!routed && !s->cgroups.empty()) {
        std::vector<Endpoint> out;
        out.reserve(s->cgroups.size());
        for (const auto& cg : s->cgroups) out.push_back({*addr, cg, true});
        return out;
      }
      return {Endpoint{*addr, "", false}};
    }
    if (s)
      if (auto v = endpoints_for(end.service, ctx); !v.empty()) return v;
  }
  // Any other end seen on loopback (a process the catalogue does not know, a server a dropped SYN never reached) is
  // local without a cgroup: loopback is never forwarded.
  if (addr) return {Endpoint{*addr, "", is_loopback(*addr)}};
  return {};
}

EdgeJudgement judge_edge(const Ir& ir, const Context& ctx, const topology::EdgeSnapshot& e) {
  auto froms = edge_endpoints(e.client, ctx);
  auto proto = e.protocol == topology::Protocol::Udp ? Protocol::Udp : Protocol::Tcp;
  // The filter table sees the destination after DNAT: the backends conntrack reported, when there are any.
  std::vector<std::pair<std::vector<Endpoint>, uint16_t>> dests;
  for (const auto& a : e.actual)
    if (auto hp = topology::parse_addr_port(a)) dests.push_back({{Endpoint{hp->first, "", is_loopback(hp->first)}}, hp->second});
  if (dests.empty()) dests.push_back({edge_endpoints(e.server, ctx), e.port});
  EdgeJudgement out;
  for (const auto& f : froms)
    for (const auto& [tos, port] : dests)
      for (const auto& t : tos) {
        if (f.address && t.address && f.address->family != t.address->family) continue;
        Trace trace;
        trace.record_steps = false;
        auto v = evaluate_connection(ir, f, t, proto, port, &trace);
        out.judged = true;
        // The worst verdict wins; for an allowed edge, the first rule that allowed it is named.
        if (severity(v) > severity(out.verdict) || (!out.decided && v == out.verdict)) {
          out.verdict = v;
          out.decided = trace.decided;
          if (v == Verdict::Deny) return out;
        }
      }
  return out;
}

std::string edge_verdict(const Ir& ir, const Context& ctx, const topology::EdgeSnapshot& e) {
  auto v = judge_edge(ir, ctx, e).verdict;
  return v == Verdict::Deny ? "denied" : v == Verdict::AuditWouldDeny ? "would-deny" : "";
}

bool ImpactReport::newly_denied() const {
  return std::any_of(changes.begin(), changes.end(), [](const ImpactChange& c) { return c.newly_denied(); });
}

ImpactReport observed_impact(const ImpactSide& before, const ImpactSide& after, const Context& ctx,
                             const topology::TopologySnapshot& observed, uint64_t since_ns) {
  ImpactReport r;
  r.before_label = before.label;
  r.after_label = after.label;
  r.since_ns = since_ns;
  auto judge = [&](const ImpactSide& side, const topology::EdgeSnapshot& e) {
    return side.ir ? judge_edge(*side.ir, ctx, e) : EdgeJudgement{Verdict::Allow, nullptr, true};
  };
  for (const auto& e : observed.edges) {
    if (since_ns && e.last_seen_ns < since_ns) {
      r.outside_window++;
      continue;
    }
    auto b = judge(before, e), a = judge(after, e);
    if ((before.ir && !b.judged) || (after.ir && !a.judged)) {
      r.unjudged++;
      continue;
    }
    r.edges++;
    if (a.verdict == b.verdict) continue;
    ImpactChange c{e, b.verdict, a.verdict, describe(b.decided, before.set), describe(a.decided, after.set),
                   a.decided && a.decided->owner.rfind("hs.", 0) != 0 ? a.decided->owner : ""};
    if (c.newly_denied()) r.newly_denied_connections += e.connections + e.failed_total();
    r.changes.push_back(std::move(c));
  }
  std::stable_sort(r.changes.begin(), r.changes.end(), [](const ImpactChange& x, const ImpactChange& y) {
    if (x.newly_denied() != y.newly_denied()) return x.newly_denied();
    return x.edge.connections > y.edge.connections;
  });
  return r;
}

std::string observed_edge_text(const topology::EdgeSnapshot& e) {
  return fmt::format("{} -> {} port {}/{}", end_text(e.client), end_text(e.server), e.port, topology::to_string(e.protocol));
}

std::string observed_counts_text(const topology::EdgeSnapshot& e) {
  std::string s = fmt::format("{} connection(s)", e.connections);
  if (e.failed_total()) s += fmt::format(", {} failed", e.failed_total());
  if (e.last_seen_ns) s += ", last seen " + topology::format_time(e.last_seen_ns);
  return s;
}

nlohmann::json observed_edge_json(const topology::EdgeSnapshot& e) {
  return {{"client", topology::node_id(e.client)},
          {"client_address", e.client.address},
          {"server", topology::node_id(e.server)},
          {"server_address", e.server.address},
          {"port", e.port},
          {"protocol", topology::to_string(e.protocol)},
          {"actual", e.actual},
          {"connections", e.connections},
          {"failed", e.failed_total()},
          {"last_seen", e.last_seen_ns ? topology::format_time(e.last_seen_ns) : ""}};
}

std::string impact_text(const ImpactReport& r) {
  std::string s = fmt::format("impact on observed traffic: {} -> {}\n", r.before_label, r.after_label);
  s += fmt::format("  {} edges judged{}{}{}\n", r.edges,
                   r.since_ns ? fmt::format(" (last seen since {})", topology::format_time(r.since_ns)) : "",
                   r.outside_window ? fmt::format(", {} older left out", r.outside_window) : "",
                   r.unjudged ? fmt::format(", {} without an address to judge", r.unjudged) : "");
  if (r.changes.empty()) return s + "  no observed edge changes verdict\n";
  size_t newly = std::count_if(r.changes.begin(), r.changes.end(), [](const ImpactChange& c) { return c.newly_denied(); });
  s += fmt::format("  {} edge(s) change verdict, {} newly denied ({} observed connections)\n", r.changes.size(), newly,
                   r.newly_denied_connections);
  for (const auto& c : r.changes) {
    const auto& e = c.edge;
    s += fmt::format("{} {}: {} -> {}\n", c.newly_denied() ? "!" : " ", observed_edge_text(e), verdict_word(c.before),
                     verdict_word(c.after));
    std::string seen = "    observed " + observed_counts_text(e);
    if (!e.actual.empty()) seen += fmt::format(", DNAT to {}", fmt::format("{}", fmt::join(e.actual, ",")));
    s += seen + "\n";
    if (!c.decided_before.empty()) s += fmt::format("    before: {}\n", c.decided_before);
    if (!c.decided_after.empty()) s += fmt::format("    after:  {}\n", c.decided_after);
  }
  return s;
}

std::string impact_summary(const ImpactReport& r, size_t max_edges) {
  std::string list;
  size_t n = 0;
  for (const auto& c : r.changes) {
    if (!c.newly_denied()) continue;
    if (++n > max_edges) continue;
    const auto& e = c.edge;
    list += fmt::format("{}{} ({} connections{})", list.empty() ? "" : "; ", observed_edge_text(e), e.connections,
                        c.decided_after.empty() ? "" : "; " + c.decided_after);
  }
  if (n > max_edges) list += fmt::format("; and {} more", n - max_edges);
  return fmt::format("{} observed edge(s) ({} connections) would be newly denied: {}", n, r.newly_denied_connections, list);
}

nlohmann::json impact_json(const ImpactReport& r) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& c : r.changes) {
    const auto& e = c.edge;
    auto j = observed_edge_json(e);
    j.update({{"before", to_string(c.before)},
              {"after", to_string(c.after)},
              {"newly_denied", c.newly_denied()},
              {"decided_before", c.decided_before},
              {"decided_after", c.decided_after}});
    changes.push_back(std::move(j));
  }
  return {{"before", r.before_label},
          {"after", r.after_label},
          {"since", r.since_ns ? topology::format_time(r.since_ns) : ""},
          {"edges", r.edges},
          {"unjudged", r.unjudged},
          {"outside_window", r.outside_window},
          {"newly_denied", r.newly_denied()},
          {"newly_denied_connections", r.newly_denied_connections},
          {"changes", std::move(changes)}};
}

}  // namespace hostscope::policy
