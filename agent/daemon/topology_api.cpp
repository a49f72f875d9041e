#include "agent/daemon/agent.h"

namespace hostscope::daemon {

void register_topology_api(ApiServer& api, Pipeline& pipeline, const Config& cfg) {
  api.handle("topology", [](const nlohmann::json&) -> nlohmann::json { throw ApiError("topology: not wired yet"); });
}

}  // namespace hostscope::daemon
