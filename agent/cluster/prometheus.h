#pragma once
// A small client of the Prometheus HTTP API (instant queries, GET /api/v1/query) for the cluster view. The reply is
// untrusted input: its size and series count are bounded and every field is checked before use; errors name the
// URL and the query.
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hostscope::cluster {

inline constexpr size_t kMaxReplyBytes = 256u << 20;  // one query's reply body
inline constexpr size_t kMaxSeries = 4'000'000;       // series in one query's result
inline constexpr size_t kMaxLabels = 64;               // labels on one series

struct PromLimits {
  size_t max_bytes = kMaxReplyBytes;
  size_t max_series = kMaxSeries;
  int connect_timeout_s = 5;
  int read_timeout_s = 60;
};

// One series of an instant vector: its labels and its value. `__name__` is left out when a reply is read (every
// caller knows the family it asked for; a hundred thousand copies of the name are megabytes).
struct Sample {
  std::map<std::string, std::string> labels;
  double value = 0;
};

// The body of a /api/v1/query reply (HTTP status `http_status`). `what` names the request in errors
// ("Prometheus http://p:9090 query 'up'"). A `status: error` reply gives Prometheus's errorType and error; a result
// that is not an instant vector, a value that is not a finite number, and bodies or results over the limits are errors.
Result<std::vector<Sample>> parse_query_reply(std::string_view body, int http_status, const std::string& what,
                                              const PromLimits& limits = {});

// "http://host:port" with an optional path prefix ("http://host/prometheus"); https is refused (this build's
// cpp-httplib has no TLS).
struct PromUrl {
  std::string origin;  // scheme://host:port for httplib
  std::string prefix;  // path before /api/v1, no trailing slash
};
Result<PromUrl> parse_prom_url(const std::string& url);

class Prometheus {
 public:
  Prometheus(std::string url, PromUrl parsed, PromLimits limits)
      : url_(std::move(url)), parsed_(std::move(parsed)), limits_(limits) {}
  static Result<Prometheus> open(const std::string& url, const PromLimits& limits = {});

  // Evaluates `promql` at `time_s` (seconds since the epoch).
  Result<std::vector<Sample>> query(const std::string& promql, double time_s) const;
  const std::string& url() const { return url_; }

 private:
  std::string url_;
  PromUrl parsed_;
  PromLimits limits_;
};

}  // namespace hostscope::cluster
