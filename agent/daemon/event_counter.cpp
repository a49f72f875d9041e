#include "agent/daemon/event_counter.h"

namespace hostscope::daemon {

void EventCounter::count(std::span<const events::ConnectionEvent> batch) {
  for (auto& e : batch) {
    size_t k = e.kind == events::Kind::Open ? 0 : 1, o = size_t(e.outcome) % kOutcomes;
    n_[k * kOutcomes + o].fetch_add(1, std::memory_order_relaxed);
  }
}

uint64_t EventCounter::get(events::Kind k, events::Outcome o) const {
  size_t ki = k == events::Kind::Open ? 0 : 1;
  return n_[ki * kOutcomes + size_t(o) % kOutcomes].load(std::memory_order_relaxed);
}

std::vector<exporters::EventCount> EventCounter::counts() const {
  std::vector<exporters::EventCount> out;
  for (auto k : {events::Kind::Open, events::Kind::Close})
    for (size_t o = 0; o <= size_t(events::Outcome::Failed); ++o) {
      uint64_t n = get(k, events::Outcome(o));
      if (!n) continue;
      std::string_view outcome = o == 0 ? std::string_view("none") : events::to_string(events::Outcome(o));
      out.push_back({std::string(events::to_string(k)), std::string(outcome), n});
    }
  return out;
}

}  // namespace hostscope::daemon
