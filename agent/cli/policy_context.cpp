// The node's service catalogue for `hostscope policy ...`: which cgroups, addresses, listening ports and Go modules
// each service has right now (a /proc scan through the identity layer and its local endpoints), plus the named
// networks of the agent config.

#include "agent/cli/commands.h"
#include "agent/cli/policy_context.h"
#include "agent/daemon/agent.h"
#include "agent/daemon/service_catalogue.h"
#include "agent/identity/resolver.h"
#include "agent/util/logging.h"
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

policy::Context node_context() {
  policy::Context ctx;
  auto cfg = daemon::load_agent_config(daemon::kDefaultConfigPath, true);
  if (cfg) ctx.networks = cfg->networks;
  ctx.services = node_services(cfg ? cfg->identity.kubelet_root : "/");
  return ctx;
}

void register_policy(CLI::App& app) { policy::register_policy_command(app, node_context); }

}  // namespace hostscope::cli
