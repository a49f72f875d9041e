#pragma once
// What the cluster view reads from Prometheus, as plain values: every agent's topology series (one per edge and
// node) and its local endpoints (hostscope_endpoint_info), plus each node's agent version. collect() runs the
// queries; join.h turns these into one topology. Pure data, so the join is tested on fixtures.
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/cluster/prometheus.h"
#include "common/result.h"

namespace hostscope::cluster {

// One end of a series as its labels give it. `address` is the exact remote address: the `*_address` label, else
// `*_service` when it parses as an IP address (external ends of agents without the address labels); empty for a
// service end and a merged network end. Addresses are in canonical text form (IpAddr::str()).
struct EndLabels {
  std::string service, ns, address;
};

struct Counts {
  double opened = 0, closed = 0, resets = 0, active = 0, sent = 0, received = 0, retransmits = 0;
  std::map<std::string, double> failed;  // by reason
  double open_rate = 0, byte_rate = 0;   // per second (rate() over the rate window); top --cluster only
};

struct EdgeSeries {
  std::string node;  // the agent that counted it
  EndLabels src, dst;
  uint16_t port = 0;
  Counts counts;
};

struct EndpointInfo {
  std::string address;  // canonical text form
  std::string service, ns, workload, pod, node;
  bool current = false;  // present at the query time (else only earlier in the window)
};

struct ClusterSeries {
  std::vector<EdgeSeries> edges;
  std::vector<EndpointInfo> endpoints;
  std::map<std::string, std::string> versions;  // node -> hostscope_build_info{version}
};

struct CollectOptions {
  std::string window = "1h";       // counts over this window (a Prometheus duration: 30s, 15m, 1h, 1d)
  std::string rate_window;         // "": no rates; else open_rate/byte_rate by rate() over it
  double time_s = 0;               // evaluation time (seconds since the epoch)
};

// Turns query results into series, checking every label the join needs ("series ... from node N (hostscope V)
// lacks label L"). Fed one query's result at a time, so collect() keeps only the series (one copy of their labels)
// and not every reply: build info first (its versions name nodes in errors), then any order.
class Assembler {
 public:
  Assembler(std::string what, const std::vector<Sample>& build_info);
  // A counter family's counts over the window (hostscope_connections_failed_total carries `reason`).
  Status counter(const std::string& family, const std::vector<Sample>& v);
  Status gauge(const std::vector<Sample>& v, const char* family, double Counts::*field);
  // Endpoint info present now, and over the window (every owner it had).
  Status endpoints(const std::vector<Sample>& now, const std::vector<Sample>& window);
  ClusterSeries take() { return std::move(out_); }

 private:
  using SeriesId = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string,
                              std::string, uint16_t>;
  Result<EdgeSeries*> series_for(const Sample& s, const char* family);
  Result<std::string> need(const Sample& s, const char* family, const char* name) const;
  std::string what_;
  ClusterSeries out_;
  std::map<SeriesId, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_raw_;  // the identity labels as sent -> index in out_.edges
};

// Every result at once (the unit tests' fixtures): the Assembler over them.
struct RawResults {
  std::map<std::string, std::vector<Sample>> counters;  // family name (e.g. "hostscope_connections_opened_total")
  std::vector<Sample> active;
  std::vector<Sample> open_rate, byte_rate;
  std::vector<Sample> endpoints_window, endpoints_now;
  std::vector<Sample> build_info;
};
Result<ClusterSeries> assemble(const RawResults& raw, const std::string& what);

// The exact count of a counter over the window from its value at the end (`last_over_time(M[W])`, so an edge that
// stopped inside the window still counts) and at the start (`M offset W`), series matched on their labels without
// `__name__`: end - start, or end when the series was not there at the start (an edge born inside the window) or
// went down (a counter reset: agent restart, edge expiry). PromQL's `(last_over_time(M[W]) - M offset W) >= 0 or
// last_over_time(M[W])` answers the same but costs Prometheus about twice as much; increase() would extrapolate
// and drop the first sample of a series born inside the window.
std::vector<Sample> window_delta(std::vector<Sample> end, const std::vector<Sample>& start);
// The same in two steps, so the start reply can be dropped before the end one is read: its values by label set, and
// the delta against them.
using StartValues = std::unordered_map<std::string, double>;
StartValues start_values(const std::vector<Sample>& start);
std::vector<Sample> window_delta(std::vector<Sample> end, const StartValues& at_start);
std::string end_query(const std::string& family, const std::string& window);
std::string start_query(const std::string& family, const std::string& window);

// Runs every query at o.time_s and assembles the result. An empty result is an error naming the URL and window.
// Warnings (nodes on different agent versions) go to `warnings`.
Result<ClusterSeries> collect(const Prometheus& prom, const CollectOptions& o, std::vector<std::string>& warnings);

// The counter families read (hostscope_connections_failed_total carries `reason`).
extern const std::vector<std::string> kCounterFamilies;

}  // namespace hostscope::cluster
