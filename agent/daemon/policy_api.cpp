// Policy from Git or a directory inside the agent: the reconciler thread and the API methods "policy.status" and
// "policy.sync" (docs/policy-git.md).
#include <set>

#include "agent/daemon/agent.h"
#include "agent/util/logging.h"
#include "policy/reconciler.h"

namespace hostscope::daemon {
namespace {

// The service catalogue for policy subjects and PolicyTest names: the identity layer's processes grouped by
// service, plus the config's named networks.
policy::Context agent_policy_context(Pipeline& pipeline, const Config& cfg) {
  policy::Context ctx;
  ctx.networks = cfg.networks;
  std::map<std::string, policy::ServiceInfo> by_name;
  for (const auto& p : pipeline.services_json()) {
    auto name = p.value("service", std::string());
    if (name.empty()) continue;
    auto& s = by_name[name];
    s.name = name;
    auto cg = p.value("cgroup", std::string());
    if (!cg.empty() && std::find(s.cgroups.begin(), s.cgroups.end(), cg) == s.cgroups.end()) s.cgroups.push_back(cg);
    s.exe = p.value("exe", std::string());
    s.k8s_namespace = p.value("namespace", std::string());
    s.workload = p.value("workload", std::string());
  }
  for (auto& [n, s] : by_name) ctx.services.push_back(std::move(s));
  return ctx;
}

}  // namespace

void Agent::start_policy() {
  if (!cfg_.policy.enabled()) return;
  policy_ = std::make_unique<policy::Reconciler>(cfg_.policy, [this] { return agent_policy_context(*pipeline_, cfg_); });
  api_->handle("policy.status", [this](const nlohmann::json&) {
    return nlohmann::json{{"reconcile", policy_->status().to_json()}, {"backend", policy_->backend_summary()}};
  });
  api_->handle("policy.sync", [this](const nlohmann::json&) {
    auto r = policy_->pass();
    return nlohmann::json{{"pass", r.to_json()}, {"reconcile", policy_->status().to_json()}};
  });
  spdlog::info("policy: following {} every {}s (state {})", cfg_.policy.describe(), cfg_.policy.poll_seconds, cfg_.policy.state_dir);
  policy_->start();
}

std::optional<policy::ReconcileStatus> Agent::policy_status() const {
  if (!policy_) return std::nullopt;
  return policy_->status();
}

}  // namespace hostscope::daemon
