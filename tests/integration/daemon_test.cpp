// The agent daemon end to end: `hostscope agent` as a real process, its Unix-socket API (health, streams,
// topology), bad requests, and clean shutdown.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/api_client.h"
#include "support/privileged.h"

using namespace hostscope;
using namespace hostscope::testing;
using nlohmann::json;

namespace {

std::string bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }
std::string peer() { return std::getenv("HS_PEER") ? std::getenv("HS_PEER") : "hs_peer"; }

// A connected client socket to the API, or -1.
int connect_api(const std::string& sock) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, sock.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends raw bytes to the API socket and returns the reply line.
std::string raw_request(const std::string& sock, const std::string& bytes) {
  int fd = connect_api(sock);
  if (fd < 0) return "";
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, size_t(n));
  close(fd);
  return out;
}

class Daemon {
 public:
  // `api_extra`: more lines of the api section ("  key: value\n").
  explicit Daemon(const std::string& api_extra = "") {
    dir_ = std::filesystem::temp_directory_path() / ("hs-daemon-" + random_suffix());
    std::filesystem::create_directories(dir_);
    sock_ = (dir_ / "api.sock").string();
    std::ofstream(dir_ / "config.yaml") << "api:\n  socket: " << sock_ << "\n  max_request_bytes: 4096\n"
                                        << api_extra << "networks:\n  test-net: [10.213.0.0/16]\n";
    child_ = std::make_unique<Child>(std::vector<std::string>{bin(), "agent", "--config", (dir_ / "config.yaml").string()});
    ready_ = eventually([&] { return api::daemon_running(sock_); }, std::chrono::seconds(20));
  }
  ~Daemon() {
    stop();
    std::filesystem::remove_all(dir_);
  }
  int stop() {
    if (!child_) return 0;
    kill(child_->pid(), SIGTERM);
    int rc = child_->wait();
    child_.reset();
    return rc;
  }
  bool ready() const { return ready_; }
  const std::string& sock() const { return sock_; }
  std::string config() const { return (dir_ / "config.yaml").string(); }
  pid_t pid() const { return child_ ? child_->pid() : -1; }

 private:
  std::filesystem::path dir_;
  std::string sock_;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

TEST(Daemon, ServesHealthStreamsConnectionsAndRejectsBadRequests) {
  HS_REQUIRE_ROOT();
  Daemon d;
  ASSERT_TRUE(d.ready()) << "agent did not answer on its socket";

  auto h = api::call(d.sock(), "health");
  ASSERT_TRUE(h) << h.error().str();
  EXPECT_EQ((*h)["attach_mode"], "tp_btf");
  EXPECT_EQ((*h)["kernel"]["lost_ringbuf"], 0);

  // Socket permissions: 0660.
  struct stat st{};
  ASSERT_EQ(stat(d.sock().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  // A server on a known port; stream only its connections.
  Child server({peer(), "server", "127.0.0.1", "0", "300", "1"});
  auto ready = server.line();
  ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0);
  int port = std::stoi(ready->substr(6));

  std::vector<json> lines;
  std::mutex mu;
  std::thread streamer([&] {
    auto st = api::stream(d.sock(), "connections", {{"ports", {port}}}, [&](const std::string& l) {
      std::lock_guard lk(mu);
      lines.push_back(json::parse(l));
      return lines.size() < 2;
    });
    EXPECT_TRUE(st) << st.error().str();
  });
  ASSERT_TRUE(eventually([&] {
    auto hh = api::call(d.sock(), "health");
    return hh && (*hh)["subscribers"] == 1;
  }));
  Child client({peer(), "client", "127.0.0.1", std::to_string(port), "300"});
  auto local = client.line();
  ASSERT_TRUE(local && local->rfind("LOCAL ", 0) == 0);
  int cport = std::stoi(local->substr(6));
  EXPECT_EQ(client.wait(), 0);
  streamer.join();
  ASSERT_EQ(lines.size(), 2u);
  int active = 0, passive = 0;
  for (auto& j : lines) {
    EXPECT_EQ(j["event"], "close");
    EXPECT_EQ(j["bytes_sent"], 300);
    EXPECT_EQ(j["bytes_received"], 300);
    EXPECT_EQ(j["outcome"], "closed");
    if (j["role"] == "active") {
      active++;
      EXPECT_EQ(j["pid"], client.pid());
      EXPECT_EQ(j["comm"], "hs-client");
      EXPECT_EQ(j["sport"], cport);
      EXPECT_EQ(j["dport"], port);
    } else {
      passive++;
      EXPECT_EQ(j["pid"], server.pid());
      EXPECT_EQ(j["comm"], "hs-server");
      EXPECT_EQ(j["sport"], port);
    }
    EXPECT_TRUE(j.contains("service"));
  }
  EXPECT_EQ(active, 1);
  EXPECT_EQ(passive, 1);

  // Bad requests: each gets an error reply; the agent keeps serving.
  for (const std::string& bad : {std::string("not json\n"), std::string("[1,2]\n"), std::string("{\"method\": 5}\n"),
                                 std::string("{\"method\":\"nope\"}\n"), std::string(5000, 'x') + "\n",
                                 std::string("{\"method\":\"connections\",\"params\":{\"ports\":\"x\"}}\n"),
                                 std::string("{\"method\":\"health\",\"params\":[]}\n")}) {
    auto reply = raw_request(d.sock(), bad);
    auto j = json::parse(reply, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "reply to '" << bad.substr(0, 40) << "' is not JSON: " << reply;
    EXPECT_EQ(j["ok"], false) << bad.substr(0, 40);
    EXPECT_TRUE(j["error"].is_string());
  }
  auto h2 = api::call(d.sock(), "health");
  ASSERT_TRUE(h2) << h2.error().str();
  EXPECT_GE((*h2)["api"]["bad_requests"].get<int>(), 7);

  EXPECT_EQ(d.stop(), 0);
  EXPECT_FALSE(std::filesystem::exists(d.sock()));
}

// `hostscope connections` streams from a running agent instead of loading its own BPF programs.
TEST(Daemon, ConnectionsCommandUsesTheRunningAgent) {
  HS_REQUIRE_ROOT();
  Daemon d;
  ASSERT_TRUE(d.ready());
  Child server({peer(), "server", "127.0.0.1", "0", "50", "1"});
  auto ready = server.line();
  ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0);
  int port = std::stoi(ready->substr(6));
  Child cli({bin(), "connections", "-o", "json", "--socket", d.sock(), "--port", std::to_string(port), "--count", "2"});
  ASSERT_TRUE(eventually([&] {
    auto h = api::call(d.sock(), "health");
    return h && (*h)["subscribers"] == 1;
  }));
  Child client({peer(), "client", "127.0.0.1", std::to_string(port), "50"});
  EXPECT_EQ(client.wait(), 0);
  std::vector<json> lines;
  while (auto l = cli.line()) lines.push_back(json::parse(*l));
  EXPECT_EQ(cli.wait(), 0);
  ASSERT_EQ(lines.size(), 2u);
  for (auto& j : lines) {
    EXPECT_EQ(j["bytes_sent"], 50);
    EXPECT_EQ(j["bytes_received"], 50);
    EXPECT_TRUE(j["pid"] == client.pid() || j["pid"] == server.pid()) << j.dump();
  }
}

TEST(Daemon, InvalidConfigIsRejectedWithLineAndColumn) {
  HS_REQUIRE_ROOT();
  auto dir = std::filesystem::temp_directory_path() / ("hs-badcfg-" + random_suffix());
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "config.yaml") << "kernel:\n  attach: sometimes\n";
  auto r = sh(bin() + " agent --config " + (dir / "config.yaml").string());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("config.yaml:2:11"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kernel.attach must be one of auto, btf, classic"), std::string::npos) << r.out;
}

// ---- The API under hostile load (issue 15) ----

// An agent that closes on us must show up as EPIPE, not kill the test (the CLI ignores SIGPIPE the same way).
const bool kSigpipeIgnored = [] { return signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

long status_kb(pid_t pid, const std::string& key) {  // VmRSS, VmHWM from /proc/<pid>/status
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string l;
  while (std::getline(f, l))
    if (l.rfind(key + ":", 0) == 0) return std::stol(l.substr(key.size() + 1));
  return -1;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Milliseconds until a well-behaved client's health request is answered (retrying), or -1 after 10 s.
double health_latency_ms(const std::string& sock) {
  auto t0 = std::chrono::steady_clock::now();
  while (ms_since(t0) < 10000) {
    if (api::call(sock, "health", json::object(), 5000)) return ms_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

json api_counters(const std::string& sock) {
  auto h = api::call(sock, "health");
  return h ? (*h)["api"] : json::object();
}

// A `connections` stream on `port` that the agent accepted (its first line read), or -1. Retried while a
// previous client (the readiness check) still holds a slot.
int open_stream(const std::string& sock, const std::string& port) {
  int fd = -1;
  bool ok = eventually([&] {
    if (fd >= 0) close(fd);
    fd = connect_api(sock);
    std::string req = R"({"method":"connections","params":{"ports":[)" + port + "]}}\n";
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);  // {"ok":true,"result":"streaming"}\n is 33 bytes
    return n > 0 && std::string(buf, size_t(n)).find("streaming") != std::string::npos;
  });
  if (!ok && fd >= 0) close(fd);
  return ok ? fd : -1;
}

constexpr double kWellBehavedBoundMs = 2000 + 1000;  // the default request timeout + 1 s

TEST(DaemonAbuse, IdleClientsDoNotLockOutTheApi) {
  HS_REQUIRE_ROOT();
  Daemon d;  // max_clients 16, request_timeout_ms 2000 (defaults)
  ASSERT_TRUE(d.ready());
  std::vector<int> idle;
  for (int i = 0; i < 24; i++) {
    int fd = connect_api(d.sock());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);  // connects and never sends
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  auto first = api::call(d.sock(), "health");
  double first_ms = ms_since(t0);
  double ms = health_latency_ms(d.sock());
  printf("[ figures ] 24 idle clients held: first health %s in %.1f ms; answered after %.1f ms (bound %.0f ms)\n",
         first ? "answered" : first.error().str().c_str(), first_ms, ms, kWellBehavedBoundMs);
  EXPECT_TRUE(first) << "a well-behaved client was refused while idle clients held the slots: " << first.error().str();
  EXPECT_GE(ms, 0);
  EXPECT_LT(ms, kWellBehavedBoundMs);
  // Every idle client is closed (to make room, or at its request deadline).
  for (int fd : idle) {
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(poll(&p, 1, 5000), 1) << "an idle client was never closed";
    close(fd);
  }
  auto c = api_counters(d.sock());
  printf("[ figures ] api counters: %s\n", c.dump().c_str());
  EXPECT_GE(c.value("idle_clients_closed", 0), 24) << c.dump();
  EXPECT_EQ(c.value("rejected_clients", -1), 0) << c.dump();
}

TEST(DaemonAbuse, SlowStreamReadersAreDroppedAndCounted) {
  HS_REQUIRE_ROOT();
  Daemon d("  stream_queue: 16\n");
  ASSERT_TRUE(d.ready());
  Child server({peer(), "server", "127.0.0.1", "0", "10", "1000000"});
  auto ready = server.line();
  ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0);
  std::string port = ready->substr(6);
  std::vector<int> slow;
  for (int i = 0; i < 16; i++) {  // every slot: streams that never read (after their first line)
    int fd = open_stream(d.sock(), port);
    ASSERT_GE(fd, 0);
    slow.push_back(fd);
  }
  auto dropped = [&] {
    auto c = api_counters(d.sock());
    return c.value("slow_streams_dropped", 0) + c.value("slow_writes_dropped", 0);
  };
  // Traffic on the port until the slow readers' queues fill.
  for (int round = 0; round < 40 && dropped() < 16; round++) {
    Child client({peer(), "client", "127.0.0.1", port, "10", "concurrent=100"});
    client.wait();
  }
  ASSERT_TRUE(eventually([&] { return dropped() >= 16; }, std::chrono::seconds(10)));
  double ms = health_latency_ms(d.sock());
  auto c = api_counters(d.sock());
  printf("[ figures ] 16 slow stream readers dropped; health answered in %.1f ms; api counters: %s\n", ms, c.dump().c_str());
  EXPECT_GE(ms, 0);
  EXPECT_LT(ms, kWellBehavedBoundMs);
  EXPECT_GT(c.value("stream_lines_dropped", 0), 0);
  for (int fd : slow) {  // each sees the end of its stream once it drains what was sent
    char buf[65536];
    ssize_t n;
    pollfd p{fd, POLLIN, 0};
    bool eof = false;
    while (poll(&p, 1, 2000) == 1 && (n = recv(fd, buf, sizeof(buf), 0)) >= 0)
      if (n == 0) {
        eof = true;
        break;
      }
    EXPECT_TRUE(eof);
    close(fd);
  }
}

TEST(DaemonAbuse, OversizedAndDeeplyNestedRequestsAreRefusedExactly) {
  HS_REQUIRE_ROOT();
  Daemon d;  // max_request_bytes: 4096
  ASSERT_TRUE(d.ready());
  std::string base = R"({"method":"health"})";
  auto padded = [&](size_t n) { return base + std::string(n - base.size(), ' ') + "\n"; };
  auto at_limit = json::parse(raw_request(d.sock(), padded(4096)), nullptr, false);
  EXPECT_EQ(at_limit.value("ok", false), true) << at_limit.dump();
  for (size_t n : {size_t(4097), size_t(4096 + 4095), size_t(100000)}) {
    auto over = json::parse(raw_request(d.sock(), padded(n)), nullptr, false);
    EXPECT_EQ(over.value("ok", true), false) << n << " bytes: " << over.dump();
    EXPECT_NE(over.value("error", "").find("larger than 4096 bytes"), std::string::npos) << over.dump();
  }
  std::string nested = R"({"method":"health","params":{"a":)" + std::string(1500, '[') + std::string(1500, ']') + "}}\n";
  auto deep = json::parse(raw_request(d.sock(), nested), nullptr, false);
  EXPECT_EQ(deep.value("ok", true), false) << deep.dump();
  EXPECT_NE(deep.value("error", "").find("nested deeper than"), std::string::npos) << deep.dump();
  EXPECT_TRUE(api::call(d.sock(), "health"));
}

// Makes `n` distinct loopback edges cheaply: listeners on n distinct ports (from 10000 up, below the ephemeral
// range so no port repeats; ports in use are skipped), one connection to each. Returns the edges made.
int populate_edges(int n) {
  rlimit rl{8192, 8192};
  setrlimit(RLIMIT_NOFILE, &rl);
  int made = 0;
  uint16_t port = 10000;
  while (made < n && port < 32000) {
    std::vector<int> fds;
    for (int i = 0; i < 1000 && made < n && port < 32000; port++) {
      int l = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(l, 4) != 0) {
        close(l);
        continue;
      }
      int c = socket(AF_INET, SOCK_STREAM, 0);
      int s = connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 ? accept(l, nullptr, nullptr) : -1;
      fds.insert(fds.end(), {c, l});
      if (s < 0) continue;
      fds.push_back(s);
      made++;
      i++;
    }
    for (int fd : fds) close(fd);
  }
  return made;
}

TEST(DaemonAbuse, ConcurrentSnapshotsStayBoundedInMemory) {
  HS_REQUIRE_ROOT();
  const int edges = std::getenv("HS_SNAPSHOT_EDGES") ? std::atoi(std::getenv("HS_SNAPSHOT_EDGES")) : 20000;
  Daemon d;
  ASSERT_TRUE(d.ready());
  ASSERT_GE(populate_edges(edges), edges * 95 / 100) << "could not make the loopback connections";
  size_t have = 0;
  eventually(
      [&] {
        auto t = api::call(d.sock(), "topology", json::object(), 30000);
        have = t ? (*t)["edges"].size() : 0;
        return have >= size_t(edges) * 9 / 10;
      },
      std::chrono::seconds(60));
  ASSERT_GE(have, size_t(edges) * 9 / 10) << "the agent did not see the edges";
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::ofstream("/proc/" + std::to_string(d.pid()) + "/clear_refs") << "5";  // resets VmHWM
  long before = status_kb(d.pid(), "VmRSS");

  std::atomic<bool> storm{true};
  std::atomic<long> peak{before};
  std::thread sampler([&] {
    while (storm.load()) {
      peak = std::max(peak.load(), status_kb(d.pid(), "VmRSS"));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::string req = R"({"method":"topology"})" "\n";
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::atomic<size_t> reply_bytes{0};
  std::vector<double> lat(16);
  std::vector<std::thread> clients;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 16; i++)
    clients.emplace_back([&, i] {
      auto ts = std::chrono::steady_clock::now();
      std::string r = raw_request(d.sock(), req);
      lat[size_t(i)] = ms_since(ts);
      if (r.rfind(R"({"ok":true,"result":{"counters")", 0) == 0 && r.back() == '\n') {
        ok++;
        reply_bytes = r.size();
      } else if (r.find("busy") != std::string::npos) {
        busy++;
      } else {
        other++;
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  double health_ms = health_latency_ms(d.sock());
  for (auto& t : clients) t.join();
  double storm_ms = ms_since(t0);
  storm = false;
  sampler.join();
  long hwm = status_kb(d.pid(), "VmHWM");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  long after = status_kb(d.pid(), "VmRSS");
  std::sort(lat.begin(), lat.end());
  printf("[ figures ] %zu edges, reply %.1f MB; 16 concurrent snapshots: %d ok, %d busy, %d other in %.0f ms "
         "(latency min %.0f / median %.0f / max %.0f ms); health during them: %.1f ms\n",
         have, double(reply_bytes.load()) / 1e6, ok.load(), busy.load(), other.load(), storm_ms, lat.front(), lat[8],
         lat.back(), health_ms);
  printf("[ figures ] agent RSS before %.1f MiB, peak %.1f MiB (VmHWM %.1f MiB), after %.1f MiB\n", before / 1024.0,
         peak.load() / 1024.0, hwm / 1024.0, after / 1024.0);
  EXPECT_EQ(other.load(), 0);
  EXPECT_GE(ok.load(), 2);
  EXPECT_GE(health_ms, 0);
  EXPECT_LT(health_ms, kWellBehavedBoundMs);
  EXPECT_LE(std::max(peak.load(), hwm), 128L * 1024) << "peak RSS over 128 MiB";

  // Snapshot readers that never read cannot hold the snapshot slots: their writes stall and they are dropped.
  std::vector<int> stuck;
  for (int i = 0; i < 2; i++) {
    int fd = connect_api(d.sock());
    ASSERT_GE(fd, 0);
    send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    stuck.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto ts = std::chrono::steady_clock::now();
  bool served = eventually([&] { return bool(api::call(d.sock(), "topology", json::object(), 30000)); },
                           std::chrono::seconds(20));
  double stuck_ms = ms_since(ts);
  auto c = api_counters(d.sock());
  printf("[ figures ] with 2 snapshot clients that never read: a snapshot served after %.0f ms; api counters: %s\n",
         stuck_ms, c.dump().c_str());
  EXPECT_TRUE(served);
  EXPECT_GE(c.value("slow_writes_dropped", 0), 2) << c.dump();
  for (int fd : stuck) close(fd);
}

// The CLI never mistakes an agent that refuses it for no agent.
TEST(DaemonAbuse, CliSaysTheAgentRefusedUs) {
  HS_REQUIRE_ROOT();
  Daemon d("  max_clients: 1\n");
  ASSERT_TRUE(d.ready());
  int stream = open_stream(d.sock(), "1");  // a busy (streaming) client holds the only slot
  ASSERT_GE(stream, 0);
  auto r = sh("timeout 30 " + bin() + " topology --policy-state '' --socket " + d.sock());
  close(stream);
  printf("%s", r.out.c_str());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("the agent is running but refused us"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("too many clients"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("no agent running"), std::string::npos) << r.out;
}

TEST(DaemonAbuse, SocketPermissionDeniedIsNotNoAgent) {
  HS_REQUIRE_ROOT();
  HS_REQUIRE_THAT(sh("command -v setpriv").status == 0 ? "" : "setpriv not installed");
  Daemon d;
  ASSERT_TRUE(d.ready());
  auto r = sh("timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups " + bin() +
              " topology --policy-state '' --socket " + d.sock());
  printf("%s", r.out.c_str());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("permission denied on the agent's socket " + d.sock() + "; join group hostscope"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("load failed"), std::string::npos) << r.out;
}

TEST(DaemonAbuse, SecondAgentExitsNamingTheFirst) {
  HS_REQUIRE_ROOT();
  Daemon d;
  ASSERT_TRUE(d.ready());
  std::vector<int> idle;  // the lockout that once made a second agent think no agent ran
  for (int i = 0; i < 20; i++) idle.push_back(connect_api(d.sock()));
  uint64_t inode = inode_of(d.sock());
  auto r = sh("timeout 30 " + bin() + " agent --config " + d.config());
  for (int fd : idle) close(fd);
  printf("%s", r.out.c_str());
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("another hostscope agent (pid " + std::to_string(d.pid()) + ")"), std::string::npos) << r.out;
  EXPECT_EQ(inode_of(d.sock()), inode) << "the second agent replaced the first's socket";
  auto h = api::call(d.sock(), "health");
  EXPECT_TRUE(h) << h.error().str();
}

// A `connections` stream the agent ends (stopped, or dropped as too slow) is an error, not a quiet exit 0.
TEST(DaemonAbuse, ConnectionsSaysTheAgentEndedTheStream) {
  HS_REQUIRE_ROOT();
  Daemon d;
  ASSERT_TRUE(d.ready());
  CmdResult r;
  std::thread cli([&] { r = sh("timeout 20 " + bin() + " connections --port 1 --socket " + d.sock()); });
  ASSERT_TRUE(eventually([&] {
    auto h = api::call(d.sock(), "health");
    return h && (*h)["api"]["streams_active"] == 1;
  }));
  EXPECT_EQ(d.stop(), 0);
  cli.join();
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("the agent ended the stream"), std::string::npos) << r.out;
}

TEST(DaemonAbuse, TopologyWatchWaitsForAnAgentThatWentAway) {
  HS_REQUIRE_ROOT();
  Daemon d;
  ASSERT_TRUE(d.ready());
  CmdResult r;
  std::thread watch([&] {
    r = sh("timeout 5 " + bin() + " topology --watch --interval 0.3 --policy-state '' --socket " + d.sock());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(d.stop(), 0);
  watch.join();
  EXPECT_EQ(r.status, 124) << "topology --watch exited when the agent went away:\n" << r.out;
  EXPECT_NE(r.out.find("the agent went away"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("no agent running"), std::string::npos) << r.out;
}

}  // namespace
