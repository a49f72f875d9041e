#include "exporters/topology_metrics.h"

#include <algorithm>
#include <map>
#include <tuple>


namespace hostscope::exporters {

std::string end_name(const topology::EdgeEnd& e) {
  if (e.kind == topology::NodeKind::External) return e.address.empty() ? std::string("external") : e.address;
  return e.service;
}

std::string end_address(const topology::EdgeEnd& e) {
  if (e.kind == topology::NodeKind::External) return e.address == "*" ? std::string() : e.address;  // "*": overflow
  return e.exact_address ? e.address : std::string();
}

namespace {

// The label set of an edge: src service, namespace, address, dst service, namespace, address, port. Two store edges
// can map to one label set (a service and a network with the same name); their counts are summed so no series is
// written twice. The addresses are part of it: two addresses of one network never share a series.
using SeriesKey = std::tuple<std::string, std::string, std::string, std::string, std::string, std::string, uint16_t>;

struct Row {
  uint64_t first_seen_ns = UINT64_MAX;
  uint64_t opened = 0, closed = 0, resets = 0, active = 0, sent = 0, received = 0, retransmits = 0;
  std::map<std::string, uint64_t> failed;
  std::vector<uint64_t> buckets;  // cumulative, kLatencyExportBoundsUs
  uint64_t lat_sum_us = 0, lat_count = 0;

  void add(const topology::EdgeSnapshot& e) {
    first_seen_ns = std::min(first_seen_ns, e.first_seen_ns);
    opened += e.connections;
    closed += e.closed;
    resets += e.resets;
    active += e.active;
    sent += e.bytes_sent;
    received += e.bytes_received;
    retransmits += e.retransmits;
    for (auto& [r, n] : e.failed) failed[r] += n;
    if (!e.latency_buckets.empty()) {
      buckets.resize(e.latency_buckets.size(), 0);
      for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += e.latency_buckets[i];
      lat_sum_us += e.latency_sum_us;
      lat_count += e.latency.samples;
    }
  }
  uint64_t series() const {
    return 7 + failed.size() + (lat_count ? topology::kLatencyExportBoundsUs.size() + 3 : 0);
  }
};

struct Family {
  const char* name;
  const char* type;
  const char* help;
  uint64_t Row::*field;
};

constexpr Family kFamilies[] = {
    {"hostscope_connections_opened_total", "counter", "Established TCP connections on the edge.", &Row::opened},
    {"hostscope_connections_closed_total", "counter", "Established TCP connections on the edge that ended.",
     &Row::closed},
    {"hostscope_connection_resets_total", "counter", "Established connections ended by a reset (either way).",
     &Row::resets},
    {"hostscope_connections_active", "gauge", "Connections on the edge open now.", &Row::active},
    {"hostscope_connection_sent_bytes_total", "counter", "Payload bytes sent client to server.", &Row::sent},
    {"hostscope_connection_received_bytes_total", "counter", "Payload bytes sent server to client.",
     &Row::received},
    {"hostscope_connection_retransmits_total", "counter", "TCP segments retransmitted on the edge's connections.",
     &Row::retransmits},
};

}  // namespace

TopologyExportStats write_topology(Exposition& out, const topology::TopologySnapshot& snap, const std::string& node,
                                   uint64_t max_series) {
  std::map<SeriesKey, Row> rows;
  for (auto& e : snap.edges)
    rows[{end_name(e.client), e.client.ns, end_address(e.client), end_name(e.server), e.server.ns, end_address(e.server),
          e.port}]
        .add(e);

  // Oldest edges first: under the cap, the series that already exist keep being exported.
  std::vector<std::pair<const SeriesKey*, const Row*>> order;
  order.reserve(rows.size());
  for (auto& [k, r] : rows) order.emplace_back(&k, &r);
  std::stable_sort(order.begin(), order.end(),
                   [](auto& a, auto& b) { return a.second->first_seen_ns < b.second->first_seen_ns; });
  TopologyExportStats st;
  std::vector<std::pair<const SeriesKey*, const Row*>> kept;
  for (auto& kr : order) {
    uint64_t n = kr.second->series();
    if (st.series + n > max_series) {
      st.series_refused += n;
      continue;
    }
    st.series += n;
    kept.push_back(kr);
  }
  st.edges = kept.size();
  std::sort(kept.begin(), kept.end(), [](auto& a, auto& b) { return *a.first < *b.first; });

  std::vector<std::string> ports;
  ports.reserve(kept.size());
  for (auto& [k, r] : kept) ports.push_back(std::to_string(std::get<6>(*k)));
  auto labels = [&](size_t i) {
    auto& k = *kept[i].first;
    return Labels{{"src_service", std::get<0>(k)}, {"src_namespace", std::get<1>(k)}, {"src_address", std::get<2>(k)},
                  {"dst_service", std::get<3>(k)}, {"dst_namespace", std::get<4>(k)}, {"dst_address", std::get<5>(k)},
                  {"dst_port", ports[i]},          {"node", node}};
  };
  for (auto& f : kFamilies) {
    out.family(f.name, f.type, f.help);
    for (size_t i = 0; i < kept.size(); ++i) out.sample(f.name, labels(i), kept[i].second->*f.field);
  }
  out.family("hostscope_connections_failed_total", "counter",
             "Connect attempts on the edge that never established, by reason.");
  for (size_t i = 0; i < kept.size(); ++i)
    for (auto& [reason, n] : kept[i].second->failed) {
      auto l = labels(i);
      l.emplace_back("reason", reason);
      out.sample("hostscope_connections_failed_total", l, n);
    }
  out.family("hostscope_connect_duration_seconds", "histogram",
             "Time from SYN sent to established, for connections this node opened.");
  std::vector<double> bounds;
  bounds.reserve(std::size(topology::kLatencyExportBoundsUs));
  for (auto us : topology::kLatencyExportBoundsUs) bounds.push_back(double(us) / 1e6);
  for (size_t i = 0; i < kept.size(); ++i) {
    auto& r = *kept[i].second;
    if (!r.lat_count) continue;
    out.histogram("hostscope_connect_duration_seconds", labels(i), bounds, r.buckets, double(r.lat_sum_us) / 1e6,
                  r.lat_count);
  }
  return st;
}

}  // namespace hostscope::exporters
