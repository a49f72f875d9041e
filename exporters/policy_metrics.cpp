#include "exporters/policy_metrics.h"

#include <spdlog/spdlog.h>

#include <array>
#include <fstream>
#include <map>

namespace hostscope::exporters {

std::optional<policy::ReconcileStatus> read_reconcile_status(const std::string& state_dir) {
  std::ifstream f(state_dir + "/reconcile.json");
  if (!f) return std::nullopt;
  auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    return policy::ReconcileStatus::from_json(j);
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

PolicyCollector::PolicyCollector(PolicyCollectorOptions o) : o_(o), backend_(o.iptables) {}

void PolicyCollector::collect(Exposition& out) {
  std::lock_guard lk(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!read_at_ || now - *read_at_ >= std::chrono::seconds(o_.refresh_seconds)) {
    read_at_ = now;
    auto st = backend_.status();
    if (st) status_ = std::move(*st);
    else {
      if (read_errors_++ == 0) spdlog::warn("metrics: policy backend status: {}", st.error().str());
      status_.reset();
    }
  }
  auto rs = read_reconcile_status(o_.iptables.state_dir);

  out.family("hostscope_policy_info", "gauge",
             "Always 1: the policy generation in force and the commit (or content hash) it came from.");
  if (rs || status_) {
    std::string gen = std::to_string(status_ ? status_->generation : rs->generation);
    std::string commit = rs ? rs->applied_commit : std::string();
    std::string hash = status_ ? status_->source_hash : std::string();
    out.sample("hostscope_policy_info", Labels{{"generation", gen}, {"commit", commit}, {"source_hash", hash}},
               uint64_t{1});
  }
  out.family("hostscope_policy_generation", "gauge", "Policy generation applied in the kernel (0: none).");
  if (status_) out.sample("hostscope_policy_generation", {}, uint64_t(status_->generation));
  out.family("hostscope_policy_apply_attempts_total", "counter", "Reconciler apply attempts, by result.");
  out.family("hostscope_policy_drift_repairs_total", "counter", "Times the reconciler put drifted rules back.");
  if (rs) {
    for (auto& [result, n] : rs->attempts)
      out.sample("hostscope_policy_apply_attempts_total", Labels{{"result", result}}, n);
    out.sample("hostscope_policy_drift_repairs_total", {}, rs->drift_repairs);
  }
  out.family("hostscope_policy_drift", "gauge", "1 when the kernel rules differ from the generation in force.");
  if (status_) out.sample("hostscope_policy_drift", {}, uint64_t(status_->drift ? 1 : 0));
  out.family("hostscope_policy_rule_hits_packets_total", "counter", "Packets matched by each policy rule.");
  if (status_) {
    // Identical label sets (a rule split into several kernel rules) are summed so no series repeats.
    using Key = std::array<std::string, 6>;
    std::map<Key, uint64_t> hits;
    for (auto& c : status_->counters)
      hits[{c.family == Family::V4 ? "ipv4" : "ipv6", c.chain, c.tag, c.owner, c.target, c.mode}] += c.packets;
    for (auto& [k, n] : hits)
      out.sample("hostscope_policy_rule_hits_packets_total",
                 Labels{{"family", k[0]}, {"chain", k[1]}, {"rule", k[2]}, {"policy", k[3]}, {"target", k[4]},
                        {"mode", k[5]}},
                 n);
  }
  out.family("hostscope_policy_audit_would_deny_packets_total", "counter",
             "Packets that audit-mode policies would have denied in enforce mode.");
  if (status_) out.sample("hostscope_policy_audit_would_deny_packets_total", {}, status_->audit_would_deny_packets);
  out.family("hostscope_policy_status_errors_total", "counter", "Failed reads of the policy backend status.");
  out.sample("hostscope_policy_status_errors_total", {}, read_errors_);
}

}  // namespace hostscope::exporters
