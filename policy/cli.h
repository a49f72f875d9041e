#pragma once
// `hostscope policy lint|plan|apply|rollback|status|flush|test DIR`. Exit codes: 0 success,
// 1 failure (lint errors, failed tests, failed apply), 2 usage. Failures are raised as
// CLI::RuntimeError(code) so main's `catch (const CLI::ParseError& e) { return app.exit(e); }`
// returns the right code.
#include <functional>

#include <CLI/CLI.hpp>

#include "policy/context.h"

namespace hostscope::policy {

// `context` supplies the service catalogue and named networks (the agent passes its identity
// layer's view); `--context FILE` (JSON, see context.h) overrides it.
void register_policy_command(CLI::App& app, std::function<Context()> context);
void register_policy_command(CLI::App& app);

}  // namespace hostscope::policy
