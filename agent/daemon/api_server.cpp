#include "agent/daemon/api_server.h"

#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <filesystem>
#include <optional>

#include "agent/util/io.h"
#include "agent/util/logging.h"
#include "common/api_client.h"

namespace hostscope::daemon {

void StreamQueue::push(std::string line) {
  {
    std::lock_guard lk(mu_);
    if (closed_) return;
    if (q_.size() >= cap_) {
      dropped_++;
      return;
    }
    q_.push_back(std::move(line));
  }
  cv_.notify_one();
}

bool StreamQueue::pop_all(std::vector<std::string>& out, std::chrono::milliseconds wait) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, wait, [&] { return closed_ || !q_.empty(); });
  while (!q_.empty()) {
    out.push_back(std::move(q_.front()));
    q_.pop_front();
  }
  return !closed_;
}

void StreamQueue::close() {
  {
    std::lock_guard lk(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

namespace {

// A write that makes no progress for this long fails with EAGAIN, so a client that stops reading frees its slot.
void set_send_timeout(int fd, uint32_t ms) {
  timeval tv{time_t(ms / 1000), suseconds_t(ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

constexpr size_t kReplyChunk = 64 * 1024;
constexpr auto kMaxReplyTime = std::chrono::seconds(30);  // a chunked reply (a snapshot slot) is held at most this long
constexpr uint64_t kTrimAfterBytes = 1u << 20;            // give the heap back after a reply this large

}  // namespace

bool ReplyWriter::flush() {
  // Each write() stalls at most the socket's send timeout; the deadline is checked between them, so a client that
  // reads a trickle cannot hold its snapshot slot for longer than kMaxReplyTime (plus one send timeout).
  const char* p = buf_.data();
  size_t n = buf_.size();
  while (n && !failed_) {
    if (std::chrono::steady_clock::now() - started_at_ > kMaxReplyTime) {
      failed_ = true;
      err_ = ETIMEDOUT;
      break;
    }
    ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      failed_ = true;
      err_ = errno;
      break;
    }
    p += w;
    n -= size_t(w);
    bytes_ += uint64_t(w);
  }
  buf_.clear();
  return !failed_;
}

bool ReplyWriter::append(std::string_view s) {
  if (failed_) return false;  // the writer (write_json) stops at once
  if (!started_) {
    started_ = true;
    started_at_ = std::chrono::steady_clock::now();
    buf_.reserve(kReplyChunk + 4096);
    buf_ = R"({"ok":true,"result":)";
  }
  buf_.append(s);
  return buf_.size() < kReplyChunk || flush();
}

bool ReplyWriter::finish() {
  if (!started_) append("null");
  if (failed_) return false;
  buf_.append("}\n");
  return flush();
}

ApiServer::ApiServer(Options o) : o_(std::move(o)) { snapshot_slots_.release(std::max<ptrdiff_t>(1, o_.max_snapshots)); }

ApiServer::~ApiServer() { stop(); }

void ApiServer::handle(const std::string& method, Handler h) { handlers_[method] = std::move(h); }
void ApiServer::stream(const std::string& method, StreamHandler h) { streams_[method] = std::move(h); }
void ApiServer::chunked(const std::string& method, ChunkedHandler h) { chunked_[method] = std::move(h); }

Status ApiServer::start() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(o_.socket_path).parent_path(), ec);
  // A stale socket from a crashed agent would make bind fail. The caller holds the instance lock
  // (lock_agent_instance), so no other agent of this version owns it; still never unlink one anything listens on.
  if (fs::exists(o_.socket_path, ec)) {
    if (auto p = api::probe_agent(o_.socket_path); p.state != api::AgentProbe::State::Absent)
      return errorf("api socket {}: something is listening on it ({}); not replacing it", o_.socket_path,
                    p.detail.empty() ? "a hostscope agent answered" : p.detail);
    fs::remove(o_.socket_path, ec);
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errorf_errno(errno, "api socket create");
  listen_fd_.reset(fd);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (o_.socket_path.size() >= sizeof(sa.sun_path)) return errorf("api socket path {} too long", o_.socket_path);
  std::strcpy(sa.sun_path, o_.socket_path.c_str());
  mode_t old = umask(0117);  // created 0660
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  umask(old);
  if (rc != 0) return errorf_errno(errno, "api socket bind {}", o_.socket_path);
  chmod(o_.socket_path.c_str(), 0660);
  if (!o_.group.empty()) {
    if (group* g = getgrnam(o_.group.c_str())) {
      if (chown(o_.socket_path.c_str(), 0, g->gr_gid) != 0)
        spdlog::warn("api socket {}: chown to group {} failed: {}", o_.socket_path, o_.group, strerror(errno));
    } else {
      spdlog::info("api socket {}: group '{}' does not exist; only root can use the API", o_.socket_path, o_.group);
    }
  }
  if (listen(fd, 64) != 0) return errorf_errno(errno, "api socket listen {}", o_.socket_path);
  acceptor_ = std::thread([this] { accept_loop(); });
  return {};
}

void ApiServer::reap_clients(bool all) {
  std::list<Client> finished;
  {
    std::lock_guard lk(clients_mu_);
    for (auto it = clients_.begin(); it != clients_.end();) {
      auto next = std::next(it);
      if (all || it->done.load()) finished.splice(finished.end(), clients_, it);
      it = next;
    }
  }
  for (auto& c : finished)
    if (c.thread.joinable()) c.thread.join();
}

void ApiServer::make_room_or_reject(int c) {
  // Every slot is taken: close the oldest client that has not sent its request yet (an idle or hostile one), so
  // holding slots open costs a client its slot instead of locking everyone else out. Running requests and streams
  // are never interrupted; with none idle, the new client is refused.
  bool made = false;
  if (active_.load() < 2 * o_.max_clients) {  // the closed ones leave within moments; bound threads meanwhile
    std::lock_guard lk(clients_mu_);
    Client* oldest = nullptr;
    for (auto& cl : clients_)
      if (cl.fd >= 0 && cl.awaiting_request.load() && (!oldest || cl.accepted < oldest->accepted)) oldest = &cl;
    if (oldest) {
      oldest->awaiting_request = false;
      oldest->preempted = true;
      shutdown(oldest->fd, SHUT_RDWR);
      idle_closed_++;
      made = true;
    }
  }
  if (!made) {
    rejected_++;
    reply(c, {{"ok", false}, {"error", fmt::format("too many clients ({} connected)", o_.max_clients)}});
    close(c);
    return;
  }
  start_client(c);
}

void ApiServer::start_client(int c) {
  set_send_timeout(c, o_.request_timeout_ms);
  active_++;
  std::lock_guard lk(clients_mu_);
  Client& slot = clients_.emplace_back();
  slot.fd = c;
  slot.accepted = std::chrono::steady_clock::now();
  slot.thread = std::thread([this, c, &slot] {
    serve(slot);
    {
      std::lock_guard lk2(clients_mu_);
      slot.fd = -1;
    }
    close(c);
    active_--;
    slot.done = true;
  });
}

void ApiServer::accept_loop() {
  while (!stop_.load()) {
    reap_clients(false);
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int c = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (active_.load() >= o_.max_clients) make_room_or_reject(c);
    else start_client(c);
  }
}

bool ApiServer::reply(int fd, const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.push_back('\n');
  if (write_all(fd, s.data(), s.size())) return true;
  if (errno == EAGAIN || errno == EWOULDBLOCK) slow_writes_++;
  return false;
}

void ApiServer::serve_chunked(int fd, const ChunkedHandler& h, const nlohmann::json& params) {
  // Snapshot work is the agent's most expensive: a few at a time, the others wait a little or are told to retry.
  if (!snapshot_slots_.try_acquire_for(std::chrono::milliseconds(o_.request_timeout_ms))) {
    snapshots_busy_++;
    reply(fd, {{"ok", false},
               {"error", fmt::format("busy: {} snapshots are being served; try again", o_.max_snapshots)}});
    return;
  }
  ReplyWriter w(fd);
  try {
    h(params, w);
    w.finish();
  } catch (const ApiError& e) {
    bad_++;
    if (!w.started()) reply(fd, {{"ok", false}, {"error", e.what()}});
  } catch (const std::exception& e) {
    if (!w.started()) reply(fd, {{"ok", false}, {"error", std::string("internal error: ") + e.what()}});
  }
  snapshot_slots_.release();
  if (w.failed() && (w.error() == EAGAIN || w.error() == EWOULDBLOCK || w.error() == ETIMEDOUT)) slow_writes_++;
  if (w.bytes() >= kTrimAfterBytes) malloc_trim(0);  // the snapshot's memory goes back to the system, not to a cache
}

void ApiServer::serve(Client& client) {
  const int fd = client.fd;
  auto line = api::read_line(fd, o_.max_request_bytes, int(o_.request_timeout_ms), "request");
  client.awaiting_request = false;
  if (!line) {
    if (client.preempted.load()) return;  // closed to make room (counted there)
    if (line.error().err == ETIMEDOUT) idle_closed_++;
    else if (line.error().err != ECONNRESET) bad_++;
    reply(fd, {{"ok", false}, {"error", line.error().str()}});
    return;
  }
  requests_++;
  auto req = parse_api_request(*line);
  if (!req) {
    bad_++;
    reply(fd, {{"ok", false}, {"error", req.error().str()}});
    return;
  }
  const std::string& method = req->method;
  const nlohmann::json& params = req->params;
  if (auto h = handlers_.find(method); h != handlers_.end()) {
    try {
      reply(fd, {{"ok", true}, {"result", h->second(params)}});
    } catch (const ApiError& e) {
      bad_++;
      reply(fd, {{"ok", false}, {"error", e.what()}});
    } catch (const std::exception& e) {
      reply(fd, {{"ok", false}, {"error", std::string("internal error: ") + e.what()}});
    }
    return;
  }
  if (auto c = chunked_.find(method); c != chunked_.end()) {
    serve_chunked(fd, c->second, params);
    return;
  }
  if (auto s = streams_.find(method); s != streams_.end()) {
    auto q = std::make_shared<StreamQueue>(o_.stream_queue);
    std::function<void()> unsubscribe;
    try {
      unsubscribe = s->second(params, q);
    } catch (const ApiError& e) {
      bad_++;
      reply(fd, {{"ok", false}, {"error", e.what()}});
      return;
    }
    streams_active_++;
    reply(fd, {{"ok", true}, {"result", "streaming"}});
    std::vector<std::string> lines;
    bool open = true;
    while (open && !stop_.load()) {
      lines.clear();
      open = q->pop_all(lines, std::chrono::milliseconds(200));
      std::string chunk;
      for (auto& l : lines) chunk += l;
      if (!chunk.empty() && !write_all(fd, chunk.data(), chunk.size())) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) slow_writes_++;
        break;
      }
      // A client whose queue filled is not keeping up: it has lost lines already and would hold its slot and
      // memory for nothing. Disconnect it (counted); it can reconnect.
      if (q->dropped() > 0) {
        slow_streams_++;
        break;
      }
      // Detect a client that went away while idle.
      pollfd p{fd, POLLIN | POLLRDHUP, 0};
      if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) break;
    }
    if (unsubscribe) unsubscribe();
    stream_dropped_ += q->dropped();
    streams_active_--;
    return;
  }
  bad_++;
  reply(fd, {{"ok", false}, {"error", fmt::format("unknown method '{}'", method)}});
}

void ApiServer::stop() {
  if (stop_.exchange(true)) return;
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard lk(clients_mu_);
    for (auto& c : clients_)
      if (c.fd >= 0) shutdown(c.fd, SHUT_RDWR);
  }
  reap_clients(true);
  if (listen_fd_) {
    listen_fd_.reset();
    std::error_code ec;
    std::filesystem::remove(o_.socket_path, ec);
  }
}

ApiCounters ApiServer::counters() const {
  return {requests_.load(),     bad_.load(),         rejected_.load(),    stream_dropped_.load(), streams_active_.load(),
          idle_closed_.load(),  slow_streams_.load(), slow_writes_.load(), snapshots_busy_.load()};
}

Result<UniqueFd> lock_agent_instance(const std::string& socket_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(socket_path).parent_path(), ec);
  std::string path = socket_path + ".lock";
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return errorf_errno(errno, "agent lock {} open", path);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e != EWOULDBLOCK) return errorf_errno(e, "agent lock {} flock", path);
    char buf[32] = {};
    ssize_t n = pread(fd.get(), buf, sizeof(buf) - 1, 0);
    std::string pid = n > 0 ? std::string(buf, size_t(n)) : "";
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    return errorf("another hostscope agent (pid {}) is running on {}: it holds {}", pid.empty() ? "unknown" : pid,
                  socket_path, path);
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), pid.data(), pid.size(), 0) != ssize_t(pid.size()))
    return errorf_errno(errno, "agent lock {} write pid", path);
  return fd;
}

}  // namespace hostscope::daemon
