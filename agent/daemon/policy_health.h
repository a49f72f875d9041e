#pragma once
// The policy state /metrics shows, read by the agent: the reconciler's record (<state_dir>/reconcile.json,
// policy::ReconcileStatus) and the enforcement backend's status (generation, per-rule counters, audit
// would-deny), handed to the exporter as plain values (exporters::PolicyHealth). Reading the backend runs
// iptables-save, so its status is cached and refreshed at most every `refresh_seconds`.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "exporters/policy_metrics.h"
#include "policy/iptables.h"
#include "policy/reconcile_status.h"

namespace hostscope::daemon {

struct PolicyHealthOptions {
  policy::IptablesOptions iptables;  // its state_dir also holds reconcile.json
  uint32_t refresh_seconds = 15;     // 0: read the backend on every call
};

class PolicyHealthReader {
 public:
  explicit PolicyHealthReader(PolicyHealthOptions o);
  // Called at scrape time; thread-safe.
  exporters::PolicyHealth read();

 private:
  PolicyHealthOptions o_;
  policy::IptablesBackend backend_;
  std::mutex mu_;
  std::optional<std::chrono::steady_clock::time_point> read_at_;
  std::optional<policy::BackendStatus> status_;
  uint64_t read_errors_ = 0;
};

// Reads <state_dir>/reconcile.json; nullopt when absent or unreadable.
std::optional<policy::ReconcileStatus> read_reconcile_status(const std::string& state_dir);

}  // namespace hostscope::daemon
