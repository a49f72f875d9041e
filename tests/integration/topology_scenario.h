#pragma once
// A simulated node for the live-topology tests (topology_cli_test, top_tmux_test): a network namespace the test
// owns plays the node's host namespace, `hostscope agent` runs in it, and the scenario's services are copies of
// hs_peer under their own names, named by the agent config's service_rules.
//
// Why a namespace and not the real host: the agent treats its own network namespace as the host (its local
// addresses, and the conntrack table it asks for DNAT answers). A kube-proxy-like DNAT rule has to be in that
// namespace's nat table, and tests must never touch the real host's tables; in a namespace the test owns, the
// rule, the veth pair and every route disappear with it. The BPF hooks are global, so the agent sees every
// socket of the machine either way.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/api_client.h"
#include "support/privileged.h"

namespace hostscope::testing {

inline std::string hostscope_bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }
inline std::string peer_bin() { return std::getenv("HS_PEER") ? std::getenv("HS_PEER") : "hs_peer"; }


// argv run inside a network namespace. nsenter only switches the network namespace (ip netns exec also
// remounts /sys, which would hide the cgroup and BPF file systems from the agent) and execs in place, so the
// child's pid is the program's pid.
inline std::vector<std::string> in_netns(const Netns& ns, std::vector<std::string> argv) {
  std::vector<std::string> out{"nsenter", "--net=/run/netns/" + ns.name()};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// One TCP connection over loopback inside this process. The agent's pipeline applies conntrack answers and
// expires holds on its periodic tick, which runs when events arrive; this gives it events while a test waits.
inline void nudge_agent() {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (l >= 0 && bind(l, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(l, 1) == 0 &&
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c >= 0 && connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      int s = accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
      if (s >= 0) close(s);
    }
    if (c >= 0) close(c);
  }
  if (l >= 0) close(l);
}

// The simulated node: its namespace, a temp dir with the service binaries and the config, and the agent.
class TopologyNode {
 public:
  // `services`: names of hs_peer copies to create; each gets a service rule matching its exact path.
  TopologyNode(const std::vector<std::string>& services, const std::string& extra_config = "") {
    dir_ = std::filesystem::temp_directory_path() / ("hs-topo-" + random_suffix());
    std::filesystem::create_directories(dir_ / "bin");
    sock_ = (dir_ / "api.sock").string();
    node_ = std::make_unique<Netns>("node");
    if (!node_->ok()) {
      error_ = "ip netns add";
      return;
    }
    std::ofstream cfg(dir_ / "config.yaml");
    cfg << "api:\n  socket: " << sock_ << "\n" << extra_config << "service_rules:\n";
    for (const auto& s : services) {
      std::error_code ec;
      std::filesystem::copy_file(peer_bin(), exe(s), ec);
      if (ec) {
        error_ = "copy " + peer_bin() + " to " + exe(s) + ": " + ec.message();
        return;
      }
      cfg << "  - name: " << s << "\n    match:\n      exe: \"" << exe(s) << "\"\n";
    }
    cfg.close();
  }
  ~TopologyNode() {
    stop_agent();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TopologyNode(const TopologyNode&) = delete;
  TopologyNode& operator=(const TopologyNode&) = delete;

  // Empty when the node was set up; else what failed.
  const std::string& error() const { return error_; }
  const Netns& netns() const { return *node_; }
  const std::string& sock() const { return sock_; }
  std::filesystem::path dir() const { return dir_; }
  std::string exe(const std::string& service) const { return (dir_ / "bin" / service).string(); }
  std::vector<std::string> run(const std::string& service, std::vector<std::string> args) const {
    args.insert(args.begin(), exe(service));
    return in_netns(*node_, args);
  }

  // Starts the agent in the node's namespace and waits until its API answers.
  bool start_agent() {
    agent_ = std::make_unique<Child>(
        in_netns(*node_, {hostscope_bin(), "agent", "--config", (dir_ / "config.yaml").string()}));
    return eventually([&] { return api::daemon_running(sock_); }, std::chrono::seconds(30));
  }
  int stop_agent() {
    if (!agent_) return 0;
    kill(agent_->pid(), SIGTERM);
    int rc = agent_->wait();
    agent_.reset();
    return rc;
  }

 private:
  std::filesystem::path dir_;
  std::string sock_;
  std::unique_ptr<Netns> node_;
  std::unique_ptr<Child> agent_;
  std::string error_;
};

// Reads the port from hs_peer's "READY <port>" line; 0 when the server did not start.
inline int ready_port(Child& server) {
  auto l = server.line();
  if (!l || l->rfind("READY ", 0) != 0) return 0;
  return std::stoi(l->substr(6));
}

}  // namespace hostscope::testing
