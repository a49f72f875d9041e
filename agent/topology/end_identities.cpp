#include "agent/topology/end_identities.h"

#include <algorithm>
#include <functional>

namespace hostscope::topology {

size_t EndIdentities::KeyHash::operator()(const Key& k) const noexcept {
  const std::hash<std::string_view> h;
  return h(k.workload) * 0x9e3779b97f4a7c15ull ^ h(k.go_module);
}

EndIdentities::EndIdentities(size_t max_entries) : max_(std::min(max_entries, kMaxEntries)) {}

void EndIdentities::assign(Id& slot, const std::shared_ptr<const EndIdentity>& ident) {
  if (slot) {
    const auto& current = entries_[slot - 1].ident;
    if (ident && (current == ident || *current == *ident)) return;
  } else if (!ident || ident->empty()) {
    return;
  }
  // Released first: the last end of a pair moving to the next one (a rollout) frees its place in a full table.
  release(slot);
  slot = acquire(ident);
}

void EndIdentities::release(Id& slot) {
  if (!slot) return;
  Entry& e = entries_[slot - 1];
  if (--e.refs == 0) {
    index_.erase(Key{e.ident->workload, e.ident->go_module});
    e.ident.reset();
    free_.push_back(slot);
  }
  slot = 0;
}

EndIdentities::Id EndIdentities::acquire(const std::shared_ptr<const EndIdentity>& ident) {
  if (!ident || ident->empty()) return 0;
  if (auto it = index_.find(Key{ident->workload, ident->go_module}); it != index_.end()) {
    ++entries_[it->second - 1].refs;
    return it->second;
  }
  if (index_.size() >= max_) {
    ++dropped_;
    return 0;
  }
  Id id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    entries_.emplace_back();
    id = Id(entries_.size());
  }
  Entry& e = entries_[id - 1];
  e.ident = ident;
  e.refs = 1;
  index_.emplace(Key{e.ident->workload, e.ident->go_module}, id);
  return id;
}

}  // namespace hostscope::topology
