// The agent daemon end to end: `hostscope agent` as a real process, its Unix-socket API (health, streams,
// topology), bad requests, and clean shutdown.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/daemon/api_server.h"
#include "support/privileged.h"

using namespace hostscope;
using namespace hostscope::testing;
using nlohmann::json;

namespace {

std::string bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }
std::string peer() { return std::getenv("HS_PEER") ? std::getenv("HS_PEER") : "hs_peer"; }

// Sends raw bytes to the API socket and returns the reply line.
std::string raw_request(const std::string& sock, const std::string& bytes) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strcpy(sa.sun_path, sock.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return "";
  }
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
  Daemon() {
    dir_ = std::filesystem::temp_directory_path() / ("hs-daemon-" + random_suffix());
    std::filesystem::create_directories(dir_);
    sock_ = (dir_ / "api.sock").string();
    std::ofstream(dir_ / "config.yaml") << "api:\n  socket: " << sock_ << "\n  max_request_bytes: 4096\n"
                                        << "networks:\n  test-net: [10.213.0.0/16]\n";
    child_ = std::make_unique<Child>(std::vector<std::string>{bin(), "agent", "--config", (dir_ / "config.yaml").string()});
    ready_ = eventually([&] { return daemon::daemon_running(sock_); }, std::chrono::seconds(20));
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

  auto h = daemon::api_call(d.sock(), "health");
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
    auto st = daemon::api_stream(d.sock(), "connections", {{"ports", {port}}}, [&](const std::string& l) {
      std::lock_guard lk(mu);
      lines.push_back(json::parse(l));
      return lines.size() < 2;
    });
    EXPECT_TRUE(st) << st.error().str();
  });
  ASSERT_TRUE(eventually([&] {
    auto hh = daemon::api_call(d.sock(), "health");
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
  auto h2 = daemon::api_call(d.sock(), "health");
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
    auto h = daemon::api_call(d.sock(), "health");
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

}  // namespace
