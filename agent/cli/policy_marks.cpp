#include "agent/cli/policy_marks.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "policy/impact.h"
#include "policy/ir_json.h"

namespace hostscope::cli {
namespace {

std::string edge_key(const topology::EdgeSnapshot& e) {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}", topology::node_id(e.client), e.client.address, topology::node_id(e.server),
                     e.server.address, e.port, int(e.protocol), fmt::join(e.actual, ","));
}

}  // namespace

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
    if (it == cache_.end()) it = cache_.emplace(key, policy::edge_verdict(*ir_, *ctx_, e)).first;
    e.policy = it->second;
  }
}

}  // namespace hostscope::cli
