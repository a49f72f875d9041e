#pragma once
// The live store's table of edge-end identities (docs/topology.md, "Workload and Go module in memory"): each distinct
// (workload, Go module) pair that some edge end shows is kept once, with the number of edge ends showing it, and an
// edge end keeps only the pair's 2-byte id (which fits in padding EdgeState had anyway: no edge grows).
// Entries share the process table's EndIdentity (no copy of the strings); an entry goes when the last edge end
// showing it moves to another pair or is removed. Bounded: a new pair while max_entries are in use is not kept, the
// end shows none, and the attempt is counted (dropped(); the store's `identities_dropped`).
// Not thread-safe: the topology store calls it under its lock.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/topology_model.h"

namespace hostscope::topology {

class EndIdentities {
 public:
  using Id = uint16_t;                          // 0: none (neither known, or not kept)
  static constexpr size_t kMaxEntries = 65535;  // what an Id can name; a larger bound is lowered to it

  explicit EndIdentities(size_t max_entries);

  // Points `slot` at the pair of `ident` (0 for null or an empty pair), moving its reference from the pair it showed.
  // The common case, the same pair again, costs a pointer or two string comparisons and no lookup.
  void assign(Id& slot, const std::shared_ptr<const EndIdentity>& ident);
  // Drops the reference `slot` holds (an edge end going away) and sets it to 0.
  void release(Id& slot);
  // The pair `id` names; null for 0.
  const EndIdentity* get(Id id) const { return id ? entries_[id - 1].ident.get() : nullptr; }
  // Edge ends showing `id` (0 for 0).
  uint32_t refs(Id id) const { return id ? entries_[id - 1].refs : 0; }

  size_t size() const { return index_.size(); }  // pairs in use
  size_t capacity() const { return max_; }
  uint64_t dropped() const { return dropped_; }  // pairs not kept because the table was full (each attempt)

 private:
  struct Key {
    std::string_view workload, go_module;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Entry {
    std::shared_ptr<const EndIdentity> ident;  // null while free
    uint32_t refs = 0;
  };
  Id acquire(const std::shared_ptr<const EndIdentity>& ident);

  size_t max_;
  std::vector<Entry> entries_;                  // entries_[id - 1]; grows up to max_
  std::vector<Id> free_;                        // ids of free entries
  std::unordered_map<Key, Id, KeyHash> index_;  // views of the entries' own strings
  uint64_t dropped_ = 0;
};

}  // namespace hostscope::topology
