#pragma once
// The daemon: the pipeline (agent/pipeline) plus the local API that serves its snapshots and streams.
#include <memory>
#include <optional>

#include "agent/daemon/api_server.h"
#include "agent/daemon/config.h"
#include "agent/daemon/event_counter.h"
#include "agent/history/writer.h"
#include "agent/pipeline/pipeline.h"
#include "exporters/event_sink.h"
#include "exporters/metrics_server.h"
#include "policy/reconcile_status.h"

namespace hostscope::policy {
class Reconciler;
}

namespace hostscope::daemon {

// Loads the config; when `missing_ok` and the file does not exist, returns the defaults.
Result<Config> load_agent_config(const std::string& path, bool missing_ok);

// The pipeline the config describes (the agent's, and the one `top`/`topology` run in embedded mode).
pipeline::PipelineOptions pipeline_options(const Config& cfg);

// Registers the topology API methods (snapshot as JSON, filters) on the server.
void register_topology_api(ApiServer& api, pipeline::Pipeline& pipeline, const Config& cfg);

// Agent health as the exporters see it (api, sink and events may be null).
exporters::AgentHealth agent_health(const pipeline::Health& h, const ApiCounters* api, const exporters::EventSink* sink,
                                    const EventCounter* events = nullptr);

class Agent {
 public:
  explicit Agent(Config cfg);
  ~Agent();
  Status start();
  void stop();
  pipeline::Pipeline& pipeline() { return *pipeline_; }
  // The policy reconciler's record (policy from Git or a directory); nullopt when no policy source is configured.
  std::optional<policy::ReconcileStatus> policy_status() const;
  // The /metrics registry (null when metrics.listen is ""): extra collectors (policy) are added here.
  exporters::MetricsRegistry* metrics() { return metrics_.get(); }
  uint16_t metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

 private:
  void register_api();
  void start_policy();       // agent/daemon/policy_api.cpp
  Status start_exporters();  // exporters_wiring.cpp
  void stop_exporters();
  void start_history();
  void stop_history();
  Config cfg_;
  UniqueFd instance_lock_;  // lock_agent_instance: held while this agent runs
  std::unique_ptr<pipeline::Pipeline> pipeline_;
  std::unique_ptr<ApiServer> api_;
  std::unique_ptr<policy::Reconciler> policy_;
  std::unique_ptr<exporters::EventSink> sink_;
  std::unique_ptr<EventCounter> event_counter_;  // hostscope_events_total (only while /metrics is on)
  std::unique_ptr<exporters::MetricsRegistry> metrics_;
  std::unique_ptr<exporters::MetricsServer> metrics_server_;
  std::vector<uint64_t> subs_;  // pipeline subscriptions of the exporters
  std::string metrics_error_;   // why /metrics is not served (bind failed), for health
  // history.enabled: a minute timer over the topology snapshot feeding one writer thread (agent/history).
  std::unique_ptr<history::Writer> history_writer_;
  std::unique_ptr<history::Recorder> history_recorder_;
};

}  // namespace hostscope::daemon
