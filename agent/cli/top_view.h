#pragma once
// The model behind `hostscope top`: rows computed from two successive topology snapshots (rates), sorted and
// filtered. Pure functions, so the view logic is unit-tested without a terminal.
#include <functional>
#include <string>
#include <vector>

#include "common/topology_model.h"

namespace hostscope::cli {

enum class SortKey { Rate, Bytes, Failures, Latency };
std::string_view to_string(SortKey k);

struct TopRow {
  std::string client, server;  // "ns/service" or service
  uint16_t port = 0;
  double conn_per_s = 0;
  double bytes_per_s = 0;  // both directions
  uint64_t connections = 0, active = 0, failed = 0, resets = 0;
  uint64_t p50_us = 0, p99_us = 0;
  uint32_t srtt_us = 0;
  std::string flags;  // anomalies, NAT
};

struct TopQuery {
  SortKey sort = SortKey::Rate;
  std::string filter;  // substring of client or server (service or namespace), or an exact port number
};

// Rates an edge already has (top --cluster: Prometheus rate()), instead of the difference from `prev`.
using RateLookup = std::function<void(const topology::EdgeSnapshot& e, double& conn_per_s, double& bytes_per_s)>;

std::vector<TopRow> build_rows(const topology::TopologySnapshot* prev, const topology::TopologySnapshot& cur,
                               const TopQuery& q, const RateLookup& rates = {});
std::string human_bytes(double b);
// Plain-text table (used when stdout is not a terminal, and by the full-screen view's body).
std::vector<std::string> format_rows(const std::vector<TopRow>& rows, size_t width);
std::string header_line(size_t width);

}  // namespace hostscope::cli
