#include "agent/cli/policy_marks.h"

#include <algorithm>

#include <fmt/format.h>

#include "policy/analysis.h"
#include "policy/ir_json.h"
#include "policy/net.h"

namespace hostscope::cli {
namespace {

bool loopback(const IpAddr& a) {
  static const auto v4 = parse_cidr("127.0.0.0/8").cidr, v6 = parse_cidr("::1/128").cidr;
  return v4->contains(a) || v6->contains(a);
}

// The evaluator endpoints one edge end stands for. A local process is judged where the kernel judges it: its
// cgroups on OUTPUT, and on both hooks the address it was observed at (loopback or the node's address; the rules
// `policy generate` writes for such peers are address rules). Dropping that address made every address rule miss,
// so loopback edges the kernel allowed were marked denied. An observed address the catalogue lists for the service
// (a pod's) is routed, not local. Without an observed address, every cgroup and address of the service.
std::vector<policy::Endpoint> endpoints(const topology::EdgeEnd& end, const policy::Context& ctx) {
  auto addr = IpAddr::parse(end.address);
  if (end.kind == topology::NodeKind::Service && !end.service.empty()) {
    const auto* s = ctx.find_service(end.service);
    if (s && addr) {
      auto own = policy::service_addresses(*s);
      bool routed = std::any_of(own.begin(), own.end(), [&](const Cidr& c) { return c.contains(*addr); });
      if (!routed && !s->cgroups.empty()) {
        std::vector<policy::Endpoint> out;
        for (const auto& cg : s->cgroups) out.push_back({*addr, cg, true});
        return out;
      }
      return {policy::Endpoint{*addr, "", false}};
    }
    if (s)
      if (auto v = policy::endpoints_for(end.service, ctx); !v.empty()) return v;
  }
  // Any other end seen on loopback (a process the catalogue does not know, a server a dropped SYN never reached) is
  // local without a cgroup: loopback is never forwarded.
  if (addr) return {policy::Endpoint{*addr, "", loopback(*addr)}};
  return {};
}

std::string edge_key(const topology::EdgeSnapshot& e) {
  return fmt::format("{}|{}|{}|{}|{}|{}", topology::node_id(e.client), e.client.address, topology::node_id(e.server),
                     e.server.address, e.port, int(e.protocol));
}

}  // namespace

std::string edge_verdict(const policy::Ir& ir, const policy::Context& ctx, const topology::EdgeSnapshot& e) {
  auto froms = endpoints(e.client, ctx), tos = endpoints(e.server, ctx);
  auto proto = e.protocol == topology::Protocol::Udp ? policy::Protocol::Udp : policy::Protocol::Tcp;
  bool would = false;
  for (const auto& f : froms)
    for (const auto& t : tos) {
      if (f.address && t.address && f.address->family != t.address->family) continue;
      auto v = policy::evaluate_connection(ir, f, t, proto, e.port);
      if (v == policy::Verdict::Deny) return "denied";
      would = would || v == policy::Verdict::AuditWouldDeny;
    }
  return would ? "would-deny" : "";
}

PolicyMarker::PolicyMarker(std::string state_dir, ContextFn context, std::chrono::seconds context_ttl)
    : state_dir_(std::move(state_dir)), context_fn_(std::move(context)), ttl_(context_ttl) {}

void PolicyMarker::mark(topology::TopologySnapshot& s) {
  int gen = policy::current_generation(state_dir_);
  if (gen != generation_) {
    generation_ = gen;
    ir_.reset();
    cache_.clear();
    if (gen == 0) {
      summary_ = "no policy applied";
    } else if (auto ir = policy::load_ir(state_dir_, gen)) {
      size_t audit = 0;
      for (const auto& [name, mode] : ir->policy_modes) audit += mode == policy::Mode::Audit;
      summary_ = fmt::format("policy generation {} ({} policies, {} in audit)", gen, ir->policy_modes.size(), audit);
      ir_ = std::move(*ir);
    } else {
      summary_ = fmt::format("policy marks unavailable: {}", ir.error().str());
    }
  }
  auto now = std::chrono::steady_clock::now();
  if (ir_ && (!ctx_ || now - ctx_at_ >= ttl_)) {
    ctx_ = context_fn_ ? context_fn_() : policy::Context{};
    ctx_at_ = now;
    cache_.clear();
  }
  if (cache_.size() > kMaxCache) cache_.clear();
  for (auto& e : s.edges) {
    if (!ir_) {
      e.policy.clear();
      continue;
    }
    auto key = edge_key(e);
    auto it = cache_.find(key);
    if (it == cache_.end()) it = cache_.emplace(key, edge_verdict(*ir_, *ctx_, e)).first;
    e.policy = it->second;
  }
}

}  // namespace hostscope::cli
