#include "agent/cluster/series.h"

#include <chrono>
#include <cmath>
#include <set>
#include <tuple>

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

std::string counter_query(const std::string& family, const std::string& window) {
  // The exact count over the window: the value at its end minus the value at its start; a series absent at the start
  // (a new edge) or reset inside the window (agent restart, edge expiry) counts from 0. increase() would extrapolate
  // and drop the first sample of a series born inside the window.
  return fmt::format("(last_over_time({0}[{1}]) - {0} offset {1}) >= 0 or last_over_time({0}[{1}])", family, window);
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

// The identity of a topology series: everything but the metric name and `reason`, plus the node.
using SeriesId = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, std::string,
                            uint16_t>;

struct Checker {
  const std::string& what;
  const std::map<std::string, std::string>& versions;

  // Prometheus drops empty labels, so only labels that are never empty can be required.
  Result<std::string> need(const Sample& s, const char* family, const char* name) const {
    if (const auto* v = label(s, name); v && !v->empty()) return *v;
    std::string node = label_or_empty(s, "node");
    auto ver = versions.find(node);
    return errorf("{}: a {} series from node '{}' (hostscope {}) lacks the label '{}' the cluster view needs: is "
                  "that agent older than this hostscope?",
                  what, family, node.empty() ? "?" : node, ver == versions.end() ? "version unknown" : ver->second, name);
  }
};

EndLabels end_labels(const Sample& s, const std::string& service, const char* ns, const char* addr) {
  EndLabels e{service, label_or_empty(s, ns), canonical_addr(label_or_empty(s, addr))};
  if (e.address.empty()) e.address = canonical_addr(service);
  return e;
}

}  // namespace

Result<ClusterSeries> assemble(const RawResults& raw, const std::string& what) {
  ClusterSeries out;
  for (const auto& s : raw.build_info) {
    std::string node = label_or_empty(s, "node"), version = label_or_empty(s, "version");
    if (node.empty() || version.empty()) continue;  // not ours to judge: another job's build_info
    out.versions[node] = version;
  }
  Checker check{what, out.versions};
  std::map<SeriesId, size_t> by_id;
  auto series_for = [&](const Sample& s, const char* family) -> Result<EdgeSeries*> {
    auto node = check.need(s, family, "node");
    if (!node) return node.error();
    auto src = check.need(s, family, "src_service");
    if (!src) return src.error();
    auto dst = check.need(s, family, "dst_service");
    if (!dst) return dst.error();
    auto port_s = check.need(s, family, "dst_port");
    if (!port_s) return port_s.error();
    unsigned long port = 0;
    size_t used = 0;
    try {
      port = std::stoul(*port_s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != port_s->size() || port > 65535)
      return errorf("{}: a {} series from node '{}' has dst_port '{}', expected 0..65535", what, family, *node, *port_s);
    EdgeSeries e{*node, end_labels(s, *src, "src_namespace", "src_address"),
                 end_labels(s, *dst, "dst_namespace", "dst_address"), uint16_t(port), {}};
    SeriesId id{e.node, e.src.service, e.src.ns, e.src.address, e.dst.service, e.dst.ns, e.dst.address, e.port};
    auto [it, fresh] = by_id.emplace(id, out.edges.size());
    if (fresh) out.edges.push_back(std::move(e));
    return &out.edges[it->second];
  };
  struct Field {
    const char* family;
    double Counts::*field;
  };
  const Field fields[] = {{"hostscope_connections_opened_total", &Counts::opened},
                          {"hostscope_connections_closed_total", &Counts::closed},
                          {"hostscope_connection_resets_total", &Counts::resets},
                          {"hostscope_connection_sent_bytes_total", &Counts::sent},
                          {"hostscope_connection_received_bytes_total", &Counts::received},
                          {"hostscope_connection_retransmits_total", &Counts::retransmits}};
  for (const auto& f : fields) {
    auto it = raw.counters.find(f.family);
    if (it == raw.counters.end()) continue;
    for (const auto& s : it->second) {
      auto e = series_for(s, f.family);
      if (!e) return e.error();
      (*e)->counts.*f.field += s.value;
    }
  }
  if (auto it = raw.counters.find("hostscope_connections_failed_total"); it != raw.counters.end())
    for (const auto& s : it->second) {
      auto e = series_for(s, "hostscope_connections_failed_total");
      if (!e) return e.error();
      auto reason = check.need(s, "hostscope_connections_failed_total", "reason");
      if (!reason) return reason.error();
      if (s.value > 0) (*e)->counts.failed[*reason] += s.value;
    }
  auto gauge = [&](const std::vector<Sample>& v, const char* family, double Counts::*field) -> Status {
    for (const auto& s : v) {
      auto e = series_for(s, family);
      if (!e) return e.error();
      (*e)->counts.*field += s.value;
    }
    return {};
  };
  if (auto st = gauge(raw.active, "hostscope_connections_active", &Counts::active); !st) return st.error();
  if (auto st = gauge(raw.open_rate, "hostscope_connections_opened_total", &Counts::open_rate); !st) return st.error();
  if (auto st = gauge(raw.byte_rate, "hostscope_connection_sent_bytes_total", &Counts::byte_rate); !st) return st.error();

  std::set<std::tuple<std::string, std::string, std::string, std::string, std::string>> now;
  for (const auto& s : raw.endpoints_now)
    now.emplace(label_or_empty(s, "address"), label_or_empty(s, "service"), label_or_empty(s, "namespace"),
                label_or_empty(s, "pod"), label_or_empty(s, "node"));
  std::set<std::tuple<std::string, std::string, std::string, std::string, std::string>> seen;
  for (const auto* list : {&raw.endpoints_now, &raw.endpoints_window})
    for (const auto& s : *list) {
      auto addr = check.need(s, "hostscope_endpoint_info", "address");
      if (!addr) return addr.error();
      auto node = check.need(s, "hostscope_endpoint_info", "node");
      if (!node) return node.error();
      std::string canon = canonical_addr(*addr);
      if (canon.empty())
        return errorf("{}: a hostscope_endpoint_info series from node '{}' has address '{}', not an IP address", what,
                      *node, *addr);
      auto key = std::make_tuple(*addr, label_or_empty(s, "service"), label_or_empty(s, "namespace"),
                                 label_or_empty(s, "pod"), *node);
      if (!seen.insert(key).second) continue;
      out.endpoints.push_back({canon, label_or_empty(s, "service"), label_or_empty(s, "namespace"),
                               label_or_empty(s, "workload"), label_or_empty(s, "pod"), *node, now.count(key) > 0});
    }
  return out;
}

Result<ClusterSeries> collect(const Prometheus& prom, const CollectOptions& o, std::vector<std::string>& warnings) {
  RawResults raw;
  auto run = [&](const std::string& q, std::vector<Sample>& into) -> Status {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = prom.query(q, o.time_s);
    if (!r) return r.error();
    into = std::move(*r);
    spdlog::debug("cluster: {} series in {:.0f} ms: {}", into.size(),
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), q);
    return {};
  };
  const std::string& w = o.window;
  if (auto st = run(fmt::format("last_over_time(hostscope_build_info[{}])", w), raw.build_info); !st) return st.error();
  for (const auto& f : kCounterFamilies)
    if (auto st = run(counter_query(f, w), raw.counters[f]); !st) return st.error();
  if (auto st = run("hostscope_connections_active", raw.active); !st) return st.error();
  if (auto st = run("hostscope_endpoint_info", raw.endpoints_now); !st) return st.error();
  if (auto st = run(fmt::format("max_over_time(hostscope_endpoint_info[{}])", w), raw.endpoints_window); !st)
    return st.error();
  if (!o.rate_window.empty()) {
    if (auto st = run(fmt::format("rate(hostscope_connections_opened_total[{}])", o.rate_window), raw.open_rate); !st)
      return st.error();
    const std::string bytes = fmt::format(
        "rate(hostscope_connection_sent_bytes_total[{0}]) + rate(hostscope_connection_received_bytes_total[{0}])",
        o.rate_window);
    if (auto st = run(bytes, raw.byte_rate); !st) return st.error();
  }
  bool any = !raw.build_info.empty() || !raw.endpoints_window.empty() || !raw.endpoints_now.empty();
  for (const auto& [f, v] : raw.counters) any = any || !v.empty();
  if (!any)
    return errorf("no hostscope series in Prometheus at {} over the last {}: is it scraping the agents?", prom.url(), w);
  auto out = assemble(raw, fmt::format("Prometheus {}", prom.url()));
  if (!out) return out.error();
  std::set<std::string> versions;
  for (const auto& [node, v] : out->versions) versions.insert(v);
  if (versions.size() > 1) {
    std::string list;
    for (const auto& [node, v] : out->versions) list += fmt::format("{}{}={}", list.empty() ? "" : ", ", node, v);
    warnings.push_back(fmt::format("nodes run different hostscope versions ({}): the join assumes the same labels "
                                   "everywhere",
                                   list));
  }
  return out;
}

}  // namespace hostscope::cluster
