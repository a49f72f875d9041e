#include "exporters/policy_metrics.h"

#include <array>

namespace hostscope::exporters {

void write_policy_health(Exposition& out, const PolicyHealth& h) {
  const auto& st = h.backend;
  const auto& rs = h.reconcile;
  out.family("hostscope_policy_info", "gauge",
             "Always 1: the policy generation in force and the commit (or content hash) it came from.");
  if (rs || st) {
    std::string gen = std::to_string(st ? st->generation : rs->generation);
    std::string commit = rs ? rs->applied_commit : std::string();
    std::string hash = st ? st->source_hash : std::string();
    out.sample("hostscope_policy_info", Labels{{"generation", gen}, {"commit", commit}, {"source_hash", hash}},
               uint64_t{1});
  }
  out.family("hostscope_policy_generation", "gauge", "Policy generation applied in the kernel (0: none).");
  if (st) out.sample("hostscope_policy_generation", {}, uint64_t(st->generation));
  out.family("hostscope_policy_apply_attempts_total", "counter", "Reconciler apply attempts, by result.");
  out.family("hostscope_policy_drift_repairs_total", "counter", "Times the reconciler put drifted rules back.");
  if (rs) {
    for (auto& [result, n] : rs->attempts)
      out.sample("hostscope_policy_apply_attempts_total", Labels{{"result", result}}, n);
    out.sample("hostscope_policy_drift_repairs_total", {}, rs->drift_repairs);
  }
  out.family("hostscope_policy_drift", "gauge", "1 when the kernel rules differ from the generation in force.");
  if (st) out.sample("hostscope_policy_drift", {}, uint64_t(st->drift ? 1 : 0));
  out.family("hostscope_policy_rule_hits_packets_total", "counter", "Packets matched by each policy rule.");
  if (st) {
    // Identical label sets (a rule split into several kernel rules) are summed so no series repeats.
    using Key = std::array<std::string, 6>;
    std::map<Key, uint64_t> hits;
    for (auto& r : st->rules) hits[{r.family, r.chain, r.rule, r.policy, r.target, r.mode}] += r.packets;
    for (auto& [k, n] : hits)
      out.sample("hostscope_policy_rule_hits_packets_total",
                 Labels{{"family", k[0]}, {"chain", k[1]}, {"rule", k[2]}, {"policy", k[3]}, {"target", k[4]},
                        {"mode", k[5]}},
                 n);
  }
  out.family("hostscope_policy_audit_would_deny_packets_total", "counter",
             "Packets that audit-mode policies would have denied in enforce mode.");
  if (st) out.sample("hostscope_policy_audit_would_deny_packets_total", {}, st->audit_would_deny_packets);
  out.family("hostscope_policy_status_errors_total", "counter", "Failed reads of the policy backend status.");
  out.sample("hostscope_policy_status_errors_total", {}, h.status_errors);
}

}  // namespace hostscope::exporters
