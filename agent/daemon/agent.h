#pragma once
// The daemon: the pipeline plus the local API that serves its snapshots and streams.
#include <memory>
#include <optional>

#include "agent/daemon/api_server.h"
#include "agent/daemon/config.h"
#include "agent/daemon/pipeline.h"
#include "policy/reconcile_status.h"

namespace hostscope::policy {
class Reconciler;
}

namespace hostscope::daemon {

// Loads the config; when `missing_ok` and the file does not exist, returns the defaults.
Result<Config> load_agent_config(const std::string& path, bool missing_ok);

// The identity resolver the agent uses (process table when available, comm otherwise).
std::unique_ptr<IdentityResolver> make_default_resolver(const Config& cfg, Pipeline* pipeline);

// Registers the topology API methods (snapshot as JSON, filters) on the server.
void register_topology_api(ApiServer& api, Pipeline& pipeline, const Config& cfg);

class Agent {
 public:
  explicit Agent(Config cfg);
  ~Agent();
  Status start();
  void stop();
  Pipeline& pipeline() { return *pipeline_; }
  // The policy reconciler's record (policy from Git or a directory); nullopt when no policy source is configured.
  std::optional<policy::ReconcileStatus> policy_status() const;

 private:
  void register_api();
  void start_policy();  // agent/daemon/policy_api.cpp
  Config cfg_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<policy::Reconciler> policy_;
};

}  // namespace hostscope::daemon
