#pragma once
// The node's service catalogue for policy commands and for policy marks on edges: a /proc scan through the identity
// layer (cgroups, addresses of pods and containers, listening ports, Go modules per service) plus the named networks
// and the `policy.context` file of the agent config.
#include <string>
#include <vector>

#include "policy/context.h"

namespace hostscope::cli {

// The node's catalogue merged with the config's `policy.context` file. A config or context file that cannot be read
// leaves it out: the reason goes to `*error` when given, else to the log (marks on `top`/`topology`).
policy::Context node_context(std::string* error = nullptr);
// The services part of node_context(): a /proc scan with `kubelet_root` (the config's identity.kubelet_root;
// a fake node tree in tests), each service with its cgroups, addresses and listening ports.
std::vector<policy::ServiceInfo> node_services(const std::string& kubelet_root);

}  // namespace hostscope::cli
