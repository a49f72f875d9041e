#pragma once
// This node's local endpoints for Prometheus: one `hostscope_endpoint_info{address, service, namespace, workload,
// pod, node} 1` series per address of a local pod or container, and one per node address (service, namespace,
// workload and pod empty), so a query can name an address by the node and workload that own it (docs/metrics.md).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "exporters/exposition.h"

namespace hostscope::exporters {

struct EndpointInfo {
  std::string address, service, k8s_namespace, workload, pod;
};

// Writes the family and `hostscope_endpoint_info_refused` (series left out by `max_series` in this scrape).
// Returns the number of series written.
size_t write_endpoint_info(Exposition& out, const std::vector<EndpointInfo>& endpoints, std::string_view node,
                           size_t max_series);

}  // namespace hostscope::exporters
