#pragma once
// The node's service catalogue for policy (policy::Context): the identity layer's processes grouped by service,
// with their cgroups, the addresses of their network namespaces and their listening ports (local_endpoints.h),
// plus the config's named networks. One builder for `hostscope policy ...` (cli/policy_context.cpp) and the
// agent's reconciler (daemon/policy_api.cpp).
#include <map>
#include <string>
#include <vector>

#include "agent/identity/local_endpoints.h"
#include "policy/context.h"

namespace hostscope::daemon {

policy::Context service_catalogue(const identity::LocalEndpoints::Processes& processes,
                                  const identity::LocalEndpointsSnapshot& endpoints,
                                  const std::map<std::string, std::vector<std::string>>& networks);

}  // namespace hostscope::daemon
