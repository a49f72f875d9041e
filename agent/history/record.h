#pragma once
// What the history stores per edge and interval, how it is taken from two topology snapshots (the delta of one
// interval) and how rows are added up again (roll-up, queries) into the topology model the live path produces.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/topology_model.h"

namespace hostscope::history {

// Connect-latency buckets as the topology model exports them (kLatencyExportBoundsUs): bucket i < 19 holds the
// samples in [bound[i-1], bound[i]) (bucket 0 from 0), the last one the samples at or above 4194304 us.
inline constexpr size_t kLatencyBuckets = topology::kLatencyExportBoundsUs.size() + 1;

// One edge in one interval. The identity is the edge's as the model has it (kind, service, namespace, pod,
// address, workload and Go module of each end, port, protocol, DNAT destination); counts are what happened within the
// interval.
struct IntervalRow {
  uint64_t start_ns = 0, end_ns = 0;
  topology::EdgeEnd client, server;
  uint16_t port = 0;
  topology::Protocol protocol = topology::Protocol::Tcp;
  std::string dialed;
  uint64_t connections = 0, closed = 0;
  uint64_t failed_refused = 0, failed_timed_out = 0, failed_other = 0;
  uint64_t resets = 0;
  uint64_t active = 0;  // open at the end of the interval (a gauge, not a count)
  uint64_t bytes_sent = 0, bytes_received = 0;
  uint64_t retransmits = 0;
  uint32_t srtt_us = 0;  // the edge's smoothed RTT at the end of the interval
  uint64_t latency_sum_us = 0;
  std::array<uint64_t, kLatencyBuckets> latency{};  // per bucket, not cumulative
  uint64_t first_seen_ns = 0, last_seen_ns = 0;
  std::vector<topology::AnomalyFlag> anomalies;  // flags raised or extended within the interval
  bool operator==(const IntervalRow&) const = default;

  uint64_t latency_samples() const;
  // Nothing happened and nothing is open: not worth a row.
  bool idle() const;
};

// The rows of the interval [start_ns, end_ns) from the snapshots at its start (`prev`, empty for the first) and
// its end (`cur`); both taken with SnapshotFilter::latency_buckets. An edge whose first_seen changed was removed
// and created again in between: its counts start from zero, so the whole of `cur` is the interval's.
std::vector<IntervalRow> interval_rows(const topology::TopologySnapshot& prev, const topology::TopologySnapshot& cur,
                                       uint64_t start_ns, uint64_t end_ns);

// Adds `b` (a later or equal interval of the same edge) into `a`: counts and buckets add up, `active`, `srtt_us`
// and the pod/address/workload/Go module attributes are the later row's, first/last seen widen, flags merge by reason.
void merge_row(IntervalRow& a, const IntervalRow& b);

// The edge as the topology model shows it (rows already merged into one).
topology::EdgeSnapshot to_edge(const IntervalRow& r);
// Quantile of the stored buckets: the bucket's midpoint (within a factor of two: the buckets are powers of two).
uint64_t bucket_quantile(const std::array<uint64_t, kLatencyBuckets>& b, double q);

// The edge key as text (node ids, port, protocol): rows of one edge merge under it whatever pod, workload or Go module
// version was last seen.
std::string edge_key(const IntervalRow& r);

}  // namespace hostscope::history
