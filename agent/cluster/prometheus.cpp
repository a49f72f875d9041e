#include "agent/cluster/prometheus.h"

#include <cmath>
#include <optional>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/json_nesting.h"

namespace hostscope::cluster {

namespace {

using json = nlohmann::json;

constexpr int kMaxReplyDepth = 8;  // data.result[i].metric / .value nest 4 deep

// Prometheus writes sample values as strings: "1", "0.5", "NaN", "+Inf".
bool parse_value(const std::string& s, double& out) {
  if (s.empty() || s.size() > 64) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && std::isfinite(out);
}

// Reads a /api/v1/query reply as it streams through nlohmann's SAX parser, building the samples directly: no JSON
// document of the whole reply is held (a 100,000-series reply is ~20 MB of text and several times that as a
// document). It only records what it saw; parse_query_reply judges the reply at the end, in the order a document
// would be checked, so the errors do not depend on the order of the keys.
class ReplyReader : public nlohmann::json_sax<json> {
 public:
  explicit ReplyReader(size_t max_series) : max_series_(max_series) {}

  bool null() override { return scalar(Scalar::Other); }
  bool boolean(bool) override { return scalar(Scalar::Other); }
  bool number_integer(number_integer_t) override { return scalar(Scalar::Number); }
  bool number_unsigned(number_unsigned_t) override { return scalar(Scalar::Number); }
  bool number_float(number_float_t, const string_t&) override { return scalar(Scalar::Number); }
  bool binary(binary_t&) override { return scalar(Scalar::Other); }
  bool string(string_t& v) override { return scalar(Scalar::String, &v); }
  bool start_object(std::size_t) override { return open(true); }
  bool start_array(std::size_t) override { return open(false); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (stack_.back().ctx == Ctx::Metric) {
      label_ = std::move(k);
      if (++labels_ > kMaxLabels) element_error("metric: too many labels");
    } else {
      stack_.back().key = std::move(k);
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

  // What the reply held.
  bool root_is_object = false;
  std::optional<std::string> status, error_type, error_text;  // set when present as strings
  enum class Part { Missing, Bad, Ok } data = Part::Missing, result = Part::Missing;
  std::optional<std::string> result_type;
  size_t series = 0;                    // elements of data.result
  std::string first_element_error;      // "data.result[i]: why" of the first bad element
  std::vector<Sample> samples;          // the good elements, up to max_series

 private:
  enum class Ctx { Top, Data, Result, Element, Metric, Value, Skip };
  enum class Scalar { String, Number, Other };
  struct Frame {
    Ctx ctx;
    std::string key;  // the key whose value comes next (Top, Data, Element)
  };

  void element_error(const char* why) {
    if (element_ok_ && first_element_error.empty()) first_element_error = fmt::format("data.result[{}]: {}", series - 1, why);
    element_ok_ = false;
  }

  bool open(bool object) {
    if (stack_.empty()) {
      root_is_object = object;
      stack_.push_back({object ? Ctx::Top : Ctx::Skip, {}});
      return true;
    }
    Frame& parent = stack_.back();
    Ctx ctx = Ctx::Skip;
    switch (parent.ctx) {
      case Ctx::Top:
        if (parent.key == "data") {
          data = object ? Part::Ok : Part::Bad;
          if (object) ctx = Ctx::Data;
        }
        break;
      case Ctx::Data:
        if (parent.key == "result") {
          result = object ? Part::Bad : Part::Ok;
          if (!object) ctx = Ctx::Result;
        }
        break;
      case Ctx::Result:
        begin_element();
        if (object) ctx = Ctx::Element;
        else element_error("expected an object");
        break;
      case Ctx::Element:
        if (parent.key == "metric") {
          has_metric_ = object;
          if (object) ctx = Ctx::Metric;
        } else if (parent.key == "value") {
          has_value_ = !object;
          value_index_ = 0;
          value_ok_ = !object;
          if (!object) ctx = Ctx::Value;
        }
        break;
      case Ctx::Metric:
        element_error("metric: a label value is not a string");
        break;
      case Ctx::Value:
        value_ok_ = false;
        ++value_index_;
        break;
      case Ctx::Skip:
        break;
    }
    stack_.push_back({ctx, {}});
    return true;
  }

  bool close() {
    Ctx ctx = stack_.back().ctx;
    stack_.pop_back();
    if (ctx == Ctx::Element) end_element();
    if (ctx == Ctx::Value && value_index_ != 2) value_ok_ = false;
    return true;
  }

  bool scalar(Scalar kind, string_t* v = nullptr) {
    if (stack_.empty()) return true;  // a bare scalar: root_is_object stays false
    Frame& f = stack_.back();
    switch (f.ctx) {
      case Ctx::Top:
        if (f.key == "status") {
          if (kind == Scalar::String) status = std::move(*v);
        } else if (f.key == "errorType" && kind == Scalar::String) {
          error_type = v->substr(0, 1000);
        } else if (f.key == "error" && kind == Scalar::String) {
          error_text = v->substr(0, 1000);
        } else if (f.key == "data") {
          data = Part::Bad;
        }
        break;
      case Ctx::Data:
        if (f.key == "resultType" && kind == Scalar::String) result_type = std::move(*v);
        else if (f.key == "result") result = Part::Bad;
        break;
      case Ctx::Result:
        begin_element();
        element_error("expected an object");
        break;
      case Ctx::Element:
        if (f.key == "metric") {
          has_metric_ = false;
        } else if (f.key == "value") {
          has_value_ = true;
          value_ok_ = false;
        }
        break;
      case Ctx::Metric:
        if (kind != Scalar::String) element_error("metric: a label value is not a string");
        else if (element_ok_ && samples.size() < max_series_ && label_ != "__name__")
          sample_.labels.emplace(std::move(label_), std::move(*v));
        break;
      case Ctx::Value:
        if (value_index_ == 0) value_ok_ = value_ok_ && kind == Scalar::Number;
        else if (value_index_ == 1) value_ok_ = value_ok_ && kind == Scalar::String && parse_value(*v, sample_.value);
        else value_ok_ = false;
        ++value_index_;
        break;
      case Ctx::Skip:
        break;
    }
    return true;
  }

  void begin_element() {
    ++series;
    element_ok_ = true;
    has_metric_ = has_value_ = value_ok_ = false;
    labels_ = 0;
    sample_ = Sample{};
  }
  void end_element() {
    if (!has_metric_) element_error("metric: missing or not an object");
    if (!has_value_ || !value_ok_) element_error("value: expected [time, \"finite number\"]");
    if (element_ok_ && samples.size() < max_series_) samples.push_back(std::move(sample_));
  }

  size_t max_series_;
  std::vector<Frame> stack_;
  Sample sample_;
  std::string label_;
  size_t labels_ = 0;
  bool element_ok_ = false, has_metric_ = false, has_value_ = false, value_ok_ = false;
  int value_index_ = 0;
};

}  // namespace

Result<std::vector<Sample>> parse_query_reply(std::string_view body, int http_status, const std::string& what,
                                              const PromLimits& limits) {
  if (body.size() > limits.max_bytes)
    return errorf("{}: reply of {} bytes is over the {} byte limit", what, body.size(), limits.max_bytes);
  if (!json_nesting_within(body, kMaxReplyDepth))
    return errorf("{}: reply nested deeper than {} levels: not a Prometheus API reply", what, kMaxReplyDepth);
  ReplyReader r(limits.max_series);
  bool parsed = json::sax_parse(body, &r);
  if (!parsed || !r.root_is_object) {
    if (http_status != 200) return errorf("{}: HTTP {}: {}", what, http_status, std::string(body.substr(0, 200)));
    return errorf("{}: the reply is not a JSON object: not a Prometheus API reply", what);
  }
  if (!r.status)
    return errorf("{}: HTTP {}: the reply has no status: not a Prometheus API reply", what, http_status);
  if (*r.status == "error")
    return errorf("{}: Prometheus error ({}): {}", what, r.error_type.value_or("?"), r.error_text.value_or("?"));
  if (*r.status != "success") return errorf("{}: HTTP {}: unknown status in the reply", what, http_status);
  if (http_status != 200) return errorf("{}: HTTP {} with a success reply", what, http_status);
  if (r.data != ReplyReader::Part::Ok) return errorf("{}: data: missing or not an object", what);
  if (!r.result_type) return errorf("{}: data.resultType: missing", what);
  if (*r.result_type != "vector")
    return errorf("{}: data.resultType is '{}', expected an instant vector", what, *r.result_type);
  if (r.result != ReplyReader::Part::Ok) return errorf("{}: data.result: missing or not an array", what);
  if (r.series > limits.max_series)
    return errorf("{}: {} series is over the limit of {}", what, r.series, limits.max_series);
  if (!r.first_element_error.empty()) return errorf("{}: {}", what, r.first_element_error);
  return std::move(r.samples);
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
