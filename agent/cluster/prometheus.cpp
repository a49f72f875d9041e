#include "agent/cluster/prometheus.h"

#include <cmath>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace hostscope::cluster {

namespace {

using json = nlohmann::json;

constexpr int kMaxReplyDepth = 8;  // data.result[i].metric / .value nest 4 deep

// Prometheus writes sample values as strings: "1", "0.5", "NaN", "+Inf".
bool parse_value(const json& v, double& out) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 64) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

}  // namespace

Result<std::vector<Sample>> parse_query_reply(std::string_view body, int http_status, const std::string& what,
                                              const PromLimits& limits) {
  if (body.size() > limits.max_bytes)
    return errorf("{}: reply of {} bytes is over the {} byte limit", what, body.size(), limits.max_bytes);
  if (!json_nesting_within(body, kMaxReplyDepth))
    return errorf("{}: reply nested deeper than {} levels: not a Prometheus API reply", what, kMaxReplyDepth);
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (http_status != 200) return errorf("{}: HTTP {}: {}", what, http_status, std::string(body.substr(0, 200)));
    return errorf("{}: the reply is not a JSON object: not a Prometheus API reply", what);
  }
  auto status = j.find("status");
  if (status == j.end() || !status->is_string())
    return errorf("{}: HTTP {}: the reply has no status: not a Prometheus API reply", what, http_status);
  if (*status == "error") {
    auto text = [&](const char* k) {
      auto it = j.find(k);
      return it != j.end() && it->is_string() ? it->get<std::string>().substr(0, 1000) : std::string("?");
    };
    return errorf("{}: Prometheus error ({}): {}", what, text("errorType"), text("error"));
  }
  if (*status != "success") return errorf("{}: HTTP {}: unknown status in the reply", what, http_status);
  if (http_status != 200) return errorf("{}: HTTP {} with a success reply", what, http_status);
  auto data = j.find("data");
  if (data == j.end() || !data->is_object()) return errorf("{}: data: missing or not an object", what);
  auto type = data->find("resultType");
  if (type == data->end() || !type->is_string()) return errorf("{}: data.resultType: missing", what);
  if (*type != "vector") return errorf("{}: data.resultType is '{}', expected an instant vector", what, type->get<std::string>());
  auto result = data->find("result");
  if (result == data->end() || !result->is_array()) return errorf("{}: data.result: missing or not an array", what);
  if (result->size() > limits.max_series)
    return errorf("{}: {} series is over the limit of {}", what, result->size(), limits.max_series);
  std::vector<Sample> out;
  out.reserve(result->size());
  for (size_t i = 0; i < result->size(); ++i) {
    const json& r = (*result)[i];
    auto bad = [&](const char* why) { return errorf("{}: data.result[{}]: {}", what, i, why); };
    if (!r.is_object()) return bad("expected an object");
    auto metric = r.find("metric");
    if (metric == r.end() || !metric->is_object()) return bad("metric: missing or not an object");
    if (metric->size() > kMaxLabels) return bad("metric: too many labels");
    Sample s;
    for (auto it = metric->begin(); it != metric->end(); ++it) {
      if (!it.value().is_string()) return bad("metric: a label value is not a string");
      s.labels.emplace(it.key(), it.value().get<std::string>());
    }
    auto value = r.find("value");
    if (value == r.end() || !value->is_array() || value->size() != 2 || !(*value)[0].is_number() ||
        !parse_value((*value)[1], s.value))
      return bad("value: expected [time, \"finite number\"]");
    out.push_back(std::move(s));
  }
  return out;
}

Result<PromUrl> parse_prom_url(const std::string& url) {
  const std::string http = "http://";
  if (url.rfind("https://", 0) == 0)
    return errorf("Prometheus URL {}: https is not supported by this build (cpp-httplib without TLS); use http, "
                  "e.g. through a local proxy",
                  url);
  if (url.rfind(http, 0) != 0) return errorf("Prometheus URL {}: expected http://host:port[/path]", url);
  std::string rest = url.substr(http.size());
  auto slash = rest.find('/');
  std::string host = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (host.empty() || host.find_first_of("?#@ ") != std::string::npos || prefix.find_first_of("?# ") != std::string::npos)
    return errorf("Prometheus URL {}: expected http://host:port[/path]", url);
  return PromUrl{http + host, prefix};
}

Result<Prometheus> Prometheus::open(const std::string& url, const PromLimits& limits) {
  auto p = parse_prom_url(url);
  if (!p) return p.error();
  return Prometheus(url, std::move(*p), limits);
}

Result<std::vector<Sample>> Prometheus::query(const std::string& promql, double time_s) const {
  const std::string what = fmt::format("Prometheus {} query '{}'", url_, promql);
  httplib::Client cli(parsed_.origin);
  cli.set_connection_timeout(limits_.connect_timeout_s, 0);
  cli.set_read_timeout(limits_.read_timeout_s, 0);
  httplib::Params params{{"query", promql}, {"time", fmt::format("{:.3f}", time_s)}};
  std::string body;
  bool too_big = false;
  auto res = cli.Get(parsed_.prefix + "/api/v1/query", params, httplib::Headers{{"Accept", "application/json"}},
                     [&](const char* data, size_t n) {
                       if (body.size() + n > limits_.max_bytes) {
                         too_big = true;
                         return false;
                       }
                       body.append(data, n);
                       return true;
                     });
  if (too_big) return errorf("{}: reply is over the {} byte limit", what, limits_.max_bytes);
  if (!res) {
    auto err = res.error();
    std::string why = err == httplib::Error::Connection ? "unreachable (connection refused or no route)"
                      : err == httplib::Error::ConnectionTimeout ? "unreachable (connect timed out)"
                      : err == httplib::Error::Read             ? "no complete reply (read failed or timed out)"
                                                                : httplib::to_string(err);
    return errorf("{}: {}", what, why);
  }
  return parse_query_reply(body, res->status, what, limits_);
}

}  // namespace hostscope::cluster
