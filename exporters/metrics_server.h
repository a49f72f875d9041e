#pragma once
// The /metrics endpoint: a cpp-httplib server on its own thread that renders every collector at scrape time.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/topology_model.h"
#include "common/result.h"
#include "exporters/agent_metrics.h"
#include "exporters/exposition.h"

namespace httplib {
class Server;
}

namespace hostscope::exporters {

// "127.0.0.1:9477", "[::1]:9477", "0.0.0.0:9477". Port 0 binds a free port (tests).
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
Result<ListenAddress> parse_listen(const std::string& s);

inline constexpr uint16_t kDefaultMetricsPort = 9477;

struct MetricsOptions {
  std::string listen = "127.0.0.1:9477";
  uint64_t max_series = 50000;
  std::string node;
};

class MetricsRegistry {
 public:
  using SnapshotFn = std::function<topology::TopologySnapshot()>;
  using HealthFn = std::function<AgentHealth()>;
  using CollectFn = std::function<void(Exposition&)>;

  MetricsRegistry(MetricsOptions o, SnapshotFn snapshot, HealthFn health);
  // Extra families (policy, event sink). Called on the scrape thread; must not block long.
  void add_collector(CollectFn fn);
  // One scrape: the whole exposition text.
  std::string render();
  uint64_t series_refused() const { return refused_.load(); }

 private:
  MetricsOptions o_;
  SnapshotFn snapshot_;
  HealthFn health_;
  std::mutex mu_;  // one scrape at a time; guards collectors_
  std::vector<CollectFn> collectors_;
  std::atomic<uint64_t> refused_{0}, scrapes_{0};
};

class MetricsServer {
 public:
  explicit MetricsServer(MetricsRegistry& reg);
  ~MetricsServer();
  // Binds (errors name the address) and serves GET /metrics on a thread.
  Status start(const std::string& listen);
  void stop();
  uint16_t port() const { return port_; }

 private:
  MetricsRegistry& reg_;
  std::unique_ptr<httplib::Server> srv_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace hostscope::exporters
