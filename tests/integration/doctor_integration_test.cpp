// `hostscope doctor` on this machine: the kernel checks pass here (machine-facts.md), exit codes follow the
// verdicts, a bad configuration is reported with its position, and a running agent is reported healthy.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/api_client.h"
#include "support/privileged.h"

namespace hostscope {
namespace {

using namespace hostscope::testing;
namespace fs = std::filesystem;

std::string bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }

struct Doctor {
  int status = -1;
  nlohmann::json json;
  std::map<std::string, std::string> status_of;  // check name -> ok|warn|fail
};

Doctor doctor(const std::string& args) {
  Doctor d;
  auto r = sh(bin() + " doctor -o json " + args + " 2>/dev/null");
  d.status = r.status;
  d.json = nlohmann::json::parse(r.out, nullptr, false);
  EXPECT_FALSE(d.json.is_discarded()) << r.out;
  if (d.json.is_discarded()) return d;
  for (const auto& c : d.json["checks"]) d.status_of[c["name"]] = c["status"];
  return d;
}

class DoctorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    dir_ = fs::temp_directory_path() / ("hs-doctor-" + random_suffix());
    fs::create_directories(dir_);
    sock_ = (dir_ / "api.sock").string();
    config_ = (dir_ / "config.yaml").string();
    std::ofstream(config_) << "api:\n  socket: " << sock_ << "\n";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  fs::path dir_;
  std::string sock_, config_;
};

TEST_F(DoctorTest, KernelChecksPassHereAndNoAgentIsDegraded) {
  auto d = doctor("-c " + config_);
  EXPECT_EQ(d.status_of["btf"], "ok");
  EXPECT_EQ(d.status_of["bpf"], "ok");
  EXPECT_EQ(d.status_of["tracefs"], "ok");
  EXPECT_EQ(d.status_of["hook sock/inet_sock_set_state"], "ok");  // tp_btf works here
  EXPECT_EQ(d.status_of["cgroup v2"], "ok");
  EXPECT_EQ(d.status_of["config"], "ok");
  EXPECT_EQ(d.status_of["agent"], "warn") << "nothing listens on " << sock_;
  EXPECT_EQ(d.status, 1);
  EXPECT_EQ(d.json["exit_code"], 1);
  auto text = sh(bin() + " doctor -c " + config_ + " 2>/dev/null");
  EXPECT_EQ(text.status, 1);
  EXPECT_NE(text.out.find("OK    btf"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("WARN  agent"), std::string::npos) << text.out;
}

TEST_F(DoctorTest, BadConfigFailsWithItsPosition) {
  std::ofstream(config_) << "kernel:\n  atach: btf\n";
  auto d = doctor("-c " + config_);
  EXPECT_EQ(d.status_of["config"], "fail");
  EXPECT_EQ(d.status, 1);
  std::string msg;
  for (const auto& c : d.json["checks"])
    if (c["name"] == "config") msg = c["message"];
  EXPECT_NE(msg.find(config_ + ":2:3"), std::string::npos) << msg;
}

TEST_F(DoctorTest, RunningAgentIsHealthyAndExitCodeFollowsVerdicts) {
  std::ofstream(config_) << "api:\n  socket: " << sock_ << "\nkernel:\n  edge_table_size: 1024\n";
  Child agent({bin(), "agent", "--config", config_});
  ASSERT_TRUE(eventually([&] { return api::daemon_running(sock_); }, std::chrono::seconds(30)));
  // A refused connect makes an entry in the kernel edge table (which counts what it creates).
  EXPECT_NE(sh("bash -c 'exec 3<>/dev/tcp/127.0.0.1/1' 2>/dev/null").status, 0);
  auto edge_table_message = [](const Doctor& r) {
    for (const auto& c : r.json["checks"])
      if (c["name"] == "agent edge table") return c["message"].get<std::string>();
    return std::string();
  };
  Doctor d;
  EXPECT_TRUE(eventually([&] {
    d = doctor("-c " + config_);
    auto msg = edge_table_message(d);
    return msg.find("of 1024 entries") != std::string::npos && msg.find(": 0 of") == std::string::npos;
  }, std::chrono::seconds(10))) << edge_table_message(d);
  EXPECT_EQ(d.status_of["agent edge table"], "ok") << d.json.dump(2);
  EXPECT_EQ(d.status_of["agent"], "ok") << d.json.dump(2);
  EXPECT_EQ(d.status_of["agent events"], "ok") << d.json.dump(2);
  // The agent reports each hook it attached, and it is what doctor predicted for this kernel.
  EXPECT_EQ(d.status_of["agent hooks"], "ok") << d.json.dump(2);
  bool all_ok = true;
  for (const auto& [name, st] : d.status_of) all_ok = all_ok && st == "ok";
  EXPECT_EQ(d.status, all_ok ? 0 : 1) << d.json.dump(2);
  EXPECT_EQ(d.json["exit_code"], d.status);
  // --socket overrides the configuration's socket.
  auto other = doctor("-c " + config_ + " --socket " + (dir_ / "nothing.sock").string());
  EXPECT_EQ(other.status_of["agent"], "warn");
  kill(agent.pid(), SIGTERM);
  EXPECT_EQ(agent.wait(), 0);
}

}  // namespace
}  // namespace hostscope
