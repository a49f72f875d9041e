// `hostscope agent`: the daemon. Runs the pipeline continuously and serves the local API.
#include <filesystem>

#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/daemon/agent.h"
#include "agent/util/logging.h"

namespace hostscope::cli {

void register_agent(CLI::App& app, const GlobalOptions& g, int& exit_code) {
  auto path = std::make_shared<std::string>(daemon::kDefaultConfigPath);
  auto socket = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("agent", "Run the hostscope agent daemon (pipeline + local API)");
  cmd->add_option("-c,--config", *path, "Configuration file (YAML); defaults apply when the default path is missing")
      ->capture_default_str();
  cmd->add_option("--socket", *socket, "API socket path (overrides api.socket)");
  cmd->callback([path, socket, &exit_code] {
    auto cfg = daemon::load_agent_config(*path, *path == daemon::kDefaultConfigPath);
    if (!cfg) {
      spdlog::error("{}", cfg.error().str());
      exit_code = 1;
      return;
    }
    if (!socket->empty()) cfg->api.socket = *socket;
    block_shutdown_signals();
    daemon::Agent agent(*cfg);
    if (auto st = agent.start(); !st) {
      spdlog::error("{}", st.error().str());
      exit_code = 1;
      return;
    }
    spdlog::info("hostscope agent running; API on {}", cfg->api.socket);
    int sig = wait_for_shutdown({});
    spdlog::info("signal {}: shutting down", sig);
    agent.stop();
    auto h = agent.pipeline().health();
    fmt::print(stderr, "hostscope agent: {} received, {} lost (ring buffer full), {} lost (hook re-entered), {} untracked closes\n",
               h.events_delivered, h.kernel.ringbuf_dropped, h.kernel.prog_recursion_misses, h.kernel.close_untracked);
    exit_code = 0;
  });
}

}  // namespace hostscope::cli
