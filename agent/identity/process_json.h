#pragma once
// JSON form of a process identity: `hostscope services -o json` and the agent's `services` API method.
#include <nlohmann/json.hpp>

#include "agent/identity/process_table.h"

namespace hostscope::identity {

nlohmann::json process_to_json(const ProcessIdentity& p);

}  // namespace hostscope::identity
