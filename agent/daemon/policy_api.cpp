// Policy from Git or a directory inside the agent: the reconciler thread and the API methods "policy.status" and
// "policy.sync" (docs/policy-git.md).
#include <set>

#include "agent/daemon/agent.h"
#include "agent/daemon/service_catalogue.h"
#include "agent/util/logging.h"
#include "policy/reconciler.h"

namespace hostscope::daemon {
namespace {

// The service catalogue for policy subjects and PolicyTest names: the identity layer's processes grouped by
// service, with their pods'/containers' addresses and listening ports, plus the config's named networks.
policy::Context agent_policy_context(pipeline::Pipeline& pipeline, const Config& cfg) {
  auto endpoints = pipeline.local_endpoints();
  return service_catalogue(pipeline.processes(), endpoints ? *endpoints : identity::LocalEndpointsSnapshot{},
                           cfg.networks);
}

}  // namespace

void Agent::start_policy() {
  if (!cfg_.policy.enabled()) return;
  policy_ = std::make_unique<policy::Reconciler>(cfg_.policy, [this] { return agent_policy_context(*pipeline_, cfg_); });
  // policy.impact: the edges this agent holds are the observed traffic a new set is checked against.
  policy_->set_observed([this]() -> std::optional<topology::TopologySnapshot> { return pipeline_->snapshot(); });
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
