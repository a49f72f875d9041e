#pragma once
// Runs `hostscope policy ...` in-process for unit tests: the exit code main() would return (CLI11 parse errors and
// the CLI::RuntimeError codes the policy commands raise), optionally with stdout and stderr captured.
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "policy/cli.h"

namespace hostscope::policy::cli_test {

// `args` start after the program name ({"policy", "lint", DIR}); `context` is the catalogue the agent would pass.
inline int run_cli(std::vector<std::string> args, std::function<Context()> context = {}) {
  CLI::App app("hostscope");
  register_policy_command(app, std::move(context));
  std::vector<const char*> argv = {"hostscope"};
  for (auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return e.get_exit_code();
  }
  return 0;
}

// stdout and stderr of one in-process CLI run.
struct Captured {
  int code = 0;
  std::string out, err;
};
inline Captured capture_cli(std::vector<std::string> args, std::function<Context()> context = {}) {
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  int code = run_cli(std::move(args), std::move(context));
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return {code, out.str(), err.str()};
}

}  // namespace hostscope::policy::cli_test
