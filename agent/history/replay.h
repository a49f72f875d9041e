#pragma once
// `hostscope top --replay A`: the stored topology stepped through from A, one step per refresh. Each step adds the
// rows that start within it to running totals, so two consecutive snapshots differ by what happened in that step
// (the live view's per-second rates come out per step) and counts are totals since A, as the live view's are since
// an edge was first seen. A row wider than the step (rolled up to 10 min or 1 h) lands whole in the step where it
// starts. Memory is one merged row per distinct edge seen so far (bounded by what the store holds).
#include <cstdint>
#include <map>
#include <string>

#include "agent/history/record.h"
#include "agent/history/store.h"
#include "common/result.h"
#include "common/topology_model.h"

namespace hostscope::history {

class Replay {
 public:
  Replay(Store store, uint64_t from_ns, uint64_t to_ns, uint64_t step_ns)
      : store_(std::move(store)), from_(from_ns), cursor_(from_ns), to_(to_ns), step_(step_ns ? step_ns : kMinuteNs) {}

  // The first call returns the empty topology at from_ns (the start: a viewer's first step then has rates); every
  // later call adds the next step and returns the totals at its end (taken_ns). At the end (to_ns reached) nothing
  // more is added and the last totals come back again.
  Result<topology::TopologySnapshot> next();
  bool done() const { return cursor_ >= to_; }
  uint64_t at_ns() const { return cursor_; }  // end of the last step added (from_ns before the first)
  const std::string& path() const { return store_.path(); }

 private:
  Store store_;
  uint64_t from_, cursor_, to_, step_;
  bool started_ = false;
  std::map<std::string, IntervalRow> totals_;
};

}  // namespace hostscope::history
