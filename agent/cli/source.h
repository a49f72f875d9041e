#pragma once
// Where CLI commands get their data: the running daemon (local API) when it answers, otherwise an in-process
// pipeline (embedded mode) so the commands work on a node with nothing else running.
#include <memory>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "agent/daemon/config.h"
#include "common/topology_model.h"
#include "common/result.h"

namespace hostscope::cli {

struct SourceOptions {
  std::string socket = daemon::kDefaultSocketPath;
  std::string config = daemon::kDefaultConfigPath;
  bool embedded_only = false;  // --embedded: never use the daemon
  // Policy state directory whose generation in force marks edges (denied / would-deny); "" = no marks.
  std::string policy_state = "/var/lib/hostscope/policy";
};

// The options every snapshot-reading command shares: --socket, --config, --policy-state, --embedded.
void add_source_options(CLI::App* cmd, SourceOptions& o);

class SnapshotSource {
 public:
  virtual ~SnapshotSource() = default;
  virtual Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) = 0;
  virtual Result<nlohmann::json> health() = 0;
  virtual std::string describe() const = 0;
  virtual bool embedded() const = 0;
};

// The agent on `socket` answers: true; nothing there (no socket, nobody listening): false, so the caller may run
// embedded. An agent that is there but refuses us (full, busy, timing out) or a socket we may not open is an
// error saying so: a running agent is never mistaken for none.
Result<bool> agent_answers(const std::string& socket);

Result<std::unique_ptr<SnapshotSource>> open_source(const SourceOptions& o);

// The history file a command reads: `file` when given (--history/--path), else history.path of the config at
// o.config (the defaults when the default config does not exist).
Result<std::string> history_path(const std::string& file, const SourceOptions& o);
// `topology --at/--between`: the history file, opened read-only; every snapshot is the topology of [from_ns, to_ns)
// added up from the stored intervals (no agent needed, nothing written).
Result<std::unique_ptr<SnapshotSource>> open_history_source(const std::string& path, uint64_t from_ns, uint64_t to_ns);

// `top --replay`: the history file read-only, stepped through from from_ns to to_ns one step per snapshot.
Result<std::unique_ptr<SnapshotSource>> open_replay_source(const std::string& path, uint64_t from_ns, uint64_t to_ns,
                                                          uint64_t step_ns);

}  // namespace hostscope::cli
