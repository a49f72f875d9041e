#include "agent/daemon/agent.h"
#include "agent/topology/json.h"
#include "agent/util/clock.h"

namespace hostscope::daemon {

void register_topology_api(ApiServer& api, Pipeline& pipeline, const Config& cfg) {
  api.handle("topology", [&pipeline](const nlohmann::json& p) {
    return topology::to_json(pipeline.snapshot(topology_filter_from_json(p, clock_ns(CLOCK_REALTIME))));
  });
}

}  // namespace hostscope::daemon
