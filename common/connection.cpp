#include "common/connection.h"

#include <cstring>

namespace hostscope::events {

std::string_view to_string(Kind k) { return k == Kind::Open ? "open" : "close"; }

std::string_view to_string(Role r) {
  switch (r) {
    case Role::Active: return "active";
    case Role::Passive: return "passive";
    default: return "unknown";
  }
}

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::Closed: return "closed";
    case Outcome::ResetSent: return "reset_sent";
    case Outcome::ResetReceived: return "reset_received";
    case Outcome::Refused: return "refused";
    case Outcome::TimedOut: return "timed_out";
    case Outcome::Failed: return "failed";
    default: return "";
  }
}

std::optional<Outcome> outcome_from_string(std::string_view s) {
  for (auto o : {Outcome::Closed, Outcome::ResetSent, Outcome::ResetReceived, Outcome::Refused, Outcome::TimedOut,
                 Outcome::Failed})
    if (to_string(o) == s) return o;
  return std::nullopt;
}

std::string_view ConnectionEvent::comm_view() const { return std::string_view(comm.data(), strnlen(comm.data(), comm.size())); }

}  // namespace hostscope::events
