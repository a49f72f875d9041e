#include "agent/cli/cluster_source.h"

#include <chrono>
#include <algorithm>
#include <map>
#include <set>

#include "agent/util/clock.h"
#include "agent/util/logging.h"
#include "common/time_arg.h"

namespace hostscope::cli {

void add_cluster_options(CLI::App* cmd, ClusterOptions& o) {
  cmd->add_flag("--cluster", o.cluster,
                "The whole cluster's topology from a Prometheus scraping every node's agent (needs --prometheus)");
  cmd->add_option("--prometheus", o.prometheus, "With --cluster: the Prometheus URL, http://host:port[/path]");
}

Result<nlohmann::json> ClusterSource::health() {
  return nlohmann::json{{"source", "prometheus"}, {"url", prom_.url()}, {"window", o_.window}, {"nodes", nodes_}};
}

Result<topology::TopologySnapshot> ClusterSource::snapshot(const topology::SnapshotFilter& f) {
  const uint64_t now = at_ns_ ? at_ns_ : clock_ns(CLOCK_REALTIME);
  std::vector<std::string> warnings;
  auto series = cluster::collect(prom_, {o_.window, o_.rate_window, double(now) / 1e9}, warnings);
  if (!series) return series.error();
  for (const auto& w : warnings) spdlog::warn("{}", w);
  std::set<std::string> nodes;
  for (const auto& e : series->edges) nodes.insert(e.node);
  for (const auto& e : series->endpoints) nodes.insert(e.node);
  nodes_ = std::max(nodes.size(), series->versions.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto t = cluster::join(*series, now);
  spdlog::debug("cluster: {} series joined into {} edges in {:.0f} ms", series->edges.size(), t.snapshot.edges.size(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  rates_ = std::move(t.rates);
  return topology::filter(std::move(t.snapshot), f);
}

namespace {

// What every cluster command checks first: a Prometheus URL, and a window that is a duration.
Result<cluster::Prometheus> open_prometheus(const std::string& url, const std::string& window) {
  if (url.empty()) return errorf("--cluster needs --prometheus URL (the Prometheus scraping the agents)");
  if (!parse_duration_ns(window)) return errorf("--window {}: expected a duration like 15m, 1h or 1d", window);
  return cluster::Prometheus::open(url);
}

}  // namespace

Result<policy::ClusterObservation> cluster_observation(const std::string& prometheus_url, const std::string& window) {
  auto prom = open_prometheus(prometheus_url, window);
  if (!prom) return prom.error();
  const uint64_t now = clock_ns(CLOCK_REALTIME);
  std::vector<std::string> warnings;
  auto series = cluster::collect(*prom, {window, "", double(now) / 1e9}, warnings);
  if (!series) return series.error();
  for (const auto& w : warnings) spdlog::warn("{}", w);
  policy::ClusterObservation out;
  std::map<std::string, size_t> by_name;
  for (const auto& e : series->endpoints) {
    if (!e.current || e.service.empty()) continue;  // a node's own address, or an owner that left
    auto [it, fresh] = by_name.emplace(e.service, out.services.size());
    if (fresh) out.services.push_back(policy::ServiceInfo{e.service, {}, {}, {}, "", e.ns, e.workload, ""});
    auto& addrs = out.services[it->second].addresses;
    if (std::find(addrs.begin(), addrs.end(), e.address) == addrs.end()) addrs.push_back(e.address);
  }
  out.topology = cluster::join(*series, now).snapshot;
  return out;
}

Result<std::unique_ptr<ClusterSource>> open_cluster_source(ClusterOptions o) {
  if (o.window.empty()) o.window = "1h";
  auto prom = open_prometheus(o.prometheus, o.window);
  if (!prom) return prom.error();
  if (!o.rate_window.empty() && !parse_duration_ns(o.rate_window))
    return errorf("--rate-window {}: expected a duration like 1m or 5m", o.rate_window);
  uint64_t at_ns = 0;
  if (!o.at.empty()) {
    auto t = parse_time_arg(o.at, clock_ns(CLOCK_REALTIME));
    if (!t) return errorf("--at: {}", t.error().str());
    at_ns = *t;
  }
  return std::make_unique<ClusterSource>(std::move(*prom), std::move(o), at_ns);
}

}  // namespace hostscope::cli
