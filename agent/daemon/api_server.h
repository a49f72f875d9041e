#pragma once
// The local API: JSON lines over a Unix socket (default /run/hostscope/hostscope.sock, mode 0660, group hostscope).
//   request:  one line, {"method": "<name>", "params": {...}}   (at most max_request_bytes)
//   reply:    one line, {"ok": true, "result": ...} or {"ok": false, "error": "..."}; then the server closes.
//   streams:  methods registered with stream() keep the connection open and write one JSON object per line until
//             the client goes away; a slow client loses lines (counted), it never slows the agent.
// A bad request gets an error reply and never harms the agent.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/daemon/api_request.h"
#include "agent/util/fd.h"
#include "agent/util/result.h"

namespace hostscope::daemon {

// A bounded queue of lines for one streaming client.
class StreamQueue {
 public:
  explicit StreamQueue(size_t cap) : cap_(cap) {}
  void push(std::string line);  // drops (and counts) when full
  // Waits up to `wait` for lines; returns false when closed.
  bool pop_all(std::vector<std::string>& out, std::chrono::milliseconds wait);
  void close();
  uint64_t dropped() const { return dropped_.load(); }

 private:
  size_t cap_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  bool closed_ = false;
  std::atomic<uint64_t> dropped_{0};
};

struct ApiCounters {
  uint64_t requests = 0, bad_requests = 0, rejected_clients = 0, stream_lines_dropped = 0, streams_active = 0;
};

class ApiServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& params)>;  // throw ApiError for a client error
  // Called once per stream client with its queue; returns an unsubscribe function.
  using StreamHandler = std::function<std::function<void()>(const nlohmann::json& params, std::shared_ptr<StreamQueue>)>;

  struct Options {
    std::string socket_path;
    std::string group;  // "" or a missing group: root only (0600 semantics via 0660 + root group)
    uint32_t max_request_bytes = 64 * 1024;
    uint32_t max_clients = 16;
    uint32_t stream_queue = 8192;
  };

  explicit ApiServer(Options o);
  ~ApiServer();
  void handle(const std::string& method, Handler h);
  void stream(const std::string& method, StreamHandler h);
  Status start();
  void stop();
  ApiCounters counters() const;

 private:
  void accept_loop();
  void serve(int fd);
  void reply(int fd, const nlohmann::json& j);

  Options o_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, StreamHandler> streams_;
  UniqueFd listen_fd_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex clients_mu_;
  struct Client {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::list<Client> clients_;  // finished ones are joined by the accept loop, so threads never pile up
  void reap_clients(bool all);
  std::vector<int> client_fds_;
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> requests_{0}, bad_{0}, rejected_{0}, stream_dropped_{0}, streams_active_{0};
};

// Client side: one request, one reply (or a stream of lines for stream methods).
Result<nlohmann::json> api_call(const std::string& socket_path, const std::string& method,
                                const nlohmann::json& params = nlohmann::json::object(), int timeout_ms = 5000);
// Opens a stream; calls on_line for each line until it returns false or the server closes.
// `stop` (optional) is checked every 200 ms so a caller can end a quiet stream.
Status api_stream(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                  const std::function<bool(const std::string&)>& on_line, const std::atomic<bool>* stop = nullptr);
// True when a daemon answers on this socket.
bool daemon_running(const std::string& socket_path);

}  // namespace hostscope::daemon
