#pragma once
// Parsing of the local API's untrusted input: the request line and the parameters of each method. Pure functions
// (no sockets, no agent state) so they are unit-tested and fuzzed (tests/fuzz/fuzz_api_request.cpp).
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "agent/events/filter.h"
#include "common/topology_model.h"
#include "common/result.h"

namespace hostscope::daemon {

// A client error: the reply says what was wrong; the agent is unaffected.
struct ApiError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ApiRequest {
  std::string method;
  nlohmann::json params = nlohmann::json::object();
};

// No method's parameters nest more than 3 deep; deeper input is refused before it is parsed.
inline constexpr int kMaxRequestDepth = 8;

// `{"method": "<name>", "params": {...}}`; params optional, must be an object.
Result<ApiRequest> parse_api_request(std::string_view line);

// params: {"since_seconds": N | "since_ns": T, "service": s, "namespace": ns, "port": p}. Throws ApiError.
// `now_ns` is CLOCK_REALTIME, passed in so the function stays pure.
topology::SnapshotFilter topology_filter_from_json(const nlohmann::json& p, uint64_t now_ns);

// params of the "connections" stream: {"opens", "failed_only", "comm", "pids", "ports"}. Throws ApiError.
events::ConnectionFilter stream_filter_from_json(const nlohmann::json& p);

}  // namespace hostscope::daemon
