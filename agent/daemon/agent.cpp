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

pipeline::PipelineOptions pipeline_options(const Config& cfg) {
  pipeline::PipelineOptions o;
  o.attach = cfg.kernel.attach;
  o.socket_table_size = cfg.kernel.socket_table_size;
  o.edge_table_size = cfg.kernel.edge_table_size;
  o.ring_bytes = cfg.kernel.ring_buffer_mb << 20;
  o.topology_config.max_edges = cfg.topology.max_edges;
  o.topology_config.max_nodes = cfg.topology.max_nodes;
  o.topology_config.max_identities = cfg.topology.max_identities;
  o.topology_config.network_ends = cfg.topology.network_ends;
  o.topology_config.edge_idle_timeout_ns = uint64_t(cfg.topology.idle_expiry_seconds) * 1'000'000'000ull;
  if (auto nm = topology::NetworkMap::build(cfg.networks)) o.topology_config.networks = std::move(*nm);
  else spdlog::error("networks: {}", nm.error().str());  // parse_config already validated every CIDR
  o.identity_settings.kubelet_root = cfg.identity.kubelet_root;
  // service_rules come from the same file (already validated by parse_config).
  if (!cfg.source.empty() && cfg.source != "(defaults)") o.identity_settings.config_file = cfg.source;
  o.identity_settings.max_processes = cfg.identity.max_processes;
  o.identity_settings.ring_bytes = cfg.kernel.process_ring_buffer_mb << 20;
  return o;
}

Agent::Agent(Config cfg) : cfg_(std::move(cfg)) { pipeline_ = std::make_unique<pipeline::Pipeline>(pipeline_options(cfg_)); }

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
  start_history();
  register_api();
  start_policy();
  if (auto st = api_->start(); !st) return st;
  return start_exporters();
}

void Agent::stop() {
  stop_exporters();
  if (api_) api_->stop();
  if (policy_) policy_->stop();
  stop_history();  // before the pipeline: the last partial minute is taken from its snapshot
  if (pipeline_) pipeline_->stop();
  instance_lock_.reset();
}

void Agent::start_history() {
  if (!cfg_.history.enabled) return;
  history::WriterOptions o;
  o.path = cfg_.history.path;
  o.store.retention_ns = cfg_.history.retention_ns;
  o.store.max_bytes = cfg_.history.max_bytes;
  history_writer_ = std::make_unique<history::Writer>(o);
  // A file that cannot be used is logged once by the writer; the agent runs on and health says why.
  if (!history_writer_->start()) return;
  history_recorder_ = std::make_unique<history::Recorder>(
      [this] {
        topology::SnapshotFilter f;
        f.latency_buckets = true;
        return pipeline_->snapshot(f);
      },
      *history_writer_);
  history_recorder_->start();
}

void Agent::stop_history() {
  if (history_recorder_) history_recorder_->stop();
  history_recorder_.reset();
  if (history_writer_) history_writer_->stop();
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
    if (history_writer_) {
      auto h = history_writer_->stats();
      j["history"] = {{"path", cfg_.history.path},       {"ok", h.ok},
                      {"error", h.error},                {"intervals_written", h.intervals_written},
                      {"intervals_dropped", h.intervals_dropped}, {"rows_written", h.rows_written},
                      {"last_write_ns", h.last_write_ns}};
    }
    if (sink_) {
      auto s = sink_->stats();
      j["events_sink"] = {{"lines_written", s.lines_written}, {"lines_dropped", s.lines_dropped},
                          {"rotations", s.rotations}, {"write_errors", s.write_errors}};
    }
    return j;
  });
  api_->handle("services", [this](const nlohmann::json&) { return pipeline_->services_json(); });
  register_topology_api(*api_, *pipeline_, cfg_);
  api_->stream("connections", [this](const nlohmann::json& p, const std::shared_ptr<StreamQueue>& q) {
    auto f = std::make_shared<events::ConnectionFilter>(stream_filter_from_json(p));
    uint64_t id = pipeline_->subscribe(
        [f, q](std::span<const events::ConnectionEvent> batch, std::span<const pipeline::ResolvedEvent> ids) {
          fmt::memory_buffer b;
          for (size_t i = 0; i < batch.size(); i++) {
            if (!f->match(batch[i])) continue;
            b.clear();
            pipeline::append_event_json(b, batch[i], ids[i]);
            q->push(std::string(b.data(), b.size()));
          }
        });
    return [this, id] { pipeline_->unsubscribe(id); };
  });
}

}  // namespace hostscope::daemon
