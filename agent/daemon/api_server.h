#pragma once
// The local API: JSON lines over a Unix socket (default /run/hostscope/hostscope.sock, mode 0660, group hostscope).
//   request:  one line, {"method": "<name>", "params": {...}}   (at most max_request_bytes)
//   reply:    one line, {"ok": true, "result": ...} or {"ok": false, "error": "..."}; then the server closes.
//   streams:  methods registered with stream() keep the connection open and write one JSON object per line until
//             the client goes away; a client too slow to keep its queue from filling is disconnected (counted), it
//             never slows the agent.
// A bad request gets an error reply and never harms the agent. Hostile clients cannot lock the API out: a client
// must send its request within request_timeout_ms, and when every slot is taken the oldest client still waiting
// for its request is closed to make room; every write to a client must progress within request_timeout_ms.
// Large replies (chunked handlers: topology snapshots) are written in pieces as they are produced, at most
// max_snapshots at a time; the heap is trimmed after a large one. The client side is common/api_client.h.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <semaphore>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/daemon/api_request.h"
#include "common/fd.h"
#include "common/result.h"

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
  uint64_t idle_clients_closed = 0;     // closed for sending no request in time, or to make room for a new client
  uint64_t slow_streams_dropped = 0;    // stream clients disconnected because their queue filled
  uint64_t slow_writes_dropped = 0;     // clients disconnected because a reply write made no progress in time
  uint64_t snapshots_busy = 0;          // chunked requests refused: max_snapshots were running for too long
};

// Writes a chunked handler's result: `{"ok":true,"result":` before the first piece, buffered in chunks of about
// 64 KiB, so the whole reply never exists in memory. After a failed write every append is a no-op.
class ReplyWriter {
 public:
  explicit ReplyWriter(int fd) : fd_(fd) {}
  bool append(std::string_view s);  // false once the client is gone (or too slow)
  bool finish();                    // closes the envelope and flushes
  bool started() const { return started_; }
  bool failed() const { return failed_; }
  int error() const { return err_; }  // errno of the failed write (ETIMEDOUT: the reply took too long)
  uint64_t bytes() const { return bytes_; }

 private:
  bool flush();
  int fd_;
  std::string buf_;
  bool started_ = false, failed_ = false;
  int err_ = 0;
  uint64_t bytes_ = 0;
  std::chrono::steady_clock::time_point started_at_;
};

class ApiServer {
 public:
  using Handler = std::function<nlohmann::json(const nlohmann::json& params)>;  // throw ApiError for a client error
  // Called once per stream client with its queue; returns an unsubscribe function.
  using StreamHandler = std::function<std::function<void()>(const nlohmann::json& params, std::shared_ptr<StreamQueue>)>;
  // Writes its result (one JSON value) through the writer in pieces; throws ApiError for a client error before the
  // first append. At most Options::max_snapshots run at once.
  using ChunkedHandler = std::function<void(const nlohmann::json& params, ReplyWriter& out)>;

  struct Options {
    std::string socket_path;
    std::string group;  // "" or a missing group: root only (0600 semantics via 0660 + root group)
    uint32_t max_request_bytes = 64 * 1024;
    uint32_t max_clients = 16;
    uint32_t stream_queue = 8192;
    uint32_t request_timeout_ms = 2000;  // to send the request line; also the longest a reply write may stall
    uint32_t max_snapshots = 2;          // chunked handlers running at once; others wait request_timeout_ms
  };

  explicit ApiServer(Options o);
  ~ApiServer();
  void handle(const std::string& method, Handler h);
  void stream(const std::string& method, StreamHandler h);
  void chunked(const std::string& method, ChunkedHandler h);
  Status start();
  void stop();
  ApiCounters counters() const;

 private:
  struct Client {
    int fd = -1;  // -1 once the serving thread closes it (under clients_mu_)
    std::chrono::steady_clock::time_point accepted;
    std::thread thread;
    std::atomic<bool> awaiting_request{true};
    std::atomic<bool> preempted{false};  // closed by make_room_or_reject
    std::atomic<bool> done{false};
  };
  void accept_loop();
  void start_client(int fd);
  void make_room_or_reject(int fd);
  void serve(Client& c);
  bool reply(int fd, const nlohmann::json& j);  // false when the write failed (a stalled write is counted)
  void serve_chunked(int fd, const ChunkedHandler& h, const nlohmann::json& params);

  Options o_;
  std::map<std::string, Handler> handlers_;
  std::map<std::string, StreamHandler> streams_;
  std::map<std::string, ChunkedHandler> chunked_;
  std::counting_semaphore<1024> snapshot_slots_{0};
  UniqueFd listen_fd_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex clients_mu_;
  std::list<Client> clients_;  // finished ones are joined by the accept loop, so threads never pile up
  void reap_clients(bool all);
  std::atomic<uint32_t> active_{0};
  std::atomic<uint64_t> requests_{0}, bad_{0}, rejected_{0}, stream_dropped_{0}, streams_active_{0};
  std::atomic<uint64_t> idle_closed_{0}, slow_streams_{0}, slow_writes_{0}, snapshots_busy_{0};
};

// One agent per socket: an exclusive flock on `<socket>.lock`, held (with the fd) for the agent's life; the file
// holds the owner's pid. A second agent gets an error naming the first's pid.
Result<UniqueFd> lock_agent_instance(const std::string& socket_path);

}  // namespace hostscope::daemon
