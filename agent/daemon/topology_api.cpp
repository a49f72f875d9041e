#include "agent/daemon/agent.h"
#include "agent/topology/json.h"
#include "agent/util/clock.h"

namespace hostscope::daemon {

// params: {"since_seconds": N | "since_ns": T, "service": s, "namespace": ns, "port": p}
topology::SnapshotFilter topology_filter_from_json(const nlohmann::json& p) {
  topology::SnapshotFilter f;
  try {
    if (p.contains("since_ns")) f.since_ns = p["since_ns"].get<uint64_t>();
    if (p.contains("since_seconds")) {
      double s = p["since_seconds"].get<double>();
      if (s < 0) throw ApiError("since_seconds must not be negative");
      f.since_ns = clock_ns(CLOCK_REALTIME) - uint64_t(s * 1e9);
    }
    f.service = p.value("service", std::string());
    f.ns = p.value("namespace", std::string());
    if (p.contains("port")) f.port = p["port"].get<uint16_t>();
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(std::string("bad topology parameters: ") + e.what());
  }
  return f;
}

void register_topology_api(ApiServer& api, Pipeline& pipeline, const Config& cfg) {
  api.handle("topology", [&pipeline](const nlohmann::json& p) {
    return topology::to_json(pipeline.snapshot(topology_filter_from_json(p)));
  });
}

}  // namespace hostscope::daemon
