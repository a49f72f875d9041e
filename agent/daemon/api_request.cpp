#include "agent/daemon/api_request.h"

#include <cmath>

#include "common/json_nesting.h"

namespace hostscope::daemon {

Result<ApiRequest> parse_api_request(std::string_view line) {
  if (!json_nesting_within(line, kMaxRequestDepth))
    return errorf("request nested deeper than {} levels", kMaxRequestDepth);
  nlohmann::json req;
  try {
    req = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    return errorf("request is not valid JSON: {}", e.what());
  }
  if (!req.is_object() || !req.contains("method") || !req["method"].is_string())
    return errorf("request must be an object with a string \"method\"");
  ApiRequest r;
  r.method = req["method"].get<std::string>();
  if (req.contains("params")) {
    if (!req["params"].is_object()) return errorf("\"params\" must be an object");
    r.params = std::move(req["params"]);
  }
  return r;
}

topology::SnapshotFilter topology_filter_from_json(const nlohmann::json& p, uint64_t now_ns) {
  topology::SnapshotFilter f;
  try {
    if (p.contains("since_ns")) f.since_ns = p["since_ns"].get<uint64_t>();
    if (p.contains("since_seconds")) {
      double s = p["since_seconds"].get<double>();
      if (!std::isfinite(s) || s < 0) throw ApiError("since_seconds must be a non-negative number");
      double ns = s * 1e9;
      f.since_ns = ns >= double(now_ns) ? 0 : now_ns - uint64_t(ns);
    }
    f.service = p.value("service", std::string());
    f.ns = p.value("namespace", std::string());
    if (p.contains("port")) f.port = p["port"].get<uint16_t>();
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(std::string("bad topology parameters: ") + e.what());
  }
  return f;
}

events::ConnectionFilter stream_filter_from_json(const nlohmann::json& p) {
  events::ConnectionFilter f;
  try {
    f.opens = p.value("opens", false);
    f.failed_only = p.value("failed_only", false);
    f.comm = p.value("comm", std::string());
    if (p.contains("pids")) f.pids = p["pids"].get<std::vector<uint32_t>>();
    if (p.contains("ports")) f.ports = p["ports"].get<std::vector<uint16_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw ApiError(std::string("bad stream parameters: ") + e.what());
  }
  return f;
}

}  // namespace hostscope::daemon
