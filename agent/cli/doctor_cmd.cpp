// `hostscope doctor`: checks the node and the running agent; says what works and what will degrade.
// Exit 0 when the agent can run fully, 1 when anything is degraded or failing, 2 on usage errors.
#include <fmt/format.h>

#include "agent/cli/commands.h"
#include "agent/cli/doctor/probe.h"
#include "agent/daemon/config.h"

namespace hostscope::cli {

void register_doctor(CLI::App& app, int& exit_code) {
  struct Options {
    std::string config = daemon::kDefaultConfigPath, socket, output = "text";
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("doctor", "Check this node and the running agent: what works, what will degrade");
  cmd->add_option("-c,--config", o->config, "Agent configuration file to check")->capture_default_str();
  cmd->add_option("--socket", o->socket, "Agent API socket (default: api.socket from the configuration)");
  cmd->add_option("-o,--output", o->output, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->callback([o, &exit_code] {
    auto facts = doctor::probe({o->config, o->config == daemon::kDefaultConfigPath, o->socket});
    auto checks = doctor::evaluate(facts);
    if (o->output == "json")
      fmt::print("{}\n", doctor::render_json(checks).dump(2));
    else
      fmt::print("{}", doctor::render_text(checks));
    exit_code = doctor::exit_code(checks);
  });
}

}  // namespace hostscope::cli
