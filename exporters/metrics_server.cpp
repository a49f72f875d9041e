#include "exporters/metrics_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>

#include "exporters/topology_metrics.h"

namespace hostscope::exporters {

Result<ListenAddress> parse_listen(const std::string& s) {
  ListenAddress a;
  std::string port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return errorf("listen address '{}' must be [ipv6]:port", s);
    a.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      return errorf("listen address '{}' must be host:port (IPv6 as [addr]:port)", s);
    a.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (a.host.empty()) return errorf("listen address '{}' has no host (use 0.0.0.0 for every address)", s);
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v > 65535)
    return errorf("listen address '{}' has an invalid port", s);
  a.port = uint16_t(v);
  return a;
}

MetricsRegistry::MetricsRegistry(MetricsOptions o, SnapshotFn snapshot, HealthFn health)
    : o_(std::move(o)), snapshot_(std::move(snapshot)), health_(std::move(health)) {}

void MetricsRegistry::add_collector(CollectFn fn) {
  std::lock_guard lk(mu_);
  collectors_.push_back(std::move(fn));
}

std::string MetricsRegistry::render() {
  std::lock_guard lk(mu_);
  auto t0 = std::chrono::steady_clock::now();
  Exposition out;
  if (snapshot_) {
    auto st = write_topology(out, snapshot_(), o_.node, o_.max_series);
    refused_ += st.series_refused;
    out.family("hostscope_metrics_topology_series", "gauge", "Topology series in this scrape.");
    out.sample("hostscope_metrics_topology_series", {}, st.series);
    out.family("hostscope_metrics_series_limit", "gauge", "Cap on topology series (metrics.max_series).");
    out.sample("hostscope_metrics_series_limit", {}, o_.max_series);
    out.family("hostscope_metrics_series_refused_total", "counter",
               "Topology series left out of scrapes because of the cap, summed over scrapes.");
    out.sample("hostscope_metrics_series_refused_total", {}, refused_.load());
  }
  AgentHealth h;
  if (health_) {
    h = health_();
    write_agent_health(out, h, o_.node);
  }
  write_event_counts(out, h.events);
  for (auto& c : collectors_) c(out);
  out.family("hostscope_metrics_scrapes_total", "counter", "Scrapes served (including this one).");
  out.sample("hostscope_metrics_scrapes_total", {}, ++scrapes_);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.family("hostscope_scrape_duration_seconds", "gauge", "Time taken to collect this scrape.");
  out.sample("hostscope_scrape_duration_seconds", {}, secs);
  return out.take();
}

MetricsServer::MetricsServer(MetricsRegistry& reg) : reg_(reg) {}
MetricsServer::~MetricsServer() { stop(); }

Status MetricsServer::start(const std::string& listen) {
  auto a = parse_listen(listen);
  if (!a) return a.error();
  srv_ = std::make_unique<httplib::Server>();
  srv_->set_keep_alive_max_count(16);
  // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, which would let a second agent bind the same port
  // silently and split the scrapes between them.
  srv_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  srv_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  srv_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(reg_.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hostscope agent: metrics at /metrics\n", "text/plain");
  });
  int port = a->port == 0 ? srv_->bind_to_any_port(a->host) : (srv_->bind_to_port(a->host, a->port) ? a->port : -1);
  if (port <= 0) {
    srv_.reset();
    return errorf_errno(errno, "metrics listen on {} failed", listen);
  }
  port_ = uint16_t(port);
  thread_ = std::thread([this] { srv_->listen_after_bind(); });
  spdlog::info("metrics: serving http://{}:{}/metrics", a->host, port_);
  return {};
}

void MetricsServer::stop() {
  if (srv_) srv_->stop();
  if (thread_.joinable()) thread_.join();
  srv_.reset();
}

}  // namespace hostscope::exporters
