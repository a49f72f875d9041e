#pragma once
// Policy state for Prometheus: the reconciler's record (<state_dir>/reconcile.json, policy::ReconcileStatus)
// and the enforcement backend's status (generation, per-rule counters, audit would-deny). Reading the backend
// runs iptables-save, so its status is cached and refreshed at most every `refresh_seconds`.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "exporters/exposition.h"
#include "policy/iptables.h"
#include "policy/reconcile_status.h"

namespace hostscope::exporters {

struct PolicyCollectorOptions {
  policy::IptablesOptions iptables;  // its state_dir also holds reconcile.json
  uint32_t refresh_seconds = 15;     // 0: read the backend on every scrape
};

class PolicyCollector {
 public:
  explicit PolicyCollector(PolicyCollectorOptions o);
  void collect(Exposition& out);

 private:
  PolicyCollectorOptions o_;
  policy::IptablesBackend backend_;
  std::mutex mu_;
  std::optional<std::chrono::steady_clock::time_point> read_at_;
  std::optional<policy::BackendStatus> status_;
  uint64_t read_errors_ = 0;
};

// Reads <state_dir>/reconcile.json; nullopt when absent or unreadable.
std::optional<policy::ReconcileStatus> read_reconcile_status(const std::string& state_dir);

}  // namespace hostscope::exporters
