#include "agent/history/record.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

namespace hostscope::history {

namespace {

uint64_t sub(uint64_t cur, uint64_t prev) { return cur > prev ? cur - prev : 0; }

std::string snapshot_key(const topology::EdgeSnapshot& e) {
  return fmt::format("{}>{}:{}/{}", topology::node_id(e.client), topology::node_id(e.server), e.port,
                     topology::to_string(e.protocol));
}

// Per-bucket counts from the snapshot's cumulative "samples below bound" and its total.
std::array<uint64_t, kLatencyBuckets> buckets_of(const topology::EdgeSnapshot& e) {
  std::array<uint64_t, kLatencyBuckets> b{};
  uint64_t below = 0;
  for (size_t i = 0; i + 1 < kLatencyBuckets; ++i) {
    uint64_t cum = i < e.latency_buckets.size() ? e.latency_buckets[i] : below;
    b[i] = sub(cum, below);
    below = std::max(below, cum);
  }
  b[kLatencyBuckets - 1] = sub(e.latency.samples, below);
  return b;
}

void merge_flags(std::vector<topology::AnomalyFlag>& into, const std::vector<topology::AnomalyFlag>& from) {
  for (const auto& f : from) {
    auto it = std::find_if(into.begin(), into.end(), [&](const auto& g) { return g.reason == f.reason; });
    if (it == into.end()) {
      into.push_back(f);
      continue;
    }
    // The same flag seen in two intervals (extended) counts its windows once; different flags add up.
    if (f.first_ns != it->first_ns) it->windows += f.windows;
    else it->windows = std::max(it->windows, f.windows);
    it->first_ns = std::min(it->first_ns, f.first_ns);
    if (f.last_ns >= it->last_ns) {
      it->last_ns = f.last_ns;
      it->value = f.value;
      it->baseline = f.baseline;
    }
  }
}

}  // namespace

uint64_t IntervalRow::latency_samples() const {
  uint64_t n = 0;
  for (auto c : latency) n += c;
  return n;
}

bool IntervalRow::idle() const {
  return connections == 0 && closed == 0 && failed_refused == 0 && failed_timed_out == 0 && failed_other == 0 &&
         resets == 0 && active == 0 && bytes_sent == 0 && bytes_received == 0 && retransmits == 0 &&
         latency_samples() == 0 && anomalies.empty();
}

std::string edge_key(const IntervalRow& r) {
  return fmt::format("{}>{}:{}/{}", topology::node_id(r.client), topology::node_id(r.server), r.port,
                     topology::to_string(r.protocol));
}

std::vector<IntervalRow> interval_rows(const topology::TopologySnapshot& prev, const topology::TopologySnapshot& cur,
                                       uint64_t start_ns, uint64_t end_ns) {
  std::map<std::string, const topology::EdgeSnapshot*> before;
  for (const auto& e : prev.edges) before.emplace(snapshot_key(e), &e);
  std::vector<IntervalRow> rows;
  rows.reserve(cur.edges.size());
  for (const auto& e : cur.edges) {
    static const topology::EdgeSnapshot kNone{};
    const topology::EdgeSnapshot* p = &kNone;
    if (auto it = before.find(snapshot_key(e)); it != before.end() && it->second->first_seen_ns == e.first_seen_ns)
      p = it->second;
    IntervalRow r;
    r.start_ns = start_ns;
    r.end_ns = end_ns;
    r.client = e.client;
    r.server = e.server;
    r.port = e.port;
    r.protocol = e.protocol;
    r.dialed = e.dialed;
    r.connections = sub(e.connections, p->connections);
    r.closed = sub(e.closed, p->closed);
    for (const auto& [reason, n] : e.failed) {
      auto was = p->failed.count(reason) ? p->failed.at(reason) : 0;
      uint64_t d = sub(n, was);
      if (reason == "refused") r.failed_refused += d;
      else if (reason == "timed_out") r.failed_timed_out += d;
      else r.failed_other += d;
    }
    r.resets = sub(e.resets, p->resets);
    r.active = e.active;
    r.bytes_sent = sub(e.bytes_sent, p->bytes_sent);
    r.bytes_received = sub(e.bytes_received, p->bytes_received);
    r.retransmits = sub(e.retransmits, p->retransmits);
    r.srtt_us = e.srtt_us;
    r.latency_sum_us = sub(e.latency_sum_us, p->latency_sum_us);
    auto now_b = buckets_of(e), was_b = buckets_of(*p);
    for (size_t i = 0; i < kLatencyBuckets; ++i) r.latency[i] = sub(now_b[i], was_b[i]);
    r.first_seen_ns = e.first_seen_ns;
    r.last_seen_ns = e.last_seen_ns;
    for (const auto& f : e.anomalies)
      if (f.last_ns >= start_ns) r.anomalies.push_back(f);
    // An edge the interval did not touch (only still listed) is left out unless a connection on it is open.
    if (r.idle() || (e.last_seen_ns < start_ns && r.active == 0)) continue;
    rows.push_back(std::move(r));
  }
  return rows;
}

void merge_row(IntervalRow& a, const IntervalRow& b) {
  a.start_ns = std::min(a.start_ns, b.start_ns);
  a.end_ns = std::max(a.end_ns, b.end_ns);
  if (b.last_seen_ns >= a.last_seen_ns) {
    a.client = b.client;
    a.server = b.server;
    if (!b.dialed.empty()) a.dialed = b.dialed;
    a.active = b.active;
    if (b.srtt_us) a.srtt_us = b.srtt_us;
  }
  a.connections += b.connections;
  a.closed += b.closed;
  a.failed_refused += b.failed_refused;
  a.failed_timed_out += b.failed_timed_out;
  a.failed_other += b.failed_other;
  a.resets += b.resets;
  a.bytes_sent += b.bytes_sent;
  a.bytes_received += b.bytes_received;
  a.retransmits += b.retransmits;
  a.latency_sum_us += b.latency_sum_us;
  for (size_t i = 0; i < kLatencyBuckets; ++i) a.latency[i] += b.latency[i];
  a.first_seen_ns = a.first_seen_ns && b.first_seen_ns ? std::min(a.first_seen_ns, b.first_seen_ns)
                                                      : std::max(a.first_seen_ns, b.first_seen_ns);
  a.last_seen_ns = std::max(a.last_seen_ns, b.last_seen_ns);
  merge_flags(a.anomalies, b.anomalies);
}

uint64_t bucket_quantile(const std::array<uint64_t, kLatencyBuckets>& b, double q) {
  uint64_t total = 0;
  for (auto c : b) total += c;
  if (total == 0) return 0;
  uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(total))));
  uint64_t seen = 0;
  const auto& bounds = topology::kLatencyExportBoundsUs;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    seen += b[i];
    if (seen < rank) continue;
    if (i + 1 == kLatencyBuckets) return bounds.back();
    uint64_t lo = i == 0 ? 0 : bounds[i - 1];
    return (lo + bounds[i] - 1) / 2;
  }
  return bounds.back();
}

topology::EdgeSnapshot to_edge(const IntervalRow& r) {
  topology::EdgeSnapshot e;
  e.client = r.client;
  e.server = r.server;
  e.port = r.port;
  e.protocol = r.protocol;
  e.connections = r.connections;
  e.closed = r.closed;
  if (r.failed_refused) e.failed["refused"] = r.failed_refused;
  if (r.failed_timed_out) e.failed["timed_out"] = r.failed_timed_out;
  if (r.failed_other) e.failed["failed"] = r.failed_other;
  e.resets = r.resets;
  e.active = r.active;
  e.bytes_sent = r.bytes_sent;
  e.bytes_received = r.bytes_received;
  e.latency = {r.latency_samples(), bucket_quantile(r.latency, 0.50), bucket_quantile(r.latency, 0.90),
               bucket_quantile(r.latency, 0.99)};
  e.srtt_us = r.srtt_us;
  e.retransmits = r.retransmits;
  e.first_seen_ns = r.first_seen_ns;
  e.last_seen_ns = r.last_seen_ns;
  e.dialed = r.dialed;
  e.anomalies = r.anomalies;
  return e;
}

}  // namespace hostscope::history
