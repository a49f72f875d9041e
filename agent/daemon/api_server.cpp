#include "agent/daemon/api_server.h"

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <filesystem>

#include "agent/util/io.h"
#include "agent/util/logging.h"

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


// Reads one '\n'-terminated line of at most `limit` bytes within `timeout_ms`.
Result<std::string> read_line(int fd, size_t limit, int timeout_ms) {
  std::string buf;
  char tmp[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) return buf.substr(0, nl);
    if (buf.size() > limit) return errorf("request larger than {} bytes", limit);
    int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return errorf("timed out waiting for a request line");
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, left);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return errorf("timed out waiting for a request line");
    ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (!buf.empty() && n == 0) return buf;  // last line without newline
      return errorf("connection closed before a request");
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
    return errorf_errno(e, "connect to hostscope agent at {}", path);
  }
  return fd;
}

}  // namespace

ApiServer::ApiServer(Options o) : o_(std::move(o)) {}

ApiServer::~ApiServer() { stop(); }

void ApiServer::handle(const std::string& method, Handler h) { handlers_[method] = std::move(h); }
void ApiServer::stream(const std::string& method, StreamHandler h) { streams_[method] = std::move(h); }

Status ApiServer::start() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(o_.socket_path).parent_path(), ec);
  // A stale socket from a crashed agent would make bind fail; refuse to steal one a live agent answers on.
  if (fs::exists(o_.socket_path, ec)) {
    if (daemon_running(o_.socket_path)) return errorf("api socket {}: another hostscope agent is running", o_.socket_path);
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

void ApiServer::accept_loop() {
  while (!stop_.load()) {
    reap_clients(false);
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int c = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    if (active_.load() >= o_.max_clients) {
      rejected_++;
      reply(c, {{"ok", false}, {"error", "too many clients"}});
      close(c);
      continue;
    }
    active_++;
    std::lock_guard lk(clients_mu_);
    client_fds_.push_back(c);
    Client& slot = clients_.emplace_back();
    slot.thread = std::thread([this, c, &slot] {
      serve(c);
      {
        std::lock_guard lk2(clients_mu_);
        std::erase(client_fds_, c);
      }
      close(c);
      active_--;
      slot.done = true;
    });
  }
}

void ApiServer::reply(int fd, const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  s.push_back('\n');
  write_all(fd, s.data(), s.size());
}

void ApiServer::serve(int fd) {
  auto line = read_line(fd, o_.max_request_bytes, 5000);
  if (!line) {
    bad_++;
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
      if (!chunk.empty() && !write_all(fd, chunk.data(), chunk.size())) break;
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
    for (int c : client_fds_) shutdown(c, SHUT_RDWR);
  }
  reap_clients(true);
  if (listen_fd_) {
    listen_fd_.reset();
    std::error_code ec;
    std::filesystem::remove(o_.socket_path, ec);
  }
}

ApiCounters ApiServer::counters() const {
  return {requests_.load(), bad_.load(), rejected_.load(), stream_dropped_.load(), streams_active_.load()};
}

Result<nlohmann::json> api_call(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                                int timeout_ms) {
  auto fd = connect_unix(socket_path);
  if (!fd) return fd.error();
  UniqueFd guard(*fd);
  std::string req = nlohmann::json{{"method", method}, {"params", params}}.dump() + "\n";
  if (!write_all(*fd, req.data(), req.size())) return errorf_errno(errno, "api request {} write", method);
  auto line = read_line(*fd, 256u << 20, timeout_ms);
  if (!line) return errorf("api {}: {}", method, line.error().str());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(*line);
  } catch (const nlohmann::json::exception& e) {
    return errorf("api {}: reply is not JSON: {}", method, e.what());
  }
  if (!j.value("ok", false)) return errorf("api {}: {}", method, j.value("error", std::string("unknown error")));
  return j["result"];
}

Status api_stream(const std::string& socket_path, const std::string& method, const nlohmann::json& params,
                  const std::function<bool(const std::string&)>& on_line, const std::atomic<bool>* stop) {
  auto fd = connect_unix(socket_path);
  if (!fd) return fd.error();
  UniqueFd guard(*fd);
  std::string req = nlohmann::json{{"method", method}, {"params", params}}.dump() + "\n";
  if (!write_all(*fd, req.data(), req.size())) return errorf_errno(errno, "api stream {} write", method);
  std::string buf;
  char tmp[65536];
  bool first = true;
  for (;;) {
    if (stop && stop->load()) return {};
    pollfd p{*fd, POLLIN, 0};
    if (poll(&p, 1, 200) == 0) continue;
    ssize_t n = recv(*fd, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return {};
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
  auto r = api_call(socket_path, "health", nlohmann::json::object(), 1000);
  return r.has_value();
}

}  // namespace hostscope::daemon
