#include "agent/cli/source.h"

#include "agent/cli/policy_context.h"
#include "agent/cli/policy_marks.h"
#include "agent/daemon/agent.h"
#include "agent/history/replay.h"
#include "agent/history/store.h"
#include "agent/util/logging.h"
#include "common/api_client.h"
#include "common/topology_json.h"

namespace hostscope::cli {

void add_source_options(CLI::App* cmd, SourceOptions& o) {
  cmd->add_option("--socket", o.socket, "Agent API socket")->capture_default_str();
  cmd->add_option("--config", o.config, "Config for embedded mode")->capture_default_str();
  cmd->add_option("--policy-state", o.policy_state,
                  "Policy state directory: edges are marked denied / would-deny by the generation in force (\"\": off)")
      ->capture_default_str();
  cmd->add_flag("--embedded", o.embedded_only, "Do not use a running agent; load the BPF programs in-process");
}

namespace {

nlohmann::json filter_params(const topology::SnapshotFilter& f) {
  nlohmann::json p = nlohmann::json::object();
  if (f.since_ns) p["since_ns"] = f.since_ns;
  if (!f.service.empty()) p["service"] = f.service;
  if (!f.ns.empty()) p["namespace"] = f.ns;
  if (f.port) p["port"] = *f.port;
  return p;
}

class DaemonSource : public SnapshotSource {
 public:
  explicit DaemonSource(std::string socket) : socket_(std::move(socket)) {}
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override {
    auto r = api::call(socket_, "topology", filter_params(f));
    if (!r) return r.error();
    return topology::from_json(*r);
  }
  Result<nlohmann::json> health() override { return api::call(socket_, "health"); }
  std::string describe() const override { return "agent at " + socket_; }
  bool embedded() const override { return false; }

 private:
  std::string socket_;
};

class EmbeddedSource : public SnapshotSource {
 public:
  explicit EmbeddedSource(const daemon::Config& cfg) : pipeline_(daemon::pipeline_options(cfg)) {}
  Status start() { return pipeline_.start(); }
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override { return pipeline_.snapshot(f); }
  Result<nlohmann::json> health() override { return pipeline_.health().to_json(); }
  std::string describe() const override { return "embedded (no agent running)"; }
  bool embedded() const override { return true; }

 private:
  pipeline::Pipeline pipeline_;
};

class HistorySource : public SnapshotSource {
 public:
  HistorySource(history::Store store, uint64_t from_ns, uint64_t to_ns)
      : store_(std::move(store)), from_(from_ns), to_(to_ns) {}
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override {
    auto s = store_.topology(from_, to_);
    if (!s) return s.error();
    return topology::filter(std::move(*s), f);
  }
  Result<nlohmann::json> health() override { return nlohmann::json{{"history", store_.path()}}; }
  std::string describe() const override {
    return fmt::format("history {} from {} to {}", store_.path(), topology::format_time(from_), topology::format_time(to_));
  }
  bool embedded() const override { return false; }

 private:
  history::Store store_;
  uint64_t from_, to_;
};

// `top --replay`: every snapshot is the history one step further on.
class ReplaySource : public SnapshotSource {
 public:
  explicit ReplaySource(history::Replay replay) : replay_(std::move(replay)) {}
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override {
    auto s = replay_.next();
    if (!s) return s.error();
    return topology::filter(std::move(*s), f);
  }
  Result<nlohmann::json> health() override {
    return nlohmann::json{{"history", replay_.path()}, {"replay_ns", replay_.at_ns()}, {"replay_done", replay_.done()}};
  }
  std::string describe() const override {
    return fmt::format("replay of {} at {}{}", replay_.path(), topology::format_time(replay_.at_ns()),
                       replay_.done() ? " (end)" : "");
  }
  bool embedded() const override { return false; }

 private:
  history::Replay replay_;
};

// Any source, with the applied policy's verdict on each edge.
class MarkedSource : public SnapshotSource {
 public:
  MarkedSource(std::unique_ptr<SnapshotSource> inner, const std::string& state_dir)
      : inner_(std::move(inner)), marker_(state_dir, [] { return node_context(); }) {}
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override {
    auto s = inner_->snapshot(f);
    if (s) marker_.mark(*s);
    return s;
  }
  Result<nlohmann::json> health() override { return inner_->health(); }
  std::string describe() const override { return inner_->describe() + "; " + marker_.summary(); }
  bool embedded() const override { return inner_->embedded(); }

 private:
  std::unique_ptr<SnapshotSource> inner_;
  PolicyMarker marker_;
};

std::unique_ptr<SnapshotSource> with_marks(std::unique_ptr<SnapshotSource> s, const SourceOptions& o) {
  if (o.policy_state.empty()) return s;
  return std::make_unique<MarkedSource>(std::move(s), o.policy_state);
}

}  // namespace

Result<bool> agent_answers(const std::string& socket) {
  auto p = api::probe_agent(socket);
  if (p.state == api::AgentProbe::State::Running) return true;
  if (p.state == api::AgentProbe::State::Absent) return false;
  return errorf("{}", api::probe_message(socket, p));
}

Result<std::unique_ptr<SnapshotSource>> open_source(const SourceOptions& o) {
  if (!o.embedded_only) {
    auto up = agent_answers(o.socket);
    if (!up) return up.error();
    if (*up) return with_marks(std::make_unique<DaemonSource>(o.socket), o);
  }
  auto cfg = daemon::load_agent_config(o.config, o.config == daemon::kDefaultConfigPath);
  if (!cfg) return cfg.error();
  auto src = std::make_unique<EmbeddedSource>(*cfg);
  if (auto st = src->start(); !st) return st.error();
  return with_marks(std::move(src), o);
}

Result<std::string> history_path(const std::string& file, const SourceOptions& o) {
  if (!file.empty()) return file;
  auto cfg = daemon::load_agent_config(o.config, o.config == daemon::kDefaultConfigPath);
  if (!cfg) return cfg.error();
  return cfg->history.path;
}

Result<std::unique_ptr<SnapshotSource>> open_history_source(const std::string& path, uint64_t from_ns, uint64_t to_ns) {
  auto store = history::Store::open(path, {}, true);
  if (!store) return store.error();
  // Marks are left out on purpose: they would show today's policy on yesterday's edges.
  return std::unique_ptr<SnapshotSource>(std::make_unique<HistorySource>(std::move(*store), from_ns, to_ns));
}

Result<std::unique_ptr<SnapshotSource>> open_replay_source(const std::string& path, uint64_t from_ns, uint64_t to_ns,
                                                          uint64_t step_ns) {
  auto store = history::Store::open(path, {}, true);
  if (!store) return store.error();
  return std::unique_ptr<SnapshotSource>(
      std::make_unique<ReplaySource>(history::Replay(std::move(*store), from_ns, to_ns, step_ns)));
}

}  // namespace hostscope::cli
