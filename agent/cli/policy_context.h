#pragma once
// The node's service catalogue for policy commands and for policy marks on edges: a /proc scan through the identity
// layer (cgroups, listening ports, Go modules per service) plus the named networks of the agent config.
#include "policy/context.h"

namespace hostscope::cli {

policy::Context node_context();

}  // namespace hostscope::cli
