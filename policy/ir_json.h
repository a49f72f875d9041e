#pragma once
// The IR as JSON, stored beside each applied generation (<state_dir>/gen-<N>.ir.json) so tools that need the
// meaning of the rules in force, not just their iptables text, can evaluate them later: `hostscope top` and
// `hostscope topology` mark observed edges the applied policy denies or, in audit mode, would deny.
// Compact on purpose (a rule is an array, not an object): a 10k-rule generation is written on every apply.
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "policy/ir.h"

namespace hostscope::policy {

nlohmann::json ir_to_json(const Ir& ir);
// ir_to_json(ir).dump(), byte for byte, written without building the JSON values (what store_ir writes).
std::string ir_to_text(const Ir& ir);
Result<Ir> ir_from_json(const nlohmann::json& j);  // names the first malformed member

// <state_dir>/gen-<generation>.ir.json
std::string ir_path(const std::string& state_dir, int generation);
Status store_ir(const std::string& state_dir, int generation, const Ir& ir);
Result<Ir> load_ir(const std::string& state_dir, int generation);
// The generation in force (<state_dir>/current), 0 when none.
int current_generation(const std::string& state_dir);

}  // namespace hostscope::policy
