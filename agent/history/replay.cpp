#include "agent/history/replay.h"

#include <algorithm>

namespace hostscope::history {

Result<topology::TopologySnapshot> Replay::next() {
  if (!started_) {
    started_ = true;
    topology::TopologySnapshot start;
    start.taken_ns = from_;
    return start;
  }
  if (!done()) {
    const uint64_t end = std::min(to_, cursor_ + step_);
    auto rs = store_.rows(cursor_, end);
    if (!rs) return rs.error();
    for (auto& r : *rs) {
      if (r.start_ns < cursor_) continue;  // started in an earlier step (counted there) or before from_ns
      auto [it, fresh] = totals_.try_emplace(edge_key(r), r);
      if (!fresh) merge_row(it->second, r);
    }
    cursor_ = end;
  }
  topology::TopologySnapshot s;
  s.taken_ns = cursor_;
  for (const auto& [_, r] : totals_) s.edges.push_back(to_edge(r));
  topology::canonicalize(s);
  return s;
}

}  // namespace hostscope::history
