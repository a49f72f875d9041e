#include "agent/cluster/series.h"

#include <charconv>
#include <chrono>
#include <cmath>
#include <deque>
#include <functional>
#include <future>
#include <set>
#include <tuple>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/net.h"

namespace hostscope::cluster {

const std::vector<std::string> kCounterFamilies = {
    "hostscope_connections_opened_total",        "hostscope_connections_closed_total",
    "hostscope_connection_resets_total",         "hostscope_connection_sent_bytes_total",
    "hostscope_connection_received_bytes_total", "hostscope_connection_retransmits_total",
    "hostscope_connections_failed_total",
};

std::string end_query(const std::string& family, const std::string& window) {
  return fmt::format("last_over_time({}[{}])", family, window);
}
std::string start_query(const std::string& family, const std::string& window) {
  return fmt::format("{} offset {}", family, window);
}

namespace {

// Appends "<size>:<text>": keys built of such fields are equal only when every field is.
void append_field(std::string& key, const std::string& text) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, text.size());
  key.append(digits, end);
  key += ':';
  key += text;
}

// A series' label set without __name__, as one string (the match of window_delta).
std::string label_set_key(const Sample& s) {
  std::string k;
  for (const auto& [n, v] : s.labels)
    if (n != "__name__") {
      append_field(k, n);
      append_field(k, v);
    }
  return k;
}

}  // namespace

StartValues start_values(const std::vector<Sample>& start) {
  StartValues at_start;
  at_start.reserve(start.size());
  for (const auto& s : start) at_start.emplace(label_set_key(s), s.value);
  return at_start;
}

std::vector<Sample> window_delta(std::vector<Sample> end, const std::vector<Sample>& start) {
  return window_delta(std::move(end), start_values(start));
}

std::vector<Sample> window_delta(std::vector<Sample> end, const StartValues& at_start) {
  for (auto& e : end)
    if (auto it = at_start.find(label_set_key(e)); it != at_start.end() && e.value >= it->second) e.value -= it->second;
  return end;
}

namespace {

// Canonical text of an address label, or "" when it is not an IP address.
std::string canonical_addr(const std::string& s) {
  auto a = IpAddr::parse(s);
  return a ? a->str() : std::string();
}

const std::string* label(const Sample& s, const char* name) {
  auto it = s.labels.find(name);
  return it == s.labels.end() ? nullptr : &it->second;
}
std::string label_or_empty(const Sample& s, const char* name) {
  const auto* v = label(s, name);
  return v ? *v : std::string();
}

EndLabels end_labels(const Sample& s, const std::string& service, const char* ns, const char* addr) {
  EndLabels e{service, label_or_empty(s, ns), canonical_addr(label_or_empty(s, addr))};
  if (e.address.empty()) e.address = canonical_addr(service);
  return e;
}

}  // namespace

Assembler::Assembler(std::string what, const std::vector<Sample>& build_info) : what_(std::move(what)) {
  for (const auto& s : build_info) {
    std::string node = label_or_empty(s, "node"), version = label_or_empty(s, "version");
    if (node.empty() || version.empty()) continue;  // not ours to judge: another job's build_info
    out_.versions[node] = version;
  }
}

// Prometheus drops empty labels, so only labels that are never empty can be required.
Result<std::string> Assembler::need(const Sample& s, const char* family, const char* name) const {
  if (const auto* v = label(s, name); v && !v->empty()) return *v;
  std::string node = label_or_empty(s, "node");
  auto ver = out_.versions.find(node);
  return errorf("{}: a {} series from node '{}' (hostscope {}) lacks the label '{}' the cluster view needs: is "
                "that agent older than this hostscope?",
                what_, family, node.empty() ? "?" : node, ver == out_.versions.end() ? "version unknown" : ver->second,
                name);
}

// The series of a topology sample: everything but the metric name and `reason`, plus the node.
Result<EdgeSeries*> Assembler::series_for(const Sample& s, const char* family) {
  // Every family repeats the same label values for an edge: once a series is known by them, its labels were checked
  // and its addresses made canonical, so a later sample with the same values is that series.
  static const char* const kIdentity[] = {"node",          "src_service", "src_namespace", "src_address",
                                          "dst_service",   "dst_namespace", "dst_address", "dst_port"};
  std::string raw;
  for (const char* name : kIdentity) {
    const auto* v = label(s, name);
    raw += v ? '+' : '-';  // absent and empty stay apart
    append_field(raw, v ? *v : std::string());
  }
  if (auto hit = by_raw_.find(raw); hit != by_raw_.end()) return &out_.edges[hit->second];
  auto node = need(s, family, "node");
  if (!node) return node.error();
  auto src = need(s, family, "src_service");
  if (!src) return src.error();
  auto dst = need(s, family, "dst_service");
  if (!dst) return dst.error();
  auto port_s = need(s, family, "dst_port");
  if (!port_s) return port_s.error();
  unsigned long port = 0;
  size_t used = 0;
  try {
    port = std::stoul(*port_s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != port_s->size() || port > 65535)
    return errorf("{}: a {} series from node '{}' has dst_port '{}', expected 0..65535", what_, family, *node, *port_s);
  EdgeSeries e{*node, end_labels(s, *src, "src_namespace", "src_address"),
               end_labels(s, *dst, "dst_namespace", "dst_address"), uint16_t(port), {}};
  SeriesId id{e.node, e.src.service, e.src.ns, e.src.address, e.dst.service, e.dst.ns, e.dst.address, e.port};
  auto [it, fresh] = by_id_.emplace(id, out_.edges.size());
  if (fresh) out_.edges.push_back(std::move(e));
  by_raw_.emplace(std::move(raw), it->second);
  return &out_.edges[it->second];
}

Status Assembler::counter(const std::string& family, const std::vector<Sample>& v) {
  static const std::map<std::string, double Counts::*> kFields = {
      {"hostscope_connections_opened_total", &Counts::opened},
      {"hostscope_connections_closed_total", &Counts::closed},
      {"hostscope_connection_resets_total", &Counts::resets},
      {"hostscope_connection_sent_bytes_total", &Counts::sent},
      {"hostscope_connection_received_bytes_total", &Counts::received},
      {"hostscope_connection_retransmits_total", &Counts::retransmits}};
  const bool failed = family == "hostscope_connections_failed_total";
  auto field = kFields.find(family);
  if (!failed && field == kFields.end()) return errorf("{}: {} is not a topology counter", what_, family);
  for (const auto& s : v) {
    auto e = series_for(s, family.c_str());
    if (!e) return e.error();
    if (!failed) {
      (*e)->counts.*(field->second) += s.value;
      continue;
    }
    auto reason = need(s, family.c_str(), "reason");
    if (!reason) return reason.error();
    if (s.value > 0) (*e)->counts.failed[*reason] += s.value;
  }
  return {};
}

Status Assembler::gauge(const std::vector<Sample>& v, const char* family, double Counts::*field) {
  for (const auto& s : v) {
    auto e = series_for(s, family);
    if (!e) return e.error();
    (*e)->counts.*field += s.value;
  }
  return {};
}

Status Assembler::endpoints(const std::vector<Sample>& now_list, const std::vector<Sample>& window_list) {
  using Key = std::tuple<std::string, std::string, std::string, std::string, std::string>;
  auto key_of = [](const Sample& s, const std::string& addr, const std::string& node) {
    return Key{addr, label_or_empty(s, "service"), label_or_empty(s, "namespace"), label_or_empty(s, "pod"), node};
  };
  std::set<Key> now;
  for (const auto& s : now_list) now.insert(key_of(s, label_or_empty(s, "address"), label_or_empty(s, "node")));
  std::set<Key> seen;
  for (const auto* list : {&now_list, &window_list})
    for (const auto& s : *list) {
      auto addr = need(s, "hostscope_endpoint_info", "address");
      if (!addr) return addr.error();
      auto node = need(s, "hostscope_endpoint_info", "node");
      if (!node) return node.error();
      std::string canon = canonical_addr(*addr);
      if (canon.empty())
        return errorf("{}: a hostscope_endpoint_info series from node '{}' has address '{}', not an IP address", what_,
                      *node, *addr);
      auto key = key_of(s, *addr, *node);
      if (!seen.insert(key).second) continue;
      out_.endpoints.push_back({canon, label_or_empty(s, "service"), label_or_empty(s, "namespace"),
                                label_or_empty(s, "workload"), label_or_empty(s, "pod"), *node, now.count(key) > 0});
    }
  return {};
}

Result<ClusterSeries> assemble(const RawResults& raw, const std::string& what) {
  Assembler a(what, raw.build_info);
  // The families in a fixed order, failed last: errors name the same series whatever the map holds.
  for (const auto& f : kCounterFamilies)
    if (auto it = raw.counters.find(f); it != raw.counters.end())
      if (auto st = a.counter(f, it->second); !st) return st.error();
  if (auto st = a.gauge(raw.active, "hostscope_connections_active", &Counts::active); !st) return st.error();
  if (auto st = a.gauge(raw.open_rate, "hostscope_connections_opened_total", &Counts::open_rate); !st) return st.error();
  if (auto st = a.gauge(raw.byte_rate, "hostscope_connection_sent_bytes_total", &Counts::byte_rate); !st)
    return st.error();
  if (auto st = a.endpoints(raw.endpoints_now, raw.endpoints_window); !st) return st.error();
  return a.take();
}

namespace {

// The queries of collect(), in the order they are used, run `depth` at a time ahead of the one being used: while
// this process parses and assembles one reply, Prometheus is already evaluating the next ones, and at most `depth`
// replies wait in memory. A future still running when this is destroyed (an early error return) is waited for.
class QueryPipeline {
 public:
  using Reply = Result<std::vector<Sample>>;
  QueryPipeline(std::vector<std::string> queries, size_t depth, std::function<Reply(const std::string&)> run)
      : queries_(std::move(queries)), depth_(depth), run_(std::move(run)) {}
  Reply next() {
    top_up();
    auto reply = inflight_.front().get();
    inflight_.pop_front();
    top_up();
    return reply;
  }

 private:
  void top_up() {
    while (inflight_.size() < depth_ && next_ < queries_.size())
      inflight_.push_back(std::async(std::launch::async, run_, queries_[next_++]));
  }
  std::vector<std::string> queries_;
  size_t depth_, next_ = 0;
  std::function<Reply(const std::string&)> run_;
  std::deque<std::future<Reply>> inflight_;
};

}  // namespace

Result<ClusterSeries> collect(const Prometheus& prom, const CollectOptions& o, std::vector<std::string>& warnings) {
  auto run = [&](const std::string& q) -> Result<std::vector<Sample>> {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = prom.query(q, o.time_s);
    if (r)
      spdlog::debug("cluster: {} series in {:.0f} ms: {}", r->size(),
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), q);
    return r;
  };
  const std::string& w = o.window;
  std::vector<std::string> queries = {fmt::format("last_over_time(hostscope_build_info[{}])", w),
                                      "hostscope_endpoint_info",
                                      fmt::format("max_over_time(hostscope_endpoint_info[{}])", w)};
  for (const auto& f : kCounterFamilies) {
    queries.push_back(start_query(f, w));
    queries.push_back(end_query(f, w));
  }
  queries.push_back("hostscope_connections_active");
  if (!o.rate_window.empty()) {
    queries.push_back(fmt::format("rate(hostscope_connections_opened_total[{}])", o.rate_window));
    queries.push_back(fmt::format(
        "rate(hostscope_connection_sent_bytes_total[{0}]) + rate(hostscope_connection_received_bytes_total[{0}])",
        o.rate_window));
  }
  // Two at a time: a family's start and end are evaluated together (Prometheus on two cores), and the next family's
  // while this one is assembled; so at most two replies wait besides the one in use.
  QueryPipeline pipeline(std::move(queries), 2, run);

  auto build_info = pipeline.next();
  if (!build_info) return build_info.error();
  Assembler a(fmt::format("Prometheus {}", prom.url()), *build_info);
  bool any = !build_info->empty();
  {
    auto now = pipeline.next();
    if (!now) return now.error();
    auto window = pipeline.next();
    if (!window) return window.error();
    any = any || !now->empty() || !window->empty();
    if (auto st = a.endpoints(*now, *window); !st) return st.error();
  }
  for (const auto& f : kCounterFamilies) {
    StartValues at_start;
    {
      auto begun = pipeline.next();
      if (!begun) return begun.error();
      at_start = start_values(*begun);
    }  // the start reply is dropped here, before the end one is taken
    auto end = pipeline.next();
    if (!end) return end.error();
    any = any || !end->empty();
    if (auto st = a.counter(f, window_delta(std::move(*end), at_start)); !st) return st.error();
  }
  auto gauge = [&](const char* family, double Counts::*field) -> Status {
    auto v = pipeline.next();
    if (!v) return v.error();
    return a.gauge(*v, family, field);
  };
  if (auto st = gauge("hostscope_connections_active", &Counts::active); !st) return st.error();
  if (!o.rate_window.empty()) {
    if (auto st = gauge("hostscope_connections_opened_total", &Counts::open_rate); !st) return st.error();
    if (auto st = gauge("hostscope_connection_sent_bytes_total", &Counts::byte_rate); !st) return st.error();
  }
  if (!any)
    return errorf("no hostscope series in Prometheus at {} over the last {}: is it scraping the agents?", prom.url(), w);
  ClusterSeries out = a.take();
  std::set<std::string> versions;
  for (const auto& [node, v] : out.versions) versions.insert(v);
  if (versions.size() > 1) {
    std::string list;
    for (const auto& [node, v] : out.versions) list += fmt::format("{}{}={}", list.empty() ? "" : ", ", node, v);
    warnings.push_back(fmt::format("nodes run different hostscope versions ({}): the join assumes the same labels "
                                   "everywhere",
                                   list));
  }
  return out;
}

}  // namespace hostscope::cluster
