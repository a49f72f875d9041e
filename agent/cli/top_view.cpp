#include "agent/cli/top_view.h"

#include "agent/topology/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

namespace hostscope::cli {

std::string_view to_string(SortKey k) {
  switch (k) {
    case SortKey::Bytes: return "bytes";
    case SortKey::Failures: return "failures";
    case SortKey::Latency: return "latency";
    default: return "rate";
  }
}


std::vector<TopRow> build_rows(const topology::TopologySnapshot* prev, const topology::TopologySnapshot& cur,
                               const TopQuery& q, const RateLookup& rates) {
  using Key = std::tuple<std::string, std::string, uint16_t>;
  std::map<Key, const topology::EdgeSnapshot*> before;
  double dt = 0;
  if (prev && cur.taken_ns > prev->taken_ns) {
    dt = double(cur.taken_ns - prev->taken_ns) / 1e9;
    for (auto& e : prev->edges) before[{topology::node_id(e.client), topology::node_id(e.server), e.port}] = &e;
  }
  std::vector<TopRow> rows;
  for (auto& e : cur.edges) {
    TopRow r;
    r.client = topology::display_name(e.client);
    r.server = topology::display_name(e.server);
    r.port = e.port;
    if (!q.filter.empty()) {
      bool port_match = q.filter == std::to_string(e.port);
      if (!port_match && r.client.find(q.filter) == std::string::npos && r.server.find(q.filter) == std::string::npos)
        continue;
    }
    r.connections = e.connections;
    r.active = e.active;
    r.failed = e.failed_total();
    r.resets = e.resets;
    r.p50_us = e.latency.p50_us;
    r.p99_us = e.latency.p99_us;
    r.srtt_us = e.srtt_us;
    if (rates) {
      rates(e, r.conn_per_s, r.bytes_per_s);
    } else if (dt > 0) {
      auto it = before.find({topology::node_id(e.client), topology::node_id(e.server), e.port});
      uint64_t c0 = 0, b0 = 0;
      if (it != before.end()) {
        c0 = it->second->connections + it->second->failed_total();
        b0 = it->second->bytes_sent + it->second->bytes_received;
      }
      uint64_t c1 = e.connections + e.failed_total(), b1 = e.bytes_sent + e.bytes_received;
      r.conn_per_s = c1 >= c0 ? double(c1 - c0) / dt : 0;
      r.bytes_per_s = b1 >= b0 ? double(b1 - b0) / dt : 0;
    }
    for (auto& a : e.anomalies) r.flags += (r.flags.empty() ? "" : ",") + a.reason;
    if (!e.dialed.empty()) r.flags += (r.flags.empty() ? "" : ",") + std::string("dnat:") + e.dialed;
    if (!e.policy.empty()) r.flags += (r.flags.empty() ? "" : ",") + std::string("policy:") + e.policy;
    if (e.address_reused) r.flags += (r.flags.empty() ? "" : ",") + std::string("address-reused");
    rows.push_back(std::move(r));
  }
  auto key = [&](const TopRow& r) -> double {
    switch (q.sort) {
      case SortKey::Bytes: return r.bytes_per_s + 1e-9 * double(r.connections);
      case SortKey::Failures: return double(r.failed + r.resets);
      case SortKey::Latency: return double(r.p99_us);
      default: return r.conn_per_s + 1e-9 * double(r.connections);
    }
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const TopRow& a, const TopRow& b) { return key(a) > key(b); });
  return rows;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{:.0f}{}", b, units[u]) : fmt::format("{:.1f}{}", b, units[u]);
}

static std::string fit(const std::string& s, size_t w) { return s.size() <= w ? s : s.substr(0, w - 1) + "~"; }

std::string header_line(size_t width) {
  size_t name_w = width > 100 ? (width - 76) / 2 : 12;
  return fmt::format("{:<{}} {:<{}} {:>5} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {}", "CLIENT", name_w, "SERVER",
                     name_w, "PORT", "CONN/S", "BYTES/S", "TOTAL", "ACTIVE", "FAIL", "RST", "P50_US", "P99_US", "FLAGS");
}

std::vector<std::string> format_rows(const std::vector<TopRow>& rows, size_t width) {
  size_t name_w = width > 100 ? (width - 76) / 2 : 12;
  std::vector<std::string> out;
  out.reserve(rows.size());
  for (auto& r : rows)
    out.push_back(fmt::format("{:<{}} {:<{}} {:>5} {:>8.1f} {:>8} {:>7} {:>6} {:>6} {:>6} {:>7} {:>7} {}",
                              fit(r.client, name_w), name_w, fit(r.server, name_w), name_w, r.port, r.conn_per_s,
                              human_bytes(r.bytes_per_s), r.connections, r.active, r.failed, r.resets, r.p50_us,
                              r.p99_us, r.flags));
  return out;
}

}  // namespace hostscope::cli
