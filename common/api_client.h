#pragma once
// The client side of the agent's local API (protocol and server: agent/daemon/api_server.h): JSON lines over a
// Unix socket, one request line {"method": ..., "params": {...}}, one reply line {"ok": true, "result": ...} or
// {"ok": false, "error": "..."}; stream methods then send one JSON object per line. The CLI, `policy`, the tests
// and the benchmarks all talk to the agent through these functions; the server reads its requests with read_line.
#include <atomic>
#include <cstddef>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace hostscope::api {

// Bounds on one reply line, checked before it is parsed.
struct ReplyLimits {
  size_t max_bytes = 256u << 20;
  int max_depth = 0;  // JSON nesting (common/json_nesting.h); 0: not checked (the agent's own replies)
};

// A reply envelope as the agent sent it.
struct Reply {
  bool ok = false;
  nlohmann::json result;  // null when the reply has none
  std::string error;      // the agent's reason when !ok; "" when it gave none
};

// One request, one reply line (errors name the method and keep errno: agent_gone() reads it).
Result<Reply> request(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                      int timeout_ms, const ReplyLimits& limits = {});
// request() for callers that want the result: an agent's refusal becomes an error "api <method>: <reason>".
Result<nlohmann::json> call(const std::string& socket_path, const std::string& method,
                            const nlohmann::json& params = nlohmann::json::object(), int timeout_ms = 5000);
// Opens a stream; calls on_line for each line until it returns false (success) or the server closes (an error).
// `stop` (optional) is checked every 200 ms so a caller can end a quiet stream.
Status stream(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
              const std::function<bool(const std::string&)>& on_line, const std::atomic<bool>* stop = nullptr);
// True when a daemon answers on this socket.
bool daemon_running(const std::string& socket_path);

// What a client finds on the socket. Only `Absent` (no socket, or nothing listening on it) means there is no
// agent: a full or slow agent is `Refused`, a socket the caller may not open is `Denied`.
struct AgentProbe {
  enum class State { Running, Absent, Refused, Denied } state = State::Absent;
  std::string detail;  // the reason, for Refused, Denied and Absent
};
AgentProbe probe_agent(const std::string& socket_path, int timeout_ms = 1000);
// The message a CLI shows for Refused or Denied.
std::string probe_message(const std::string& socket_path, const AgentProbe& p);
// True when an API error means the agent is not there any more (stopped, restarted), not that it refused.
bool agent_gone(const Error& e);

// ---- the line protocol, shared with the server ---------------------------------------------------------------

// A connected AF_UNIX stream socket (close-on-exec); the caller owns the descriptor.
Result<int> connect_unix(const std::string& path);
// Reads one '\n'-terminated line of at most `limit` bytes (the newline not counted) within `timeout_ms`.
// `what` names the line in errors ("request", "topology reply"); a timeout carries ETIMEDOUT, a peer that closed
// before sending anything ECONNRESET. A last line without its newline is returned when `partial_ok`, otherwise it
// is an error (without errno: the peer was there and cut its line short).
Result<std::string> read_line(int fd, size_t limit, int timeout_ms, const char* what, bool partial_ok = true);

}  // namespace hostscope::api
