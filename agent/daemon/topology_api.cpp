#include "agent/daemon/agent.h"
#include "agent/util/clock.h"
#include "common/topology_json.h"

namespace hostscope::daemon {

void register_topology_api(ApiServer& api, pipeline::Pipeline& pipeline, const Config& cfg) {
  // Streamed edge by edge: a 20k-edge snapshot is ~16 MB of JSON, which as a document would cost several times that.
  api.chunked("topology", [&pipeline](const nlohmann::json& p, ReplyWriter& out) {
    auto f = topology_filter_from_json(p, clock_ns(CLOCK_REALTIME));  // throws ApiError before anything is written
    topology::write_json(pipeline.snapshot(f), [&out](std::string_view piece) { return out.append(piece); });
  });
}

}  // namespace hostscope::daemon
