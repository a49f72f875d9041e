// libFuzzer: a Prometheus /api/v1/query reply as `topology --cluster` reads it (untrusted: any server at the URL
// the user gave), through the reply parser, the series assembly (label checks) and the cluster join. Bad replies
// must come back as errors, never as a crash, another exception, or a hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/cluster/join.h"
#include "agent/cluster/prometheus.h"
#include "agent/cluster/series.h"

using namespace hostscope::cluster;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  PromLimits limits;
  limits.max_bytes = 1 << 20;
  limits.max_series = 10'000;
  auto samples = parse_query_reply(std::string_view(reinterpret_cast<const char*>(data), size), 200, "fuzz", limits);
  if (!samples) return 0;
  // The same series as edges, endpoints and build info: whatever labels they carry, assembly checks them.
  RawResults raw;
  raw.counters["hostscope_connections_opened_total"] = window_delta(*samples, *samples);
  raw.counters["hostscope_connections_failed_total"] = *samples;
  raw.active = *samples;
  raw.endpoints_now = *samples;
  raw.endpoints_window = *samples;
  raw.build_info = *samples;
  auto series = assemble(raw, "fuzz");
  if (!series) return 0;
  (void)join(*series, 1'700'000'000'000'000'000ull);
  return 0;
}
