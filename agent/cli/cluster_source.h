#pragma once
// `topology --cluster` and `top --cluster`: the cluster's topology read from a Prometheus that scrapes every node's
// agent (agent/cluster), offered as a SnapshotSource so both commands render it the way they render one node.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/cli/source.h"
#include "agent/cluster/join.h"
#include "policy/cli.h"

namespace hostscope::cli {

struct ClusterOptions {
  bool cluster = false;
  std::string prometheus;   // http://host:port[/path]
  std::string window;       // counts over this window ("" = 1h)
  std::string rate_window;  // top --cluster: rate() window ("" = no rates)
  std::string at;           // topology --cluster --at: the window ends at this time (as parse_time_arg); "" = now
};

// --cluster, --prometheus; `window` is registered by the command (topology's --window also serves embedded mode).
void add_cluster_options(CLI::App* cmd, ClusterOptions& o);

class ClusterSource : public SnapshotSource {
 public:
  // at_ns: the time the window ends (ns since the epoch); 0 = the time of each snapshot.
  ClusterSource(cluster::Prometheus prom, ClusterOptions o, uint64_t at_ns = 0)
      : prom_(std::move(prom)), o_(std::move(o)), at_ns_(at_ns) {}
  Result<topology::TopologySnapshot> snapshot(const topology::SnapshotFilter& f) override;
  Result<nlohmann::json> health() override;
  std::string describe() const override {
    return "prometheus " + prom_.url() + " (window " + o_.window + (o_.at.empty() ? "" : " ending at " + o_.at) + ")";
  }
  bool embedded() const override { return false; }
  // Rates of the last snapshot's edges (empty without a rate window).
  const std::map<cluster::RateKey, cluster::EdgeRates>& rates() const { return rates_; }

 private:
  cluster::Prometheus prom_;
  ClusterOptions o_;
  std::map<cluster::RateKey, cluster::EdgeRates> rates_;
  uint64_t at_ns_ = 0;
  size_t nodes_ = 0;
};

// `policy generate --cluster`: the joined topology over `window` and the services endpoint info names now, each with
// every address it holds on any node (services are keyed by name in the policy catalogue: one name in several
// namespaces is one service).
Result<policy::ClusterObservation> cluster_observation(const std::string& prometheus_url, const std::string& window);

// Checks the options (--prometheus given, windows are durations like 30s, 15m, 1h, 1d, --at a time) and opens the
// source.
Result<std::unique_ptr<ClusterSource>> open_cluster_source(ClusterOptions o);

}  // namespace hostscope::cli
