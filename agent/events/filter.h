#pragma once
// Filters of `hostscope connections`. An empty filter matches everything.
#include <cstdint>
#include <string>
#include <vector>

#include "common/connection.h"

namespace hostscope::events {

struct ConnectionFilter {
  std::vector<uint32_t> pids;   // owner pid
  std::string comm;             // exact owner comm
  std::vector<uint16_t> ports;  // local or remote port
  bool failed_only = false;     // refused, timed out, failed, or ended by a reset
  bool opens = false;           // also show open events

  bool match(const ConnectionEvent& e) const;
};

bool is_failure(Outcome o);

}  // namespace hostscope::events
