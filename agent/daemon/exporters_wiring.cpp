// Wires the exporters (Prometheus /metrics, the event sink) into the agent. exporters/ takes plain values and
// callbacks; this file is the only place that knows both sides.
#include <spdlog/spdlog.h>

#include "agent/daemon/agent.h"
#include "agent/daemon/policy_health.h"
#include "exporters/endpoint_metrics.h"
#include "policy/reconcile_config.h"
#include "hostscope_version.h"

namespace hostscope::daemon {

namespace {

uint64_t json_u64(const nlohmann::json& j, const char* obj, const char* key) {
  if (!j.contains(obj) || !j[obj].is_object()) return 0;
  return j[obj].value(key, uint64_t{0});
}

}  // namespace

exporters::AgentHealth agent_health(const pipeline::Health& h, const ApiCounters* api, const exporters::EventSink* sink,
                                    const EventCounter* events) {
  exporters::AgentHealth a;
  a.version = std::string(HOSTSCOPE_VERSION) + "+" + HOSTSCOPE_GIT;
  a.lost_by_source["kernel_ring_buffer"] = h.kernel.ringbuf_dropped;
  a.lost_by_source["kernel_reentry"] = h.kernel.prog_recursion_misses;
  a.lost_by_source["kernel_socket_table_full"] = h.kernel.socket_table_full;
  a.lost_by_source["kernel_peer_table_evicted"] = h.kernel.peer_evicted;  // a local peer not named
  a.lost_by_source["topology_unattributed"] = h.topology.dropped;
  a.lost_by_source["user_space_queue"] = h.subscriber_lines_dropped + (api ? api->stream_lines_dropped : 0);
  if (sink) a.lost_by_source["event_sink"] = sink->stats().lines_dropped;
  a.tracked_sockets = h.socket_table_entries;
  a.tracked_connections = h.tracked_connections;
  a.topology_identities = h.topology_identities;
  a.tracked_processes = json_u64(h.identity, "processes", "size");
  if (h.socket_table_capacity) a.maps.push_back({"tcp_socks", h.socket_table_entries, h.socket_table_capacity});
  if (h.edge_table_capacity) a.maps.push_back({"tcp_edges", h.edge_table_entries, h.edge_table_capacity});
  a.edge_table_overflow = h.kernel.edge_table_full;
  if (h.identity.contains("processes")) {
    a.identity_hits["processes"] = json_u64(h.identity, "processes", "hits");
    a.identity_misses["processes"] = json_u64(h.identity, "processes", "misses");
  }
  if (h.identity.contains("peers")) {
    a.identity_hits["peers"] = json_u64(h.identity, "peers", "hits");
    a.identity_misses["peers"] = json_u64(h.identity, "peers", "misses");
  }
  const auto& t = h.topology;
  a.topology = {{"edges_expired", t.edges_expired},         {"edges_evicted", t.edges_evicted},
                {"connections_evicted", t.connections_evicted}, {"node_overflow", t.node_overflow},
                {"stitched", t.stitched},                   {"anomalies", t.anomalies},
                {"nat_dropped", t.nat_dropped},             {"identities_dropped", t.identities_dropped}};
  if (events) a.events = events->counts();
  return a;
}

Status Agent::start_exporters() {
  if (cfg_.events.output != "none") {
    exporters::EventSinkOptions o;
    o.output = cfg_.events.output;
    o.file = cfg_.events.file;
    o.max_file_bytes = uint64_t(cfg_.events.max_file_mb) << 20;
    o.max_files = cfg_.events.max_files;
    o.queue = cfg_.events.queue;
    auto s = exporters::EventSink::open(o);
    if (!s) return s.error();
    sink_ = std::move(*s);
    subs_.push_back(pipeline_->subscribe(
        [sink = sink_.get()](std::span<const events::ConnectionEvent> batch, std::span<const pipeline::ResolvedEvent> ids) {
          fmt::memory_buffer b;
          for (size_t i = 0; i < batch.size(); i++) {
            b.clear();
            pipeline::append_event_json(b, batch[i], ids[i]);
            sink->push(std::string(b.data(), b.size()));
          }
        },
        true));
    spdlog::info("events: writing JSON lines to {}", o.output == "file" ? o.file : o.output);
  }
  if (cfg_.metrics.listen.empty()) return {};
  exporters::MetricsOptions mo;
  mo.listen = cfg_.metrics.listen;
  mo.max_series = cfg_.metrics.max_series;
  mo.node = cfg_.node_name;
  event_counter_ = std::make_unique<EventCounter>();
  metrics_ = std::make_unique<exporters::MetricsRegistry>(
      mo,
      [this] {
        topology::SnapshotFilter f;
        f.latency_buckets = true;
        return pipeline_->snapshot(f);
      },
      [this] {
        ApiCounters c;
        if (api_) c = api_->counters();
        return agent_health(pipeline_->health(), api_ ? &c : nullptr, sink_.get(), event_counter_.get());
      });
  // Policy state: the generation in force (whoever applied it), per-rule counters, the reconciler's record.
  // Read here (iptables-save, cached) and handed to the exporter as plain values.
  PolicyHealthOptions po;
  po.iptables = policy::iptables_options(cfg_.policy);
  metrics_->add_collector([r = std::make_shared<PolicyHealthReader>(po)](exporters::Exposition& out) {
    exporters::write_policy_health(out, r->read());
  });
  // This node's addresses and its pods'/containers', with their owners (cached by the resolver, see
  // identity/local_endpoints.h), so Prometheus can name an address by the workload and node that own it.
  metrics_->add_collector([this](exporters::Exposition& out) {
    auto ep = pipeline_->local_endpoints();
    std::vector<exporters::EndpointInfo> infos;
    if (ep) {
      for (const auto& a : ep->node_addresses) infos.push_back({a, "", "", "", ""});
      for (const auto& o : ep->owners) infos.push_back({o.address, o.service, o.k8s_namespace, o.workload, o.pod});
    }
    exporters::write_endpoint_info(out, infos, cfg_.node_name, cfg_.metrics.max_series);
  });
  if (sink_) metrics_->add_collector([s = sink_.get()](exporters::Exposition& out) { s->write_metrics(out); });
  subs_.push_back(pipeline_->subscribe(
      [c = event_counter_.get()](std::span<const events::ConnectionEvent> batch, std::span<const pipeline::ResolvedEvent>) {
        c->count(batch);
      },
      true));
  metrics_server_ = std::make_unique<exporters::MetricsServer>(*metrics_);
  // A taken port must not take the agent's tracing and API down with it: the agent runs on, logs the error and
  // reports it in `health` (metrics.error). The address itself was validated with the config.
  if (auto st = metrics_server_->start(cfg_.metrics.listen); !st) {
    metrics_error_ = st.error().str();
    spdlog::error("degraded: {}: no /metrics", metrics_error_);
  }
  return {};
}

void Agent::stop_exporters() {
  for (auto id : subs_) pipeline_->unsubscribe(id);
  subs_.clear();
  if (metrics_server_) metrics_server_->stop();
  if (sink_) sink_->stop();
}

}  // namespace hostscope::daemon
