// The node's service catalogue for `hostscope policy ...`: which cgroups, listening ports and Go modules each
// service has right now (a /proc scan through the identity layer), plus the named networks of the agent config.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "agent/cli/commands.h"
#include "agent/cli/policy_context.h"
#include "agent/daemon/agent.h"
#include "agent/identity/resolver.h"
#include "agent/util/logging.h"
#include "policy/cli.h"

namespace hostscope::cli {

namespace {

// inode -> port of listening TCP sockets (/proc/net/tcp and tcp6, state 0A).
std::map<uint64_t, uint16_t> listening_inodes() {
  std::map<uint64_t, uint16_t> out;
  for (const char* f : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(f);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream ss(line);
      std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
      if (!(ss >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode)) continue;
      if (st != "0A") continue;
      auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      out[std::stoull(inode)] = uint16_t(std::stoul(local.substr(colon + 1), nullptr, 16));
    }
  }
  return out;
}

std::set<uint16_t> ports_of(uint32_t pid, const std::map<uint64_t, uint16_t>& listen) {
  std::set<uint16_t> ports;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (target.rfind("socket:[", 0) != 0) continue;
    uint64_t ino = std::stoull(target.substr(8));
    if (auto it = listen.find(ino); it != listen.end()) ports.insert(it->second);
  }
  return ports;
}

}  // namespace

policy::Context node_context(std::string* error) {
  policy::Context ctx;
  auto cfg = daemon::load_agent_config(daemon::kDefaultConfigPath, true);
  if (cfg) ctx.networks = cfg->networks;
  // policy.context: services the node cannot see, merged with what it sees (policy::merge_context).
  auto with_context_file = [&](policy::Context seen) {
    std::string why = cfg ? "" : cfg.error().str();
    if (cfg && !cfg->policy.context_file.empty()) {
      if (auto file = policy::load_context_file(cfg->policy.context_file)) seen = policy::merge_context(std::move(seen), *file);
      else why = file.error();
    }
    if (!why.empty() && error) *error = why;
    else if (!why.empty()) spdlog::warn("policy catalogue: {}", why);
    return seen;
  };
  auto opts = identity::identity_options(cfg ? cfg->identity.kubelet_root : "/", "");
  if (!opts) return with_context_file(std::move(ctx));
  identity::ProcessTable table(std::move(*opts));
  table.scan_proc();
  auto listen = listening_inodes();
  std::map<std::string, policy::ServiceInfo> by_name;
  for (auto& p : table.snapshot()) {
    if (p->exe.empty() || p->service.empty()) continue;
    auto& s = by_name[p->service];
    s.name = p->service;
    if (!p->cgroup.empty() && std::find(s.cgroups.begin(), s.cgroups.end(), p->cgroup) == s.cgroups.end())
      s.cgroups.push_back(p->cgroup);
    for (auto port : ports_of(p->pid, listen))
      if (std::find(s.ports.begin(), s.ports.end(), port) == s.ports.end()) s.ports.push_back(port);
    if (p->go) s.go_module = p->go->module;
    s.k8s_namespace = p->k8s_namespace;
    s.workload = p->workload;
    s.exe = p->exe;
  }
  for (auto& [n, s] : by_name) ctx.services.push_back(std::move(s));
  return with_context_file(std::move(ctx));
}

// Policy commands refuse to work from a catalogue they could not complete (a bad config or policy.context file):
// most subjects would select nothing.
void register_policy(CLI::App& app) {
  policy::register_policy_command(app, [] {
    std::string error;
    auto ctx = node_context(&error);
    if (!error.empty()) {
      std::cerr << error << "\n";
      throw CLI::RuntimeError(2);
    }
    return ctx;
  });
}

}  // namespace hostscope::cli
