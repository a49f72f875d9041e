#pragma once
// Marks topology edges with the verdict of the policy generation in force: "denied" when an enforcing policy drops
// the connection, "would-deny" when an audit-mode policy would. The rules are the applied generation's IR
// (<state_dir>/gen-<N>.ir.json, written by every apply), judged edge by edge by policy::edge_verdict
// (policy/impact.h: the reference evaluator that the conformance tests hold equal to the kernel's verdicts). Used by
// `top` and `topology`.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/topology_model.h"
#include "policy/context.h"
#include "policy/evaluator.h"
#include "policy/ir.h"

namespace hostscope::cli {

class PolicyMarker {
 public:
  using ContextFn = std::function<policy::Context()>;
  // `state_dir`: the policy state directory (`hostscope policy --state-dir`). The catalogue is rebuilt at most every
  // `context_ttl` (a /proc scan), the IR reloaded only when the generation in force changes.
  PolicyMarker(std::string state_dir, ContextFn context, std::chrono::seconds context_ttl = std::chrono::seconds(10));

  // Sets EdgeSnapshot::policy on every edge (cleared when no generation is in force).
  void mark(topology::TopologySnapshot& s);
  // "generation 3 (2 policies, 1 in audit)", "no policy applied", or why marks are unavailable.
  const std::string& summary() const { return summary_; }

 private:
  std::string state_dir_;
  ContextFn context_fn_;
  std::chrono::seconds ttl_;
  int generation_ = -1;
  std::optional<policy::Ir> ir_;
  std::optional<policy::Context> ctx_;
  std::chrono::steady_clock::time_point ctx_at_{};
  std::unordered_map<std::string, std::string> cache_;  // edge key -> verdict, for this generation and catalogue
  static constexpr size_t kMaxCache = 100000;
  std::string summary_ = "no policy applied";
};

}  // namespace hostscope::cli
