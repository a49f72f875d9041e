#pragma once
// Decoding of a raw TCP lifecycle event (bpf/tcp_lifecycle.h) into its user-space form, common/connection.h.
#include <cstdint>

#include "common/connection.h"

struct hs_tcp_event;

namespace hostscope::events {

// Decodes a raw kernel event; `realtime_offset_ns` converts CLOCK_MONOTONIC to wall-clock.
ConnectionEvent decode(const hs_tcp_event& raw, int64_t realtime_offset_ns);

}  // namespace hostscope::events
