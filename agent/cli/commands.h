#pragma once
// Every subcommand registers itself on the CLI11 app; main() only wires them together.
#include <CLI/CLI.hpp>

namespace hostscope::cli {

struct GlobalOptions {
  int verbosity = 0;
};

// Each register_* adds a subcommand whose callback sets `exit_code`.
void register_version(CLI::App& app, int& exit_code);
void register_connections(CLI::App& app, const GlobalOptions& g, int& exit_code);
void register_services(CLI::App& app, const GlobalOptions& g, int& exit_code);
void register_agent(CLI::App& app, const GlobalOptions& g, int& exit_code);
void register_top(CLI::App& app, const GlobalOptions& g, int& exit_code);
void register_topology(CLI::App& app, const GlobalOptions& g, int& exit_code);
// `hostscope policy ...` (policy/cli.h) with the node's live service catalogue.
void register_policy(CLI::App& app);
void register_doctor(CLI::App& app, int& exit_code);
// `hostscope history status` (agent/history).
void register_history(CLI::App& app, int& exit_code);

}  // namespace hostscope::cli
