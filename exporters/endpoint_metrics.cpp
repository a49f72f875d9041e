#include "exporters/endpoint_metrics.h"

namespace hostscope::exporters {

size_t write_endpoint_info(Exposition& out, const std::vector<EndpointInfo>& endpoints, std::string_view node,
                           size_t max_series) {
  out.family("hostscope_endpoint_info", "gauge",
             "An address of this node (service empty) or of a local pod or container, with its owner");
  size_t n = std::min(endpoints.size(), max_series);
  for (size_t i = 0; i < n; i++) {
    const auto& e = endpoints[i];
    out.sample("hostscope_endpoint_info",
               {{"address", e.address}, {"service", e.service}, {"namespace", e.k8s_namespace},
                {"workload", e.workload}, {"pod", e.pod}, {"node", node}},
               uint64_t{1});
  }
  out.family("hostscope_endpoint_info_refused", "gauge", "Endpoint series left out by the cap in this scrape");
  out.sample("hostscope_endpoint_info_refused", {}, uint64_t(endpoints.size() - n));
  return n;
}

}  // namespace hostscope::exporters
