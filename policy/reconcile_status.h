#pragma once
// What the policy reconciler (policy from Git or a directory, run by `hostscope agent`) last did.
// Written by the reconciler to <state_dir>/reconcile.json after every pass, so `hostscope policy status`
// and the metrics exporter read the same facts, and a restarted agent knows the commit in force.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hostscope::policy {

struct ReconcileStatus {
  std::string source;            // "git <url> branch <b> dir <sub>" or "dir <path>"; "" when no source is configured
  // The generation in force and the commit (or directory content hash) it came from.
  int generation = 0;
  std::string applied_commit;
  int64_t applied_unix = 0;
  int64_t applied_commit_unix = 0;  // the applied commit's committer time (directory sources: 0)
  // The last pass that saw a new commit: its commit, outcome and, when refused, the step and message.
  std::string last_attempt_commit;
  int64_t last_attempt_unix = 0;
  std::string last_result;       // applied | refused | error | "" (never attempted)
  std::string last_step;         // context | fetch | verify | stage | lint | test | plan | select | impact | apply (the step that failed)
  std::string last_error;
  std::string last_warning;      // applied with a warning (policy.impact: warn): the observed edges it newly denies
  // policy.impact: audit-first: policies of the applied commit held in audit mode because they would deny observed
  // traffic; enforced by a later pass once no observed edge would be newly denied.
  std::vector<std::string> audit_first;
  std::map<std::string, uint64_t> attempts;  // result -> count since the agent started
  uint64_t drift_repairs = 0;
  int64_t last_drift_unix = 0;      // when drift was last repaired
  uint64_t passes = 0;

  nlohmann::json to_json() const {
    return {{"source", source},
            {"generation", generation},
            {"applied_commit", applied_commit},
            {"applied_unix", applied_unix},
            {"applied_commit_unix", applied_commit_unix},
            {"last_attempt_commit", last_attempt_commit},
            {"last_attempt_unix", last_attempt_unix},
            {"last_result", last_result},
            {"last_step", last_step},
            {"last_error", last_error},
            {"last_warning", last_warning},
            {"audit_first", audit_first},
            {"attempts", attempts},
            {"drift_repairs", drift_repairs},
            {"last_drift_unix", last_drift_unix},
            {"passes", passes}};
  }
  static ReconcileStatus from_json(const nlohmann::json& j) {
    ReconcileStatus s;
    s.source = j.value("source", "");
    s.generation = j.value("generation", 0);
    s.applied_commit = j.value("applied_commit", "");
    s.applied_unix = j.value("applied_unix", int64_t{0});
    s.applied_commit_unix = j.value("applied_commit_unix", int64_t{0});
    s.last_attempt_commit = j.value("last_attempt_commit", "");
    s.last_attempt_unix = j.value("last_attempt_unix", int64_t{0});
    s.last_result = j.value("last_result", "");
    s.last_step = j.value("last_step", "");
    s.last_error = j.value("last_error", "");
    s.last_warning = j.value("last_warning", "");
    if (j.contains("audit_first") && j["audit_first"].is_array())
      for (const auto& n : j["audit_first"])
        if (n.is_string()) s.audit_first.push_back(n.get<std::string>());
    if (j.contains("attempts") && j["attempts"].is_object()) s.attempts = j["attempts"].get<std::map<std::string, uint64_t>>();
    s.drift_repairs = j.value("drift_repairs", uint64_t{0});
    s.last_drift_unix = j.value("last_drift_unix", int64_t{0});
    s.passes = j.value("passes", uint64_t{0});
    return s;
  }
};

}  // namespace hostscope::policy
