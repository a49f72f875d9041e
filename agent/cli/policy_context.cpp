// The node's service catalogue for `hostscope policy ...`: which cgroups, addresses, listening ports and Go modules
// each service has right now (a /proc scan through the identity layer and its local endpoints), plus the named
// networks and the `policy.context` file of the agent config.
#include <filesystem>
#include <iostream>

#include "agent/cli/cluster_source.h"
#include "agent/cli/commands.h"
#include "agent/cli/policy_context.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/service_catalogue.h"
#include "agent/history/store.h"
#include "agent/identity/process_lookup.h"
#include "agent/util/logging.h"
#include "common/topology_json.h"
#include "policy/cli.h"

namespace hostscope::cli {

std::vector<policy::ServiceInfo> node_services(const std::string& kubelet_root) {
  auto opts = identity::identity_options(kubelet_root, "");
  if (!opts) {
    spdlog::warn("policy catalogue: {}", opts.error().str());
    return {};
  }
  identity::ProcessTable table(std::move(*opts));
  table.scan_proc();
  auto processes = table.snapshot();
  identity::LocalEndpoints endpoints;
  auto found = endpoints.read(processes);
  return daemon::service_catalogue(processes, *found, {}).services;
}

policy::Context node_context(std::string* error) {
  policy::Context ctx;
  auto cfg = daemon::load_agent_config(daemon::kDefaultConfigPath, true);
  if (cfg) ctx.networks = cfg->networks;
  ctx.services = node_services(cfg ? cfg->identity.kubelet_root : "/");
  // policy.context: services the node cannot see, merged with what it sees (policy::merge_context).
  std::string why = cfg ? "" : cfg.error().str();
  if (cfg && !cfg->policy.context_file.empty()) {
    if (auto file = policy::load_context_file(cfg->policy.context_file))
      ctx = policy::merge_context(std::move(ctx), *file);
    else
      why = file.error().str();
  }
  if (!why.empty() && error)
    *error = why;
  else if (!why.empty())
    spdlog::warn("policy catalogue: {}", why);
  return ctx;
}

namespace {

// `policy ... --since`: the stored topology of [from_ns, to_ns), read-only. A history that starts after from_ns is
// used as it is, and stderr says how much of the window it covers.
Result<topology::TopologySnapshot> read_history(const std::string& file, uint64_t from_ns, uint64_t to_ns) {
  std::string path = file;
  if (path.empty()) {
    auto cfg = daemon::load_agent_config(daemon::kDefaultConfigPath, true);
    if (!cfg) return cfg.error();
    path = cfg->history.path;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return errorf("history file {} does not exist", path);
  auto store = history::Store::open(path, {}, true);
  if (!store) return store.error();
  auto st = store->status();
  if (!st) return st.error();
  if (st->rows == 0) return errorf("history file {} holds no intervals yet", path);
  if (st->oldest_ns > from_ns)
    std::cerr << fmt::format("topology history {} starts at {}: the window is covered from there\n", path,
                             topology::format_time(st->oldest_ns));
  return store->topology(from_ns, to_ns);
}

}  // namespace

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
  }, read_history, cluster_observation);
}

}  // namespace hostscope::cli
