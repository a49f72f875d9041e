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
void register_agent(CLI::App& app, const GlobalOptions& g, int& exit_code);

}  // namespace hostscope::cli
