#include "agent/daemon/agent.h"

#include <filesystem>

#include "agent/events/filter.h"
#include "agent/util/logging.h"
#include "agent/util/mounts.h"
#include "hostscope_version.h"
#include "policy/reconciler.h"

namespace hostscope::daemon {

Result<Config> load_agent_config(const std::string& path, bool missing_ok) {
  std::error_code ec;
  if (missing_ok && !std::filesystem::exists(path, ec)) {
    spdlog::info("config {} not found: using defaults", path);
    auto c = parse_config("", "(defaults)");
    return c;
  }
  return load_config(path);
}

Agent::Agent(Config cfg) : cfg_(std::move(cfg)) {
  pipeline_ = std::make_unique<Pipeline>(cfg_, make_default_resolver(cfg_, nullptr));
}

Agent::~Agent() { stop(); }

Status Agent::start() {
  // Nothing is pinned yet, but the agent owns bpffs on the node like tracefs (mounted when missing).
  // One agent per socket, decided by a lock held for the agent's life, before anything is loaded.
  auto lock = lock_agent_instance(cfg_.api.socket);
  if (!lock) return lock.error();
  instance_lock_ = std::move(*lock);
  if (auto st = ensure_bpffs(); !st) spdlog::warn("degraded: {}: BPF objects cannot be pinned", st.error().str());
  if (auto st = pipeline_->start(); !st) return st;
  ApiServer::Options o;
  o.socket_path = cfg_.api.socket;
  o.group = cfg_.api.group;
  o.max_request_bytes = cfg_.api.max_request_bytes;
  o.max_clients = cfg_.api.max_clients;
  o.stream_queue = cfg_.api.stream_queue;
  o.request_timeout_ms = cfg_.api.request_timeout_ms;
  o.max_snapshots = cfg_.api.max_snapshots;
  api_ = std::make_unique<ApiServer>(o);
  register_api();
  start_policy();
  if (auto st = api_->start(); !st) return st;
  return start_exporters();
}

void Agent::stop() {
  stop_exporters();
  if (api_) api_->stop();
  if (policy_) policy_->stop();
  if (pipeline_) pipeline_->stop();
  instance_lock_.reset();
}

void Agent::register_api() {
  api_->handle("health", [this](const nlohmann::json&) {
    auto j = pipeline_->health().to_json();
    auto c = api_->counters();
    j["api"] = {{"requests", c.requests},
                {"bad_requests", c.bad_requests},
                {"rejected_clients", c.rejected_clients},
                {"stream_lines_dropped", c.stream_lines_dropped},
                {"streams_active", c.streams_active},
                {"idle_clients_closed", c.idle_clients_closed},
                {"slow_streams_dropped", c.slow_streams_dropped},
                {"slow_writes_dropped", c.slow_writes_dropped},
                {"snapshots_busy", c.snapshots_busy}};
    j["version"] = HOSTSCOPE_VERSION;
    j["node"] = cfg_.node_name;
    if (!cfg_.metrics.listen.empty())
      j["metrics"] = {{"listen", cfg_.metrics.listen}, {"port", metrics_port()}, {"error", metrics_error_}};
    if (sink_) {
      auto s = sink_->stats();
      j["events_sink"] = {{"lines_written", s.lines_written}, {"lines_dropped", s.lines_dropped},
                          {"rotations", s.rotations}, {"write_errors", s.write_errors}};
    }
    return j;
  });
  api_->handle("services", [this](const nlohmann::json&) { return pipeline_->services_json(); });
  register_topology_api(*api_, *pipeline_, cfg_);
  api_->stream("connections", [this](const nlohmann::json& p, std::shared_ptr<StreamQueue> q) {
    auto f = std::make_shared<events::ConnectionFilter>(stream_filter_from_json(p));
    uint64_t id = pipeline_->subscribe(
        [f, q](std::span<const events::ConnectionEvent> batch, std::span<const ResolvedEvent> ids) {
          fmt::memory_buffer b;
          for (size_t i = 0; i < batch.size(); i++) {
            if (!f->match(batch[i])) continue;
            b.clear();
            append_event_json(b, batch[i], ids[i]);
            q->push(std::string(b.data(), b.size()));
          }
        });
    return [this, id] { pipeline_->unsubscribe(id); };
  });
}

}  // namespace hostscope::daemon
