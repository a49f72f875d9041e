#pragma once
// Policy state as plain values and the families written from it. The agent fills PolicyHealth (agent/daemon/
// policy_health.h: the reconciler's record and the enforcement backend's status, read and cached there); the
// exporter only renders it, so it neither runs iptables-save nor depends on policy/.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "exporters/exposition.h"

namespace hostscope::exporters {

// One kernel rule's packet counter, with its labels as written.
struct PolicyRuleHits {
  std::string family;  // ipv4 | ipv6
  std::string chain, rule, policy, target, mode;  // rule: the rule's tag; policy: its owner; mode: enforce | audit
  uint64_t packets = 0;
};

// What the enforcement backend reports (iptables-save): the generation in force and its counters.
struct PolicyBackendHealth {
  int generation = 0;  // 0: nothing applied
  std::string source_hash;
  bool drift = false;
  std::vector<PolicyRuleHits> rules;  // one per kernel rule; a rule split into several may repeat a label set
  uint64_t audit_would_deny_packets = 0;
};

// What the reconciler recorded (<state_dir>/reconcile.json).
struct PolicyReconcileHealth {
  int generation = 0;
  std::string applied_commit;
  std::map<std::string, uint64_t> attempts;  // result -> count
  uint64_t drift_repairs = 0;
};

struct PolicyHealth {
  std::optional<PolicyBackendHealth> backend;      // nullopt: the last read failed
  std::optional<PolicyReconcileHealth> reconcile;  // nullopt: no readable reconcile.json
  uint64_t status_errors = 0;                      // failed reads of the backend status
};

void write_policy_health(Exposition& out, const PolicyHealth& h);

}  // namespace hostscope::exporters
