#pragma once
// The topology history on the node (docs/topology.md, "History"): one SQLite file in WAL mode holding, per edge and
// interval, what the live topology counted. Minute rows roll up into 10-minute rows after 24 h and those into 1-hour
// rows after 7 days; rows older than the retention go, and when the file's used pages exceed max_bytes the oldest
// rows go first. Closed 10-minute buckets of the minute rows are also kept added up per edge (summaries, written by
// maintain() and dropped with the rows they add up), so a long window reads a row per edge and 10 minutes. Both evictions are counted in the file itself, so `hostscope history status` shows them.
// Times are passed in (ns since the epoch, UTC) so tests run on a fake clock.
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/history/record.h"
#include "agent/history/sqlite.h"
#include "common/result.h"
#include "common/topology_model.h"

namespace hostscope::history {

inline constexpr int kSchemaVersion = 4;
inline constexpr uint64_t kMinuteNs = 60'000'000'000ull;
inline constexpr uint64_t kHourNs = 60 * kMinuteNs;
inline constexpr uint64_t kDayNs = 24 * kHourNs;

struct StoreOptions {
  uint64_t retention_ns = 7 * kDayNs;
  uint64_t max_bytes = 256ull << 20;
};

// One resolution of the store: rows `width_ns` wide, rolled up into the next tier once they end `rollup_after_ns`
// before now (0: never).
struct Tier {
  uint64_t width_ns;
  uint64_t rollup_after_ns;
};
inline constexpr Tier kTiers[] = {{kMinuteNs, kDayNs}, {10 * kMinuteNs, 7 * kDayNs}, {kHourNs, 0}};
inline constexpr size_t kLastTier = std::size(kTiers) - 1;

struct StoreStatus {
  std::string path;
  int schema_version = 0;
  uint64_t file_bytes = 0;  // the database file plus its WAL
  uint64_t used_bytes = 0;  // pages in use (what max_bytes bounds)
  uint64_t rows = 0;
  std::map<uint64_t, uint64_t> rows_by_width;  // interval width (ns) -> rows
  uint64_t summary_rows = 0;                   // 10-minute summaries of recent minutes (not in `rows`)
  uint64_t edges = 0;                          // distinct edge identities referenced
  uint64_t oldest_ns = 0, newest_ns = 0;       // start of the oldest row, end of the newest
  std::map<std::string, uint64_t> counters;    // rows_written, rows_evicted_age, ..., last_write_ns
};

class Store {
 public:
  // Read-write (the agent's writer): creates the file, migrates an older schema, refuses a newer one untouched.
  // Read-only (the CLI): never creates or changes anything.
  static Result<Store> open(const std::string& path, const StoreOptions& o, bool read_only);

  // Stores one interval's rows (all with the same start/end) and the time of the write.
  Status write(const std::vector<IntervalRow>& rows, uint64_t now_ns);
  // Retention by age, then roll-up, then the size bound. Safe to call after every write.
  Status maintain(uint64_t now_ns);
  // Adds to a counter kept in the file (the writer's dropped intervals).
  Status add_counter(const std::string& name, uint64_t delta);

  // Rows overlapping [from_ns, to_ns), oldest first: the rows as stored (minute rows where there are, no summaries).
  Result<std::vector<IntervalRow>> rows(uint64_t from_ns, uint64_t to_ns);
  // The topology of [from_ns, to_ns): every edge with rows there, added up, in the model the live path produces. A
  // summarized bucket wholly inside the window is read as its summaries, which add up to the same.
  Result<topology::TopologySnapshot> topology(uint64_t from_ns, uint64_t to_ns);
  Result<StoreStatus> status();
  // PRAGMA integrity_check: "ok" or what SQLite found.
  Result<std::string> integrity_check();

  const std::string& path() const { return db_->path(); }

 private:
  Store(Db db, StoreOptions o) : db_(std::make_unique<Db>(std::move(db))), opts_(o) {}
  // The kept statement `q` (an index into the table in store.cpp), prepared on first use.
  Result<StmtLease> use(size_t q);
  Status migrate(int from);
  Status migrate_v1();  // v1 -> v2: compact interval rows
  Status migrate_v2();  // v2 -> v3: workload and Go module in the edge identity
  Status migrate_v3();  // v3 -> v4: summaries of closed 10-minute buckets
  Status roll_up(size_t tier, uint64_t now_ns);
  // Merges the rows of `tier` and `tier + 1` in the target interval starting at `bucket` into `tier + 1` rows.
  Status roll_up_bucket(size_t tier, uint64_t bucket, const char* counter);
  // The size bound's first resort: rolls up the target interval of the oldest row finer than the last tier, when
  // that interval has ended; false when there is none.
  Result<bool> roll_up_early(uint64_t now_ns);
  // Summarizes the next closed 10-minute buckets of minute rows (kSummarizeAtMost per call), one transaction each.
  Status summarize(uint64_t now_ns);
  Status summarize_bucket(uint64_t bucket);
  // Drops the summaries of the buckets starting in [from_ns, to_ns) (in the caller's transaction).
  Status drop_summaries(uint64_t from_ns, uint64_t to_ns);
  // A meta value, 0 when absent.
  Result<uint64_t> read_meta(const char* name);
  Status delete_unreferenced_edges();
  Status evict_age(uint64_t now_ns);
  Status evict_size(uint64_t now_ns);
  Result<uint64_t> used_bytes();
  Result<int64_t> query_int(size_t q);
  // Each row (and its edge id) statement `q` selects with the parameters `bind` sets; without `identity` the rows
  // have numbers only (HS_SELECT_NUMBERS).
  using RowFn = std::function<void(IntervalRow&&, int64_t)>;
  Status read_rows(size_t q, const std::function<void(Stmt&)>& bind, bool identity, const RowFn& take);
  // The rows overlapping [from_ns, to_ns), oldest first (start, tier, edge id); with `summaries` a summarized bucket
  // inside the window comes as its summary rows (one per edge, in edge-id order) instead of its rows.
  Status scan(uint64_t from_ns, uint64_t to_ns, bool identity, bool summaries, const RowFn& take);
  Status set_meta(size_t q, const std::string& name, uint64_t value);
  Result<std::string> check(const char* pragma);
  Result<int64_t> edge_id(const IntervalRow& r);
  // Into `intervals`, or with `summary` into `summaries` (tier 1's width).
  Status insert_row(int64_t edge, size_t tier, const IntervalRow& r, bool summary = false);

  std::unique_ptr<Db> db_;  // on the heap: the kept statements point at it, and a Store moves
  StoreOptions opts_;
  StmtCache stmts_;  // after db_: finalized before the connection closes
  // Edge identity -> id, so a write looks an edge up in the file only the first time it sees it. Bounded (emptied
  // when full) and emptied whenever edges are deleted or a write is rolled back.
  std::unordered_map<std::string, int64_t> edge_ids_;
  // Per tier finer than the last: no row of it starts before this (0: not known yet), so looking for its oldest row
  // does not walk the coarser rows in front of it every time. Raised by those searches, lowered by writes and roll-ups.
  std::array<uint64_t, std::size(kTiers) - 1> floor_{};
  bool evicted_ = false;  // rows went since the last delete_unreferenced_edges()
  uint64_t last_edge_gc_ns_ = 0;
};

// Schema version of the file, 0 when it has none (empty or not hostscope's); errors when it is not a database.
Result<int> schema_version(Db& db);

}  // namespace hostscope::history
