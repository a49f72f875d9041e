#pragma once
// `hostscope policy lint|plan|apply|rollback|status|flush|test DIR`. Exit codes: 0 success,
// 1 failure (lint errors, failed tests, failed apply), 2 usage. Failures are raised as
// CLI::RuntimeError(code) so main's `catch (const CLI::ParseError& e) { return app.exit(e); }`
// returns the right code.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/result.h"
#include "common/topology_model.h"
#include "policy/context.h"

namespace hostscope::policy {

// `context` supplies the service catalogue and named networks (the agent passes its identity
// layer's view); `--context FILE` (JSON, see context.h) overrides it.
// `history` reads the node's stored topology of [from_ns, to_ns) from `file` ("" = the agent config's history file)
// for `--since` of `plan --impact`, `diff --impact` and `generate`; without it (or when it fails) `--since` keeps the
// edges of the agent's live topology last seen within the window and says so.
using HistoryReader =
    std::function<Result<topology::TopologySnapshot>(const std::string& file, uint64_t from_ns, uint64_t to_ns)>;
// `generate --cluster`: the cluster's topology as a Prometheus scraping every node's agent has it over `window`
// (agent/cluster), and the services its endpoint info names with their addresses (on every node).
struct ClusterObservation {
  topology::TopologySnapshot topology;
  std::vector<ServiceInfo> services;
};
using ClusterReader = std::function<Result<ClusterObservation>(const std::string& prometheus_url, const std::string& window)>;
void register_policy_command(CLI::App& app, std::function<Context()> context, HistoryReader history = {},
                             ClusterReader cluster = {});
void register_policy_command(CLI::App& app);

}  // namespace hostscope::policy
