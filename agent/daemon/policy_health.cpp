#include "agent/daemon/policy_health.h"

#include <spdlog/spdlog.h>

#include <fstream>

namespace hostscope::daemon {

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

PolicyHealthReader::PolicyHealthReader(PolicyHealthOptions o) : o_(std::move(o)), backend_(o_.iptables) {}

exporters::PolicyHealth PolicyHealthReader::read() {
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
  exporters::PolicyHealth h;
  if (status_) {
    auto& b = h.backend.emplace();
    b.generation = status_->generation;
    b.source_hash = status_->source_hash;
    b.drift = status_->drift;
    for (const auto& c : status_->counters)
      b.rules.push_back({c.family == Family::V4 ? "ipv4" : "ipv6", c.chain, c.tag, c.owner, c.target, c.mode, c.packets});
    b.audit_would_deny_packets = status_->audit_would_deny_packets;
  }
  if (auto rs = read_reconcile_status(o_.iptables.state_dir)) {
    auto& r = h.reconcile.emplace();
    r.generation = rs->generation;
    r.applied_commit = rs->applied_commit;
    r.attempts = rs->attempts;
    r.drift_repairs = rs->drift_repairs;
  }
  h.status_errors = read_errors_;
  return h;
}

}  // namespace hostscope::daemon
