#pragma once
// Connection events by kind and outcome, for hostscope_events_total. count() runs in the kernel reader thread
// (a pipeline subscriber): relaxed atomics only. counts() hands them to the exporter as plain values.
#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "agent/events/connection.h"
#include "exporters/agent_metrics.h"

namespace hostscope::daemon {

class EventCounter {
 public:
  void count(std::span<const events::ConnectionEvent> batch);
  uint64_t get(events::Kind k, events::Outcome o) const;
  // Non-zero counts: open before close, outcomes in enum order (outcome None is written "none").
  std::vector<exporters::EventCount> counts() const;

 private:
  static constexpr size_t kOutcomes = 8;
  std::array<std::atomic<uint64_t>, 2 * kOutcomes> n_{};
};

}  // namespace hostscope::daemon
