#pragma once
// The daemon: the pipeline plus the local API that serves its snapshots and streams.
#include <memory>

#include "agent/daemon/api_server.h"
#include "agent/daemon/config.h"
#include "agent/daemon/pipeline.h"

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

 private:
  void register_api();
  Config cfg_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<ApiServer> api_;
};

}  // namespace hostscope::daemon
