#include "common/api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>

#include "common/fd.h"
#include "common/json_nesting.h"

namespace hostscope::api {

Result<std::string> read_line(int fd, size_t limit, int timeout_ms, const char* what, bool partial_ok) {
  std::string buf;
  char tmp[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      if (nl > limit) return errorf("{} larger than {} bytes", what, limit);
      buf.resize(nl);
      return buf;
    }
    if (buf.size() > limit) return errorf("{} larger than {} bytes", what, limit);
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return errorf_errno(ETIMEDOUT, "no {} line within {} ms", what, timeout_ms);
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return errorf_errno(ETIMEDOUT, "no {} line within {} ms", what, timeout_ms);
    ssize_t n = ::recv(fd, tmp, std::min(sizeof(tmp), limit + 1 - buf.size()), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!buf.empty() && n == 0) {
        if (partial_ok) return buf;  // last line without newline
        return errorf("connection closed before a complete {}", what);
      }
      return errorf_errno(ECONNRESET, "connection closed before a complete {}", what);
    }
    buf.append(tmp, size_t(n));
  }
}

Result<int> connect_unix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errorf_errno(errno, "socket");
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof(sa.sun_path)) {
    close(fd);
    return errorf("api socket path {} too long", path);
  }
  std::strcpy(sa.sun_path, path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    close(fd);
    return errorf_errno(e, "agent socket {} connect failed", path);
  }
  return fd;
}

namespace {

// MSG_NOSIGNAL: a vanished agent is EPIPE here, not SIGPIPE, whether or not the process ignores the signal.
bool send_all(int fd, const std::string& s) {
  for (size_t off = 0; off < s.size();) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += size_t(n);
  }
  return true;
}

std::string request_line(const std::string& method, const nlohmann::json& params) {
  return nlohmann::json{{"method", method}, {"params", params}}.dump() + "\n";
}

// After a failed request write: the agent may have refused us (too many clients) and closed before reading. Its
// one-line reason is still in our receive queue; nullopt when there is none.
std::optional<Error> refusal(int fd, int write_errno, const std::string& method) {
  if (write_errno != EPIPE && write_errno != ECONNRESET) return std::nullopt;
  auto line = read_line(fd, 4096, 200, "reply");
  if (!line) return std::nullopt;
  auto j = nlohmann::json::parse(*line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("error")) return std::nullopt;
  return errorf("api {}: {}", method, j.value("error", std::string("refused")));
}

}  // namespace

Result<Reply> request(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                      int timeout_ms, const ReplyLimits& limits) {
  auto fd = connect_unix(socket_path);
  if (!fd) return fd.error();
  UniqueFd guard(*fd);
  if (!send_all(*fd, request_line(method, params))) {
    int e = errno;
    if (auto why = refusal(*fd, e, method)) return *why;
    return errorf_errno(e, "api request {} write", method);
  }
  std::string what = method + " reply";
  auto line = read_line(*fd, limits.max_bytes, timeout_ms, what.c_str(), false);
  if (!line) return errorf_errno(line.error().err, "api {}: {}", method, line.error().message);
  // nlohmann parses recursively: a bounded depth is checked before parsing, so a hostile reply cannot exhaust the stack.
  if (limits.max_depth > 0 && !json_nesting_within(*line, limits.max_depth))
    return errorf("api {}: reply is nested deeper than {} levels", method, limits.max_depth);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*line);
  } catch (const nlohmann::json::exception& e) {
    return errorf("api {}: reply is not JSON: {}", method, e.what());
  }
  if (!j.is_object()) return errorf("api {}: reply is not a JSON object", method);
  Reply r;
  auto ok = j.find("ok");
  r.ok = ok != j.end() && ok->is_boolean() && ok->get<bool>();
  if (auto err = j.find("error"); err != j.end() && err->is_string()) r.error = err->get<std::string>();
  if (auto res = j.find("result"); res != j.end()) r.result = std::move(*res);
  return r;
}

Result<nlohmann::json> call(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                            int timeout_ms) {
  auto r = request(socket_path, method, params, timeout_ms);
  if (!r) return r.error();
  if (!r->ok) return errorf("api {}: {}", method, r->error.empty() ? std::string("unknown error") : r->error);
  return std::move(r->result);
}

Status stream(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
              const std::function<bool(const std::string&)>& on_line, const std::atomic<bool>* stop) {
  auto fd = connect_unix(socket_path);
  if (!fd) return fd.error();
  UniqueFd guard(*fd);
  if (!send_all(*fd, request_line(method, params))) {
    int e = errno;
    auto why = refusal(*fd, e, method);  // a refused client learns why
    return why ? errorf("api stream {}: {}", method, why->str()) : errorf_errno(e, "api stream {} write", method);
  }
  std::string buf;
  char tmp[65536];
  bool first = true;
  for (;;) {
    if (stop && stop->load()) return {};
    pollfd p{*fd, POLLIN, 0};
    if (poll(&p, 1, 200) == 0) continue;
    ssize_t n = recv(*fd, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)  // only the caller ends a stream: the agent closing it is news the user must get
      return errorf_errno(ECONNRESET, "api stream {}: the agent ended the stream (it stopped, or this client fell "
                                      "behind by more than api.stream_queue lines and was dropped)", method);
    buf.append(tmp, size_t(n));
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      std::string l = buf.substr(0, pos);
      buf.erase(0, pos + 1);
      if (first) {
        first = false;
        auto j = nlohmann::json::parse(l, nullptr, false);
        if (j.is_discarded() || !j.value("ok", false))
          return errorf("api stream {}: {}", method, j.is_discarded() ? l : j.value("error", std::string("refused")));
        continue;
      }
      if (!on_line(l)) return {};
    }
  }
}

bool daemon_running(const std::string& socket_path) {
  auto r = call(socket_path, "health", nlohmann::json::object(), 1000);
  return r.has_value();
}

AgentProbe probe_agent(const std::string& socket_path, int timeout_ms) {
  auto r = call(socket_path, "health", nlohmann::json::object(), timeout_ms);
  if (r) return {AgentProbe::State::Running, ""};
  const Error& e = r.error();
  if (e.err == ENOENT || e.err == ECONNREFUSED || e.err == ENOTDIR) return {AgentProbe::State::Absent, e.str()};
  if (e.err == EACCES || e.err == EPERM) return {AgentProbe::State::Denied, e.str()};
  return {AgentProbe::State::Refused, e.str()};
}

std::string probe_message(const std::string& socket_path, const AgentProbe& p) {
  if (p.state == AgentProbe::State::Denied)
    return fmt::format("permission denied on the agent's socket {}; join group hostscope (or run as root)", socket_path);
  if (p.state == AgentProbe::State::Refused)
    return fmt::format("the agent is running but refused us: {}", p.detail);
  return p.detail;
}

bool agent_gone(const Error& e) {
  return e.err == ENOENT || e.err == ECONNREFUSED || e.err == ECONNRESET || e.err == EPIPE;
}

}  // namespace hostscope::api
