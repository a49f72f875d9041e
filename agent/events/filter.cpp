#include "agent/events/filter.h"

#include <algorithm>

namespace hostscope::events {

bool is_failure(Outcome o) {
  return o == Outcome::Refused || o == Outcome::TimedOut || o == Outcome::Failed || o == Outcome::ResetSent ||
         o == Outcome::ResetReceived;
}

bool ConnectionFilter::match(const ConnectionEvent& e) const {
  if (e.kind == Kind::Open && (!opens || failed_only)) return false;
  if (failed_only && !is_failure(e.outcome)) return false;
  if (!pids.empty() && std::find(pids.begin(), pids.end(), e.pid) == pids.end()) return false;
  if (!comm.empty() && e.comm_view() != comm) return false;
  if (!ports.empty() && std::none_of(ports.begin(), ports.end(), [&](uint16_t p) { return p == e.sport || p == e.dport; }))
    return false;
  return true;
}

}  // namespace hostscope::events
