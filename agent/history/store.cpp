#include "agent/history/store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace hostscope::history {

namespace {

// v4 (docs/topology.md, "History"). Edge identities are kept once (`edges`) and referenced by the interval rows;
// rows are clustered by start time (WITHOUT ROWID, primary key first on start_ns) so the oldest rows fill the first
// pages and evicting them frees whole pages. A row keeps only numbers, as small as SQLite's variable-size integers
// allow: its length only when it is not its tier's width (len_ns NULL otherwise), first/last seen relative to its
// start, the latency buckets that are not zero (pack_latency), anomaly flags (rare) as JSON or NULL.
// Summaries: the rows of a closed 10-minute bucket of the recent minutes added up per edge (`summaries`, in the same
// form as `intervals`, without its tier), for the buckets listed in `summarized`; Store::topology reads a bucket that
// lies wholly inside its window from them. Derived data: whatever changes a bucket's rows drops its summary. Only a
// bucket of minute rows alone is summarized, so its summary is also its roll-up into a 10-minute row, copied when
// that comes (roll_up_sources: the minute rows the roll-up counts).
// v3 differed in lacking the tables summaries and summarized (and the meta key summarized_until_ns); migrate() adds
// them.
// v2 differed in the edges table only: no workload and Go module per end; migrate_v2() rebuilds the table, keeping ids.
// v1 also differed in the intervals table: end_ns, first_seen_ns and last_seen_ns absolute, all 20 latency buckets
// as 8 bytes each (a 160-byte blob in every row: about 270 bytes a row); migrate_v1() converts it to v2.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS edges(
  id INTEGER PRIMARY KEY,
  client_kind INTEGER NOT NULL, client_service TEXT NOT NULL, client_ns TEXT NOT NULL, client_pod TEXT NOT NULL,
  client_address TEXT NOT NULL, client_workload TEXT NOT NULL, client_go_module TEXT NOT NULL,
  server_kind INTEGER NOT NULL, server_service TEXT NOT NULL, server_ns TEXT NOT NULL, server_pod TEXT NOT NULL,
  server_address TEXT NOT NULL, server_workload TEXT NOT NULL, server_go_module TEXT NOT NULL,
  port INTEGER NOT NULL, protocol INTEGER NOT NULL, dialed TEXT NOT NULL,
  UNIQUE(client_kind, client_service, client_ns, client_pod, client_address, client_workload, client_go_module,
         server_kind, server_service, server_ns, server_pod, server_address, server_workload, server_go_module,
         port, protocol, dialed));
CREATE TABLE IF NOT EXISTS intervals(
  start_ns INTEGER NOT NULL, tier INTEGER NOT NULL, edge_id INTEGER NOT NULL, len_ns INTEGER,
  connections INTEGER NOT NULL, closed INTEGER NOT NULL,
  failed_refused INTEGER NOT NULL, failed_timed_out INTEGER NOT NULL, failed_other INTEGER NOT NULL,
  resets INTEGER NOT NULL, active INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
  retransmits INTEGER NOT NULL, srtt_us INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, latency BLOB,
  first_seen_off INTEGER NOT NULL, last_seen_off INTEGER NOT NULL, anomalies TEXT,
  PRIMARY KEY(start_ns, tier, edge_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summaries(
  start_ns INTEGER NOT NULL, edge_id INTEGER NOT NULL, len_ns INTEGER,
  connections INTEGER NOT NULL, closed INTEGER NOT NULL,
  failed_refused INTEGER NOT NULL, failed_timed_out INTEGER NOT NULL, failed_other INTEGER NOT NULL,
  resets INTEGER NOT NULL, active INTEGER NOT NULL, bytes_sent INTEGER NOT NULL, bytes_received INTEGER NOT NULL,
  retransmits INTEGER NOT NULL, srtt_us INTEGER NOT NULL, latency_sum_us INTEGER NOT NULL, latency BLOB,
  first_seen_off INTEGER NOT NULL, last_seen_off INTEGER NOT NULL, anomalies TEXT,
  PRIMARY KEY(start_ns, edge_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summarized(start_ns INTEGER PRIMARY KEY, roll_up_sources INTEGER);
)sql";

// A row's end in SQL (`t` is the table's alias with its dot): the tier widths of kTiers.
#define HS_END_NS(t)                                                                                                    \
  "(" t "start_ns + coalesce(" t "len_ns, CASE " t "tier WHEN 0 THEN 60000000000 WHEN 1 THEN 600000000000 "           \
  "ELSE 3600000000000 END))"
static_assert(kTiers[0].width_ns == 60000000000ull && kTiers[1].width_ns == 600000000000ull &&
              kTiers[2].width_ns == 3600000000000ull && std::size(kTiers) == 3);

// An interval row's numbers and its edge id, then the edge's identity, in the order read_row() and read_identity()
// take them. HS_SELECT_ROWS reads both, HS_SELECT_NUMBERS the numbers only; queries add their WHERE.
#define HS_ROW_NUMBERS "i.start_ns, i.tier, " HS_ROW_AFTER_TIER
#define HS_ROW_AFTER_TIER                                                                                               \
  "i.len_ns, i.connections, i.closed, i.failed_refused, i.failed_timed_out, i.failed_other, "      \
  "i.resets, i.active, i.bytes_sent, i.bytes_received, i.retransmits, i.srtt_us, i.latency_sum_us, i.latency, "        \
  "i.first_seen_off, i.last_seen_off, i.anomalies, i.edge_id"
#define HS_EDGE_IDENTITY                                                                                                \
  "e.client_kind, e.client_service, e.client_ns, e.client_pod, e.client_address, e.client_workload, "                  \
  "e.client_go_module, e.server_kind, e.server_service, e.server_ns, e.server_pod, e.server_address, "                 \
  "e.server_workload, e.server_go_module, e.port, e.protocol, e.dialed"
constexpr int kIdentityColumns = 17;  // in HS_EDGE_IDENTITY: 7 per end, port, protocol, dialed
#define HS_SELECT_ROWS "SELECT " HS_ROW_NUMBERS ", " HS_EDGE_IDENTITY " FROM intervals i JOIN edges e ON e.id = i.edge_id "
#define HS_SELECT_NUMBERS "SELECT " HS_ROW_NUMBERS " FROM intervals i "
// A summary row reads as a 10-minute row (tier 1).
#define HS_SELECT_SUMMARY_ROWS                                                                                          \
  "SELECT i.start_ns, 1, " HS_ROW_AFTER_TIER ", " HS_EDGE_IDENTITY " FROM summaries i JOIN edges e ON e.id = i.edge_id "
#define HS_SELECT_SUMMARY_NUMBERS "SELECT i.start_ns, 1, " HS_ROW_AFTER_TIER " FROM summaries i "
#define HS_WHERE_SUMMARY "WHERE i.start_ns = ? ORDER BY i.edge_id"
#define HS_WHERE_BUCKET "WHERE i.start_ns = ? AND i.tier = ? ORDER BY i.edge_id"
#define HS_WHERE_RANGE                                                                                                  \
  "WHERE i.start_ns >= ? AND i.start_ns < ? AND " HS_END_NS("i.") " > ? ORDER BY i.start_ns, i.tier, i.edge_id"

// The statements the store keeps prepared (Store::use), by index.
enum Query : size_t {
  kFindEdge,
  kInsertEdge,
  kInsertRow,
  kAddCounter,
  kSetMeta,
  kFindRollUp,
  kReadRollUp,
  kDeleteRollUp,
  kEvictAge,
  kEvictSize,
  kCountRows,
  kDeleteEdges,
  kOldestFine,
  kReadBucket,
  kReadBucketNumbers,
  kReadRowsNumbers,
  kReadEdge,
  kReadEdges,
  kRaiseMeta,
  kReadMeta,
  kReadRows,
  kPageCount,
  kFreelistCount,
  kPageSize,
  kInsertSummary,
  kReadSummary,
  kReadSummaryNumbers,
  kMarkSummarized,
  kReadSummarized,
  kDropSummaries,
  kDropSummarized,
  kOldestRow,
  kReadMark,
  kRollUpSummary,
  kCountCoarseRows,
  kQueries
};

struct QueryText {
  const char* sql;
  const char* what;  // names the operation in errors
};

constexpr QueryText kQueryText[kQueries] = {
    {"SELECT id FROM edges WHERE client_kind = ?1 AND client_service = ?2 AND client_ns = ?3 AND client_pod = ?4 AND "
     "client_address = ?5 AND client_workload = ?6 AND client_go_module = ?7 AND server_kind = ?8 AND "
     "server_service = ?9 AND server_ns = ?10 AND server_pod = ?11 AND server_address = ?12 AND "
     "server_workload = ?13 AND server_go_module = ?14 AND port = ?15 AND protocol = ?16 AND dialed = ?17",
     "find edge"},
    {"INSERT INTO edges(client_kind, client_service, client_ns, client_pod, client_address, client_workload, "
     "client_go_module, server_kind, server_service, server_ns, server_pod, server_address, server_workload, "
     "server_go_module, port, protocol, dialed) "
     "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17) RETURNING id",
     "insert edge"},
    {"INSERT OR REPLACE INTO intervals(start_ns, tier, edge_id, len_ns, connections, closed, failed_refused, "
     "failed_timed_out, failed_other, resets, active, bytes_sent, bytes_received, retransmits, srtt_us, "
     "latency_sum_us, latency, first_seen_off, last_seen_off, anomalies) "
     "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
     "insert interval"},
    {"INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
     "update counter"},
    {"INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", "set meta"},
    {"SELECT min(start_ns) FROM intervals WHERE tier = ? AND start_ns >= ? AND start_ns < ?", "find roll-up"},
    {HS_SELECT_ROWS "WHERE i.start_ns >= ? AND i.start_ns < ? AND i.tier IN (?, ?) ORDER BY i.start_ns",
     "read roll-up rows"},
    {"DELETE FROM intervals WHERE start_ns >= ? AND start_ns < ? AND tier IN (?, ?)", "delete rolled-up rows"},
    {"DELETE FROM intervals WHERE start_ns < ?1 AND " HS_END_NS("") " <= ?1", "evict rows by age"},
    {"DELETE FROM intervals WHERE (start_ns, tier, edge_id) IN (SELECT start_ns, tier, edge_id FROM intervals ORDER BY "
     "start_ns LIMIT ?)",
     "evict rows by size"},
    {"SELECT count(*) FROM intervals", "count rows"},
    {"DELETE FROM edges WHERE id NOT IN (SELECT DISTINCT edge_id FROM intervals)", "delete unreferenced edges"},
    {"SELECT start_ns, tier FROM intervals WHERE start_ns >= ? AND tier < ? ORDER BY start_ns LIMIT 1",
     "find the oldest row to roll up"},
    {HS_SELECT_ROWS HS_WHERE_BUCKET, "read intervals"},
    {HS_SELECT_NUMBERS HS_WHERE_BUCKET, "read intervals"},
    {HS_SELECT_NUMBERS HS_WHERE_RANGE, "read intervals"},
    {"SELECT " HS_EDGE_IDENTITY " FROM edges e WHERE e.id = ?", "read edge"},
    {"SELECT " HS_EDGE_IDENTITY ", e.id FROM edges e", "read edges"},
    {"INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
     "update meta"},
    {"SELECT value FROM meta WHERE key = ?", "read meta"},
    {HS_SELECT_ROWS HS_WHERE_RANGE, "read intervals"},
    {"PRAGMA page_count", "read page_count"},
    {"PRAGMA freelist_count", "read freelist_count"},
    {"PRAGMA page_size", "read page_size"},
    // insert_row()'s parameters; ?2 (the tier) is not stored.
    {"INSERT OR REPLACE INTO summaries(start_ns, edge_id, len_ns, connections, closed, failed_refused, "
     "failed_timed_out, failed_other, resets, active, bytes_sent, bytes_received, retransmits, srtt_us, "
     "latency_sum_us, latency, first_seen_off, last_seen_off, anomalies) "
     "VALUES(?1,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
     "insert summary"},
    {HS_SELECT_SUMMARY_ROWS HS_WHERE_SUMMARY, "read summaries"},
    {HS_SELECT_SUMMARY_NUMBERS HS_WHERE_SUMMARY, "read summaries"},
    {"INSERT OR REPLACE INTO summarized(start_ns, roll_up_sources) VALUES(?, ?)", "mark a bucket summarized"},
    {"SELECT start_ns FROM summarized WHERE start_ns >= ? AND start_ns <= ? ORDER BY start_ns", "read summarized buckets"},
    {"DELETE FROM summaries WHERE start_ns >= ? AND start_ns < ?", "drop summaries"},
    {"DELETE FROM summarized WHERE start_ns >= ? AND start_ns < ?", "drop summaries"},
    {"SELECT min(start_ns) FROM intervals", "find the oldest row"},
    {"SELECT roll_up_sources FROM summarized WHERE start_ns = ?", "read a summarized bucket"},
    {"INSERT OR REPLACE INTO intervals(start_ns, tier, edge_id, len_ns, connections, closed, failed_refused, "
     "failed_timed_out, failed_other, resets, active, bytes_sent, bytes_received, retransmits, srtt_us, "
     "latency_sum_us, latency, first_seen_off, last_seen_off, anomalies) "
     "SELECT start_ns, 1, edge_id, len_ns, connections, closed, failed_refused, failed_timed_out, failed_other, resets, "
     "active, bytes_sent, bytes_received, retransmits, srtt_us, latency_sum_us, latency, first_seen_off, last_seen_off, "
     "anomalies FROM summaries WHERE start_ns = ?",
     "roll up a summarized bucket"},
    {"SELECT count(*) FROM intervals WHERE start_ns >= ? AND start_ns < ? AND tier >= 1", "count coarse rows"},
};
#undef HS_SELECT_ROWS
#undef HS_SELECT_NUMBERS
#undef HS_WHERE_BUCKET
#undef HS_WHERE_RANGE
#undef HS_ROW_NUMBERS
#undef HS_ROW_AFTER_TIER
#undef HS_EDGE_IDENTITY
#undef HS_SELECT_SUMMARY_ROWS
#undef HS_SELECT_SUMMARY_NUMBERS
#undef HS_WHERE_SUMMARY

// Upper bound of Store::edge_ids_ (about 150 bytes an entry): twice the topology's default max_edges.
constexpr size_t kEdgeIdCacheMax = 40000;

// The longest minute row written (meta): a minute row overlapping T starts after T - this. Longer than a minute only
// when the recorder was late (a stalled or suspended node).
constexpr const char* kMaxMinuteRow = "max_minute_row_ns";

// Summaries (the schema's comment): buckets starting before this (meta) have been considered; a write of an earlier
// minute lowers it again. A bucket is summarized when its summary has at most half as many rows as the bucket (the
// edges were in two of its minutes or more on average): a sparser bucket would cost as many rows again for little.
constexpr const char* kSummarizedUntil = "summarized_until_ns";  // a time: `history status` does not list it
constexpr uint64_t kSummaryNs = kTiers[1].width_ns;
// Buckets summarized per maintain() at most: a backlog (a migrated v3 file, a day of minutes) is worked off over
// several calls instead of holding the writer for all of it at once.
constexpr int kSummarizeAtMost = 6;

// The buckets that are not zero, each as its index (one byte) and its count (LEB128); empty when all are zero.
std::string pack_latency(const std::array<uint64_t, kLatencyBuckets>& b) {
  std::string s;
  for (size_t i = 0; i < kLatencyBuckets; ++i) {
    if (b[i] == 0) continue;
    s.push_back(char(i));
    for (uint64_t v = b[i];; v >>= 7) {
      s.push_back(char((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
      if (v < 0x80) break;
    }
  }
  return s;
}

// pack_latency's inverse; a damaged blob yields the buckets read up to the damage.
std::array<uint64_t, kLatencyBuckets> unpack_latency(const std::string& s) {
  std::array<uint64_t, kLatencyBuckets> b{};
  for (size_t p = 0; p < s.size();) {
    const size_t i = uint8_t(s[p++]);
    uint64_t v = 0;
    bool done = false;
    for (int shift = 0; p < s.size() && shift < 64 && !done; shift += 7) {
      const auto c = uint8_t(s[p++]);
      v |= uint64_t(c & 0x7f) << shift;
      done = (c & 0x80) == 0;
    }
    if (!done || i >= kLatencyBuckets) break;
    b[i] = v;
  }
  return b;
}

// v1's blob: every bucket as 8 little-endian bytes.
std::array<uint64_t, kLatencyBuckets> unpack_latency_v1(const std::string& s) {
  std::array<uint64_t, kLatencyBuckets> b{};
  for (size_t i = 0; i < kLatencyBuckets && (i + 1) * 8 <= s.size(); ++i)
    for (size_t k = 0; k < 8; ++k) b[i] |= uint64_t(uint8_t(s[i * 8 + k])) << (8 * k);
  return b;
}

std::string pack_flags(const std::vector<topology::AnomalyFlag>& flags) {
  auto a = nlohmann::json::array();
  for (const auto& f : flags)
    a.push_back({{"reason", f.reason}, {"first", f.first_ns}, {"last", f.last_ns}, {"windows", f.windows},
                 {"value", f.value}, {"baseline", f.baseline}});
  return a.dump();
}

std::vector<topology::AnomalyFlag> unpack_flags(const std::string& s) {
  std::vector<topology::AnomalyFlag> out;
  auto a = nlohmann::json::parse(s, nullptr, false);
  if (!a.is_array()) return out;
  for (const auto& f : a) {
    if (!f.is_object()) continue;
    topology::AnomalyFlag g;
    g.reason = f.value("reason", "");
    g.first_ns = f.value("first", uint64_t(0));
    g.last_ns = f.value("last", uint64_t(0));
    g.windows = f.value("windows", uint32_t(1));
    g.value = f.value("value", 0.0);
    g.baseline = f.value("baseline", 0.0);
    out.push_back(std::move(g));
  }
  return out;
}

// The twelve counters from column `c` on, in the order of the schema (the same in v1 and v2); the next column.
int read_counts(const Stmt& st, int c, IntervalRow& r) {
  for (uint64_t* v : {&r.connections, &r.closed, &r.failed_refused, &r.failed_timed_out, &r.failed_other, &r.resets,
                      &r.active, &r.bytes_sent, &r.bytes_received, &r.retransmits})
    *v = st.col_u64(c++);
  r.srtt_us = uint32_t(std::min<uint64_t>(st.col_u64(c++), UINT32_MAX));
  r.latency_sum_us = st.col_u64(c++);
  return c;
}

// The kind columns hold the NodeKind, plus kExactAddressKind for a per-address network end (EdgeEnd::exact_address,
// topology.network_ends: address): such an end is another edge than its network's, and keeps its address its own.
constexpr int64_t kExactAddressKind = 0x100;

int64_t kind_column(const topology::EdgeEnd& e) { return int64_t(e.kind) | (e.exact_address ? kExactAddressKind : 0); }

topology::NodeKind kind_of(int64_t v) {
  v &= ~kExactAddressKind;
  return v == int64_t(topology::NodeKind::Network)    ? topology::NodeKind::Network
         : v == int64_t(topology::NodeKind::External) ? topology::NodeKind::External
                                                      : topology::NodeKind::Service;
}

// The edge identity from column `c` on (HS_EDGE_IDENTITY).
void read_identity(const Stmt& st, int c, IntervalRow& r) {
  for (auto* end : {&r.client, &r.server}) {
    const int64_t kind = st.col_i64(c++);
    end->kind = kind_of(kind);
    end->exact_address = end->kind == topology::NodeKind::Network && (kind & kExactAddressKind) != 0;
    end->service = st.col_text(c++);
    end->ns = st.col_text(c++);
    end->pod = st.col_text(c++);
    end->address = st.col_text(c++);
    end->workload = st.col_text(c++);
    end->go_module = st.col_text(c++);
  }
  r.port = uint16_t(st.col_u64(c++));
  r.protocol = st.col_i64(c++) == int64_t(topology::Protocol::Udp) ? topology::Protocol::Udp : topology::Protocol::Tcp;
  r.dialed = st.col_text(c++);
}

// Reads a row selected with HS_SELECT_ROWS (or, without `identity`, HS_SELECT_NUMBERS); `edge` gets the edge id.
IntervalRow read_row(const Stmt& st, int64_t* edge = nullptr, bool identity = true) {
  IntervalRow r;
  int c = 0;
  r.start_ns = st.col_u64(c++);
  const uint64_t tier = st.col_u64(c++);
  r.end_ns = r.start_ns + (st.col_null(c) ? kTiers[std::min<uint64_t>(tier, std::size(kTiers) - 1)].width_ns
                                          : st.col_u64(c));
  c++;
  c = read_counts(st, c, r);
  r.latency = unpack_latency(st.col_blob(c++));
  // Offsets from the start, negative when seen before it: unsigned arithmetic wraps them back.
  r.first_seen_ns = r.start_ns + uint64_t(st.col_i64(c++));
  r.last_seen_ns = r.start_ns + uint64_t(st.col_i64(c++));
  if (!st.col_null(c)) r.anomalies = unpack_flags(st.col_text(c));
  c++;
  if (edge) *edge = st.col_i64(c);
  c++;
  if (identity) read_identity(st, c, r);
  return r;
}

uint64_t file_size(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

}  // namespace

Result<int> schema_version(Db& db) {
  // Reading sqlite_master is the first page read: a file that is not a database fails here.
  auto has = db.query_int("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'", "read schema");
  if (!has) return has.error();
  if (*has == 0) return 0;
  auto st = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'", "read schema version");
  if (!st) return st.error();
  auto r = st->step();
  if (!r) return r.error();
  return *r ? int(st->col_i64(0)) : 0;
}

Result<Store> Store::open(const std::string& path, const StoreOptions& o, bool read_only) {
  auto db = Db::open(path, read_only);
  if (!db) return db.error();
  auto v = schema_version(*db);
  if (!v) return v.error();
  if (*v > kSchemaVersion)
    return errorf("history {}: schema version {} is newer than this hostscope understands ({}); the file is left as it "
                  "is (upgrade hostscope, or move the file away to start a new history)",
                  path, *v, kSchemaVersion);
  Store s(std::move(*db), o);
  if (read_only) {
    if (*v < kSchemaVersion)
      return errorf("history {}: schema version {} (this hostscope reads {}); the agent migrates it when it opens it",
                    path, *v, kSchemaVersion);
    return s;
  }
  auto tables = s.db_->query_int("SELECT count(*) FROM sqlite_master", "read schema");
  if (!tables) return tables.error();
  // Incremental vacuum has to be chosen before the first table exists: it lets evictions shrink the file.
  if (*tables == 0)
    if (auto st = s.db_->exec("PRAGMA auto_vacuum = INCREMENTAL", "set auto_vacuum"); !st) return st.error();
  if (auto st = s.db_->exec("PRAGMA journal_mode = WAL", "set WAL mode"); !st) return st.error();
  // NORMAL in WAL mode: a power cut may lose the last transactions, never corrupt the file.
  if (auto st = s.db_->exec("PRAGMA synchronous = NORMAL", "set synchronous"); !st) return st.error();
  if (auto st = s.db_->exec("PRAGMA journal_size_limit = 4194304", "set journal_size_limit"); !st) return st.error();
  if (*v < kSchemaVersion)
    if (auto st = s.migrate(*v); !st) return st.error();
  // quick_check reads every page once (no index cross-checks): a damaged file is refused at start, not written to.
  auto chk = s.check("PRAGMA quick_check");
  if (!chk) return chk.error();
  if (*chk != "ok") return errorf("history {}: integrity check failed: {}", path, *chk);
  return s;
}

Status Store::migrate(int from) {
  // A new file gets the current schema at once; an older one goes one version at a time (v1 -> v2 -> v3 -> v4), each step
  // one transaction with its version bump: a crash leaves the file whole, at the old version or a later one.
  const int first = from == 0 ? kSchemaVersion - 1 : from;
  for (int v = first; v < kSchemaVersion; ++v) {
    Transaction tx(*db_);
    if (auto st = tx.begin(); !st) return st;
    Status step = from == 0 ? db_->exec(kSchema, "create schema")
                  : v == 1  ? migrate_v1()
                  : v == 2  ? migrate_v2()
                            : migrate_v3();
    if (!step) return step;
    if (auto st = set_meta(kSetMeta, "schema_version", uint64_t(v) + 1); !st) return st;
    if (auto st = tx.commit(); !st) return st;
  }
  // The old tables' pages go back to the file system.
  return from == 0 ? Status{} : db_->exec("PRAGMA incremental_vacuum", "incremental vacuum");
}

Status Store::migrate_v1() {
  if (auto st = db_->exec("ALTER TABLE intervals RENAME TO intervals_v1", "migrate v1: rename intervals"); !st)
    return st;
  // Creates the intervals table only: v1's edges table is v2's, which migrate_v2() then rebuilds.
  if (auto st = db_->exec(kSchema, "migrate v1: create schema"); !st) return st;
  auto sel = db_->prepare("SELECT start_ns, tier, edge_id, end_ns, connections, closed, failed_refused, "
                          "failed_timed_out, failed_other, resets, active, bytes_sent, bytes_received, retransmits, "
                          "srtt_us, latency_sum_us, latency, first_seen_ns, last_seen_ns, anomalies FROM intervals_v1",
                          "migrate v1: read intervals");
  if (!sel) return sel.error();
  uint64_t n = 0, longest = kMinuteNs;
  for (;; ++n) {
    auto row = sel->step();
    if (!row) return row.error();
    if (!*row) break;
    IntervalRow r;
    r.start_ns = sel->col_u64(0);
    const uint64_t tier = std::min<uint64_t>(sel->col_u64(1), std::size(kTiers) - 1);
    const int64_t edge = sel->col_i64(2);
    r.end_ns = sel->col_u64(3);
    int c = read_counts(*sel, 4, r);
    r.latency = unpack_latency_v1(sel->col_blob(c++));
    r.first_seen_ns = sel->col_u64(c++);
    r.last_seen_ns = sel->col_u64(c++);
    if (!sel->col_null(c)) r.anomalies = unpack_flags(sel->col_text(c));
    if (tier == 0) longest = std::max(longest, r.end_ns - r.start_ns);
    if (auto st = insert_row(edge, tier, r); !st) return st;
  }
  sel->reset();
  if (auto st = set_meta(kRaiseMeta, kMaxMinuteRow, longest); !st) return st;
  if (auto st = db_->exec("DROP TABLE intervals_v1", "migrate v1: drop the v1 table"); !st) return st;
  return add_counter("rows_migrated", n);
}

Status Store::migrate_v2() {
  // v3 adds workload and Go module to each end of an edge's identity (and to its UNIQUE key). SQLite cannot change a
  // table's constraint in place: the table is rebuilt under the same ids, which the interval rows refer to. Known
  // edges get empty attributes, as edges of ends without a pod or a Go binary have.
  if (auto st = db_->exec("ALTER TABLE edges RENAME TO edges_v2", "migrate v2: rename edges"); !st) return st;
  if (auto st = db_->exec(kSchema, "migrate v2: create schema"); !st) return st;
  if (auto st = db_->exec("INSERT INTO edges(id, client_kind, client_service, client_ns, client_pod, client_address, "
                          "client_workload, client_go_module, server_kind, server_service, server_ns, server_pod, "
                          "server_address, server_workload, server_go_module, port, protocol, dialed) "
                          "SELECT id, client_kind, client_service, client_ns, client_pod, client_address, '', '', "
                          "server_kind, server_service, server_ns, server_pod, server_address, '', '', port, protocol, "
                          "dialed FROM edges_v2",
                          "migrate v2: copy edges");
      !st)
    return st;
  return db_->exec("DROP TABLE edges_v2", "migrate v2: drop the v2 table");
}

Status Store::migrate_v3() {
  // v4 adds the summary tables, empty: maintain() summarizes the closed buckets of the minute rows there are, a few
  // per call (kSummarizeAtMost); until then reads add up the minute rows, as v3 did.
  return db_->exec(kSchema, "migrate v3: create the summary tables");
}

Result<StmtLease> Store::use(size_t q) { return stmts_.get(*db_, q, kQueryText[q].sql, kQueryText[q].what); }

Result<int64_t> Store::edge_id(const IntervalRow& r) {
  std::string key;
  for (const auto* end : {&r.client, &r.server})
    key += fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f", kind_column(*end), end->service, end->ns, end->pod,
                       end->address, end->workload, end->go_module);
  key += fmt::format("{}\x1f{}\x1f{}", r.port, int(r.protocol), r.dialed);
  if (auto it = edge_ids_.find(key); it != edge_ids_.end()) return it->second;
  int64_t id = 0;
  // Look it up first: an existing edge costs one index read, not a write.
  for (size_t q : {kFindEdge, kInsertEdge}) {
    auto st = use(q);
    if (!st) return st.error();
    for (int side = 0; side < 2; ++side) {
      const auto& end = side == 0 ? r.client : r.server;
      const int c = 1 + side * 7;
      (*st)->bind(c, kind_column(end));
      (*st)->bind(c + 1, end.service);
      (*st)->bind(c + 2, end.ns);
      (*st)->bind(c + 3, end.pod);
      (*st)->bind(c + 4, end.address);
      (*st)->bind(c + 5, end.workload);
      (*st)->bind(c + 6, end.go_module);
    }
    (*st)->bind(15, int64_t(r.port));
    (*st)->bind(16, int64_t(r.protocol));
    (*st)->bind(17, r.dialed);
    auto row = (*st)->step();
    if (!row) return row.error();
    if (*row) {
      id = (*st)->col_i64(0);
      break;
    }
    if (q == kInsertEdge) return errorf("history {} insert edge failed: no id returned", path());
  }
  if (edge_ids_.size() >= kEdgeIdCacheMax) edge_ids_.clear();
  edge_ids_.emplace(std::move(key), id);
  return id;
}

Status Store::insert_row(int64_t edge, size_t tier, const IntervalRow& r, bool summary) {
  auto st = use(summary ? kInsertSummary : kInsertRow);
  if (!st) return st.error();
  (*st)->bind_u64(1, r.start_ns);
  (*st)->bind(2, int64_t(tier));
  (*st)->bind(3, edge);
  const uint64_t len = r.end_ns - r.start_ns;
  if (len == kTiers[tier].width_ns) (*st)->bind_null(4);
  else (*st)->bind_u64(4, len);
  int c = 5;
  for (uint64_t v : {r.connections, r.closed, r.failed_refused, r.failed_timed_out, r.failed_other, r.resets, r.active,
                     r.bytes_sent, r.bytes_received, r.retransmits, uint64_t(r.srtt_us), r.latency_sum_us})
    (*st)->bind_u64(c++, v);
  auto lat = pack_latency(r.latency);
  if (lat.empty()) (*st)->bind_null(17);
  else (*st)->bind_blob(17, lat.data(), lat.size());
  (*st)->bind(18, int64_t(r.first_seen_ns - r.start_ns));  // wraps to the signed offset
  (*st)->bind(19, int64_t(r.last_seen_ns - r.start_ns));
  if (r.anomalies.empty()) (*st)->bind_null(20);
  else (*st)->bind(20, pack_flags(r.anomalies));
  return (*st)->run();
}

Status Store::add_counter(const std::string& name, uint64_t delta) { return set_meta(kAddCounter, name, delta); }

Status Store::set_meta(size_t q, const std::string& name, uint64_t value) {
  auto st = use(q);
  if (!st) return st.error();
  return (*st)->bind(1, name).bind_u64(2, value).run();
}

Status Store::write(const std::vector<IntervalRow>& rows, uint64_t now_ns) {
  Transaction tx(*db_);
  if (auto st = tx.begin(); !st) return st;
  // A rolled-back write may have inserted edges whose ids are cached: forget them.
  auto forget = [&](Status st) {
    if (!st) edge_ids_.clear();
    return st;
  };
  // In edge-id order, after the rows already there (the key starts with start_ns): appends fill whole pages.
  std::vector<std::pair<int64_t, const IntervalRow*>> order;
  order.reserve(rows.size());
  for (const auto& r : rows) {
    auto id = edge_id(r);
    if (!id) return forget(id.error());
    order.emplace_back(*id, &r);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  uint64_t earliest = UINT64_MAX;
  for (const auto& [id, r] : order) {
    if (auto st = insert_row(id, 0, *r); !st) return forget(st);
    floor_[0] = std::min(floor_[0], r->start_ns);
    earliest = std::min(earliest, r->start_ns);
  }
  // A minute of a bucket already considered (written late, or the clock went back): that bucket's summary and the
  // later ones go, and the next maintenance considers them again.
  if (earliest != UINT64_MAX) {
    auto until = read_meta(kSummarizedUntil);
    if (!until) return forget(until.error());
    if (earliest < *until) {
      const uint64_t bucket = earliest / kSummaryNs * kSummaryNs;
      if (auto st = drop_summaries(bucket, UINT64_MAX); !st) return forget(st);
      if (auto st = set_meta(kSetMeta, kSummarizedUntil, bucket); !st) return forget(st);
    }
  }
  if (auto st = add_counter("rows_written", rows.size()); !st) return forget(st);
  if (auto st = add_counter("intervals_written", 1); !st) return forget(st);
  if (auto st = set_meta(kSetMeta, "last_write_ns", now_ns); !st) return forget(st);
  uint64_t longest = 0;
  for (const auto& r : rows) longest = std::max(longest, r.end_ns - r.start_ns);
  if (longest > 0)
    if (auto st = set_meta(kRaiseMeta, kMaxMinuteRow, longest); !st) return forget(st);
  return forget(tx.commit());
}

Result<int64_t> Store::query_int(size_t q) {
  auto st = use(q);
  if (!st) return st.error();
  auto r = (*st)->step();
  if (!r) return r.error();
  if (!*r) return errorf("history {} {} failed: no row", path(), kQueryText[q].what);
  return (*st)->col_i64(0);
}

Status Store::roll_up(size_t tier, uint64_t now_ns) {
  const Tier& from = kTiers[tier];
  if (from.rollup_after_ns == 0 || tier + 1 >= std::size(kTiers) || now_ns < from.rollup_after_ns) return {};
  const uint64_t width = kTiers[tier + 1].width_ns;
  // Only whole target intervals: every source row of one has ended before the cut-off.
  const uint64_t limit = (now_ns - from.rollup_after_ns) / width * width;
  // One target interval per transaction keeps memory at one interval's edges after a long time without maintenance.
  for (;;) {
    uint64_t bucket = 0;
    {
      auto oldest = use(kFindRollUp);
      if (!oldest) return oldest.error();
      (*oldest)->bind(1, int64_t(tier)).bind_u64(2, floor_[tier]).bind_u64(3, limit);
      auto has = (*oldest)->step();
      if (!has) return has.error();
      if (!*has || (*oldest)->col_null(0)) {
        floor_[tier] = std::max(floor_[tier], limit);
        return {};
      }
      floor_[tier] = std::max(floor_[tier], (*oldest)->col_u64(0));
      bucket = (*oldest)->col_u64(0) / width * width;
    }
    if (auto st = roll_up_bucket(tier, bucket, "rows_rolled_up"); !st) return st;
  }
}

Status Store::roll_up_bucket(size_t tier, uint64_t bucket, const char* counter) {
  const uint64_t width = kTiers[tier + 1].width_ns;
  Transaction tx(*db_);
  if (auto st = tx.begin(); !st) return st;
  if (tier == 0) {
    // A summarized bucket (minute rows only): its summary is what the merge below would write (the same rows, added
    // up in the same order, stored alike), so it is copied instead of reading the minute rows again.
    std::optional<uint64_t> sources;
    {
      auto mark = use(kReadMark);
      if (!mark) return mark.error();
      (*mark)->bind_u64(1, bucket);
      auto row = (*mark)->step();
      if (!row) return row.error();
      if (*row && !(*mark)->col_null(0)) sources = (*mark)->col_u64(0);
    }
    if (sources) {
      auto del = use(kDeleteRollUp);
      if (!del) return del.error();
      if (auto st = (*del)->bind_u64(1, bucket).bind_u64(2, bucket + width).bind(3, int64_t(0)).bind(4, int64_t(1)).run();
          !st)
        return st;
      auto copy = use(kRollUpSummary);
      if (!copy) return copy.error();
      if (auto st = (*copy)->bind_u64(1, bucket).run(); !st) return st;
      if (auto st = drop_summaries(bucket, bucket + width); !st) return st;
      if (auto st = add_counter(counter, *sources); !st) return st;
      if (auto st = tx.commit(); !st) return st;
      floor_[1] = std::min(floor_[1], bucket);
      return {};
    }
  }
  std::map<int64_t, IntervalRow> merged;
  uint64_t sources = 0;
  {
    auto sel = use(kReadRollUp);
    if (!sel) return sel.error();
    (*sel)->bind_u64(1, bucket).bind_u64(2, bucket + width).bind(3, int64_t(tier)).bind(4, int64_t(tier + 1));
    for (;;) {
      auto row = (*sel)->step();
      if (!row) return row.error();
      if (!*row) break;
      int64_t edge = 0;
      IntervalRow r = read_row(**sel, &edge);
      if (r.end_ns - r.start_ns < width) ++sources;
      auto [it, fresh] = merged.try_emplace(edge, r);
      if (!fresh) merge_row(it->second, r);
    }
  }
  {
    auto del = use(kDeleteRollUp);
    if (!del) return del.error();
    if (auto st = (*del)->bind_u64(1, bucket).bind_u64(2, bucket + width).bind(3, int64_t(tier)).bind(4, int64_t(tier + 1)).run();
        !st)
      return st;
  }
  for (auto& [edge, r] : merged) {
    r.start_ns = bucket;
    r.end_ns = bucket + width;
    if (auto st = insert_row(edge, tier + 1, r); !st) return st;
  }
  // The rows of the bucket where the new row starts changed: its summary goes (a read now takes the coarser rows). The
  // other buckets of an hour lost 10-minute rows only, and a bucket with those has no summary (summarize_bucket()).
  if (auto st = drop_summaries(bucket, bucket + kSummaryNs); !st) return st;
  if (auto st = add_counter(counter, sources); !st) return st;
  if (auto st = tx.commit(); !st) return st;
  if (tier + 1 < kLastTier) floor_[tier + 1] = std::min(floor_[tier + 1], bucket);
  return {};
}

Status Store::evict_age(uint64_t now_ns) {
  if (now_ns <= opts_.retention_ns) return {};
  const uint64_t cutoff = now_ns - opts_.retention_ns;
  Transaction tx(*db_);
  if (auto st = tx.begin(); !st) return st;
  {
    auto del = use(kEvictAge);
    if (!del) return del.error();
    if (auto st = (*del)->bind_u64(1, cutoff).bind_u64(2, cutoff).run(); !st) return st;
  }
  if (auto n = db_->changes(); n > 0) {
    evicted_ = true;
    if (auto st = add_counter("rows_evicted_age", uint64_t(n)); !st) return st;
    // A bucket starting before the cut-off may have lost rows.
    if (auto st = drop_summaries(0, cutoff); !st) return st;
  }
  return tx.commit();
}

Result<uint64_t> Store::used_bytes() {
  auto pages = query_int(kPageCount);
  if (!pages) return pages.error();
  auto free_pages = query_int(kFreelistCount);
  if (!free_pages) return free_pages.error();
  auto size = query_int(kPageSize);
  if (!size) return size.error();
  return uint64_t(std::max<int64_t>(0, *pages - *free_pages)) * uint64_t(*size);
}

Result<bool> Store::roll_up_early(uint64_t now_ns) {
  uint64_t start = 0, tier = 0;
  {
    auto sel = use(kOldestFine);
    if (!sel) return sel.error();
    (*sel)->bind_u64(1, *std::min_element(floor_.begin(), floor_.end())).bind(2, int64_t(kLastTier));
    auto row = (*sel)->step();
    if (!row) return row.error();
    // No finer row starts before this one (or at all, until a write or a roll-up makes one).
    start = *row ? (*sel)->col_u64(0) : UINT64_MAX;
    for (auto& f : floor_) f = std::max(f, start);
    if (!*row) return false;
    tier = std::min<uint64_t>((*sel)->col_u64(1), kLastTier - 1);
  }
  const uint64_t width = kTiers[tier + 1].width_ns;
  const uint64_t bucket = start / width * width;
  // Only a target interval that has ended: no more rows will come for it.
  if (bucket + width > now_ns) return false;
  if (auto st = roll_up_bucket(size_t(tier), bucket, "rows_rolled_up_early"); !st) return st.error();
  return true;
}

Status Store::evict_size(uint64_t now_ns) {
  // While the pages in use exceed the bound: first the oldest rows finer than the last tier are rolled up (whatever
  // their age: a coarser row is better than none), and only when there is nothing left to roll up do the oldest rows
  // go, in proportion to the excess (at least 64) per round. It ends when the pages in use fit or no row is left.
  bool swept = false;
  for (;;) {
    auto used = used_bytes();
    if (!used) return used.error();
    if (*used <= opts_.max_bytes) break;
    auto rolled = roll_up_early(now_ns);
    if (!rolled) return rolled.error();
    if (*rolled) continue;
    // Edges of rows evicted earlier may be what fills the file: dropped (a scan of every row) once per call.
    if (evicted_ && !swept) {
      swept = true;
      if (auto st = delete_unreferenced_edges(); !st) return st;
      continue;
    }
    auto total = query_int(kCountRows);
    if (!total) return total.error();
    if (*total == 0) break;
    const double excess = double(*used - opts_.max_bytes) / double(*used);
    const auto n = std::max<int64_t>(64, int64_t(std::ceil(double(*total) * excess * 1.1)));
    Transaction tx(*db_);
    if (auto st = tx.begin(); !st) return st;
    {
      auto del = use(kEvictSize);
      if (!del) return del.error();
      if (auto st = (*del)->bind(1, n).run(); !st) return st;
    }
    evicted_ = true;
    if (auto st = add_counter("rows_evicted_size", uint64_t(db_->changes())); !st) return st;
    // The oldest rows went, the last of them perhaps only some of one start's: every bucket up to the oldest start
    // left (all of them when no row is left) may have lost rows.
    uint64_t left = UINT64_MAX - 1;
    {
      auto oldest = use(kOldestRow);
      if (!oldest) return oldest.error();
      auto row = (*oldest)->step();
      if (!row) return row.error();
      if (*row && !(*oldest)->col_null(0)) left = (*oldest)->col_u64(0);
    }
    if (auto st = drop_summaries(0, left + 1); !st) return st;
    if (auto st = tx.commit(); !st) return st;
  }
  return db_->exec("PRAGMA incremental_vacuum", "incremental vacuum");
}

Result<uint64_t> Store::read_meta(const char* name) {
  auto meta = use(kReadMeta);
  if (!meta) return meta.error();
  (*meta)->bind(1, std::string_view(name));
  auto row = (*meta)->step();
  if (!row) return row.error();
  return *row ? (*meta)->col_u64(0) : 0;
}

Status Store::drop_summaries(uint64_t from_ns, uint64_t to_ns) {
  for (size_t q : {kDropSummaries, kDropSummarized}) {
    auto del = use(q);
    if (!del) return del.error();
    if (auto st = (*del)->bind_u64(1, from_ns).bind_u64(2, to_ns).run(); !st) return st;
  }
  return {};
}

Status Store::summarize(uint64_t now_ns) {
  auto until = read_meta(kSummarizedUntil);
  if (!until) return until.error();
  // Buckets that have ended by now; a minute of one written later drops its summary again (write()).
  const uint64_t limit = now_ns / kSummaryNs * kSummaryNs;
  for (int n = 0; n < kSummarizeAtMost && *until < limit; ++n) {
    uint64_t bucket = 0;
    {
      // The next bucket with minute rows: coarser rows are summaries already.
      auto next = use(kFindRollUp);
      if (!next) return next.error();
      (*next)->bind(1, int64_t(0)).bind_u64(2, *until).bind_u64(3, limit);
      auto has = (*next)->step();
      if (!has) return has.error();
      if (!*has || (*next)->col_null(0)) {
        // No minute rows up to the limit: saved below, one small write.
        *until = limit;
        return set_meta(kSetMeta, kSummarizedUntil, limit);
      }
      bucket = (*next)->col_u64(0) / kSummaryNs * kSummaryNs;
    }
    if (auto st = summarize_bucket(bucket); !st) return st;  // saves bucket + kSummaryNs as summarized_until_ns
    *until = bucket + kSummaryNs;
  }
  return {};
}

Status Store::summarize_bucket(uint64_t bucket) {
  Transaction tx(*db_);
  if (auto st = tx.begin(); !st) return st;
  // Minute rows alone: a bucket holding a coarser row (the clock went back onto rolled-up time) is left as it is, so
  // a summarized bucket changes only by a write into it or its own roll-up.
  uint64_t coarse = 0;
  {
    auto count = use(kCountCoarseRows);
    if (!count) return count.error();
    (*count)->bind_u64(1, bucket).bind_u64(2, bucket + kSummaryNs);
    auto row = (*count)->step();
    if (!row) return row.error();
    if (*row) coarse = (*count)->col_u64(0);
  }
  // The bucket's rows in the order a read adds them up.
  std::map<int64_t, IntervalRow> merged;
  uint64_t rows = 0, sources = 0;  // sources: rows shorter than the bucket, as roll_up_bucket() counts them
  if (coarse == 0)
    if (auto st = read_rows(
            kReadRowsNumbers,
            [&](Stmt& q) { q.bind_u64(1, bucket).bind_u64(2, bucket + kSummaryNs).bind_u64(3, bucket); }, false,
            [&](IntervalRow&& r, int64_t edge) {
              ++rows;
              if (r.end_ns - r.start_ns < kSummaryNs) ++sources;
              auto [it, fresh] = merged.try_emplace(edge, std::move(r));
              if (!fresh) merge_row(it->second, r);
            });
        !st)
      return st;
  if (!merged.empty() && merged.size() * 2 <= rows) {
    for (auto& [edge, r] : merged) {
      r.start_ns = bucket;
      r.end_ns = bucket + kSummaryNs;
      if (auto st = insert_row(edge, 1, r, true); !st) return st;
    }
    auto mark = use(kMarkSummarized);
    if (!mark) return mark.error();
    if (auto st = (*mark)->bind_u64(1, bucket).bind_u64(2, sources).run(); !st) return st;
  }
  if (auto st = set_meta(kSetMeta, kSummarizedUntil, bucket + kSummaryNs); !st) return st;
  return tx.commit();
}

Status Store::delete_unreferenced_edges() {
  edge_ids_.clear();
  auto del = use(kDeleteEdges);
  if (!del) return del.error();
  if (auto st = (*del)->run(); !st) return st;
  evicted_ = false;
  return {};
}

Status Store::maintain(uint64_t now_ns) {
  // Age first: rows about to go are not rolled up.
  if (auto st = evict_age(now_ns); !st) return st;
  for (size_t t = 0; t + 1 < std::size(kTiers); ++t)
    if (auto st = roll_up(t, now_ns); !st) return st;
  // Before the size bound: the summaries' pages count toward it.
  if (auto st = summarize(now_ns); !st) return st;
  if (auto st = evict_size(now_ns); !st) return st;
  // Edges no row refers to any more, after evictions: a scan of every row, so at most once an hour.
  if (!evicted_ || now_ns < last_edge_gc_ns_ + kHourNs) return {};
  last_edge_gc_ns_ = now_ns;
  return delete_unreferenced_edges();
}

Status Store::read_rows(size_t q, const std::function<void(Stmt&)>& bind, bool identity, const RowFn& take) {
  auto sel = use(q);
  if (!sel) return sel.error();
  bind(**sel);
  for (;;) {
    auto row = (*sel)->step();
    if (!row) return row.error();
    if (!*row) return {};
    int64_t edge = 0;
    IntervalRow r = read_row(**sel, &edge, identity);
    take(std::move(r), edge);
  }
}

Status Store::scan(uint64_t from_ns, uint64_t to_ns, bool identity, bool summaries, const RowFn& take) {
  uint64_t longest = kMinuteNs;
  {
    auto meta = use(kReadMeta);
    if (!meta) return meta.error();
    (*meta)->bind(1, std::string_view(kMaxMinuteRow));
    auto row = (*meta)->step();
    if (!row) return row.error();
    if (*row) longest = std::max(longest, (*meta)->col_u64(0));
  }
  // Rows starting from `lo` on are read in one range; a coarser row that overlaps from_ns but starts before `lo`
  // starts exactly at its tier's boundary (roll-ups write whole aligned intervals), so it is one seek, not a scan
  // of the hour of minute rows in front of from_ns.
  const uint64_t lo = from_ns > longest ? from_ns - longest : 0;
  std::vector<std::pair<uint64_t, size_t>> seeks;  // (start, tier), oldest first
  for (size_t t = 1; t < std::size(kTiers); ++t)
    if (uint64_t b = from_ns / kTiers[t].width_ns * kTiers[t].width_ns; b < lo) seeks.emplace_back(b, t);
  std::sort(seeks.begin(), seeks.end());
  for (const auto& [start, tier] : seeks)
    if (auto st = read_rows(identity ? kReadBucket : kReadBucketNumbers,
                            [&](Stmt& q) { q.bind_u64(1, start).bind(2, int64_t(tier)); }, identity, take);
        !st)
      return st;
  // Summarized buckets wholly inside the window are read as their summaries (a row per edge instead of one per edge
  // and minute); the rows around them in ranges, as before. Every row is taken once: by its start, in a range or in
  // its bucket's summary (which adds up exactly the rows starting in the bucket, all of which overlap the window).
  std::vector<uint64_t> buckets;
  if (summaries && to_ns > from_ns && to_ns - from_ns >= kSummaryNs) {
    auto sel = use(kReadSummarized);
    if (!sel) return sel.error();
    (*sel)->bind_u64(1, (from_ns + kSummaryNs - 1) / kSummaryNs * kSummaryNs).bind_u64(2, to_ns - kSummaryNs);
    for (;;) {
      auto row = (*sel)->step();
      if (!row) return row.error();
      if (!*row) break;
      buckets.push_back((*sel)->col_u64(0));
    }
  }
  uint64_t cur = lo;
  auto range = [&](uint64_t end) {
    return read_rows(identity ? kReadRows : kReadRowsNumbers,
                     [&](Stmt& q) { q.bind_u64(1, cur).bind_u64(2, end).bind_u64(3, from_ns); }, identity, take);
  };
  for (uint64_t b : buckets) {
    if (auto st = range(b); !st) return st;
    if (auto st = read_rows(identity ? kReadSummary : kReadSummaryNumbers, [&](Stmt& q) { q.bind_u64(1, b); },
                            identity, take);
        !st)
      return st;
    cur = b + kSummaryNs;
  }
  return range(to_ns);
}

Result<std::vector<IntervalRow>> Store::rows(uint64_t from_ns, uint64_t to_ns) {
  std::vector<IntervalRow> out;
  if (auto st = scan(from_ns, to_ns, true, false, [&](IntervalRow&& r, int64_t) { out.push_back(std::move(r)); }); !st)
    return st.error();
  return out;
}

Result<topology::TopologySnapshot> Store::topology(uint64_t from_ns, uint64_t to_ns) {
  // Numbers first, added up per edge id (no identity text per row); then each edge's identity once, and the ids
  // of one edge key (another pod, say) merged in the order of their latest rows, so the latest attributes win as
  // they would row by row.
  struct PerId {
    IntervalRow r;
    uint64_t last = 0;  // position of the id's latest row in the scan
  };
  std::unordered_map<int64_t, PerId> by_id;
  uint64_t pos = 0;
  if (auto st = scan(from_ns, to_ns, false, true,
                     [&](IntervalRow&& r, int64_t edge) {
                       if (auto it = by_id.find(edge); it != by_id.end()) {
                         merge_row(it->second.r, r);
                         it->second.last = pos++;
                       } else {
                         by_id.emplace(edge, PerId{std::move(r), pos++});
                       }
                     });
      !st)
    return st.error();
  std::vector<std::pair<uint64_t, int64_t>> order;  // (last, id)
  order.reserve(by_id.size());
  // A few edges are looked up one by one; many are picked out of one pass over the edges table.
  constexpr size_t kLookUpsAtMost = 256;
  auto sel = use(by_id.size() <= kLookUpsAtMost ? kReadEdge : kReadEdges);
  if (!sel) return sel.error();
  auto take = [&](int64_t id, PerId& p) {
    read_identity(**sel, 0, p.r);
    order.emplace_back(p.last, id);
  };
  if (by_id.size() <= kLookUpsAtMost) {
    for (auto& [id, p] : by_id) {
      (*sel)->bind(1, id);
      auto row = (*sel)->step();
      if (!row) return row.error();
      if (*row) take(id, p);  // a row without its edge is skipped, as the join skips it
      (*sel)->reset();
    }
  } else {
    constexpr int kIdColumn = kIdentityColumns;  // after HS_EDGE_IDENTITY
    for (;;) {
      auto row = (*sel)->step();
      if (!row) return row.error();
      if (!*row) break;
      if (auto it = by_id.find((*sel)->col_i64(kIdColumn)); it != by_id.end()) take(it->first, it->second);
    }
  }
  std::sort(order.begin(), order.end());
  std::map<std::string, IntervalRow> by_edge;
  for (const auto& [_, id] : order) {
    IntervalRow& r = by_id.at(id).r;
    auto [it, fresh] = by_edge.try_emplace(edge_key(r), std::move(r));  // moves only when fresh
    if (!fresh) merge_row(it->second, r);
  }
  topology::TopologySnapshot s;
  s.taken_ns = to_ns;
  s.edges.reserve(by_edge.size());
  for (const auto& [_, r] : by_edge) s.edges.push_back(to_edge(r));
  topology::canonicalize(s);
  return s;
}

Result<std::string> Store::integrity_check() { return check("PRAGMA integrity_check"); }

Result<std::string> Store::check(const char* pragma) {
  auto st = db_->prepare(pragma, "integrity check");
  if (!st) return st.error();
  std::string out;
  for (;;) {
    auto row = st->step();
    if (!row) return row.error();
    if (!*row) break;
    out += (out.empty() ? "" : "; ") + st->col_text(0);
  }
  return out;
}

Result<StoreStatus> Store::status() {
  StoreStatus s;
  s.path = path();
  auto v = schema_version(*db_);
  if (!v) return v.error();
  s.schema_version = *v;
  s.file_bytes = file_size(path()) + file_size(path() + "-wal");
  auto used = used_bytes();
  if (!used) return used.error();
  s.used_bytes = *used;
  auto agg = db_->prepare("SELECT tier, count(*), min(start_ns), max(" HS_END_NS("") ") FROM intervals GROUP BY tier",
                         "read row counts");
  if (!agg) return agg.error();
  for (;;) {
    auto row = agg->step();
    if (!row) return row.error();
    if (!*row) break;
    s.rows_by_width[kTiers[std::min<uint64_t>(agg->col_u64(0), std::size(kTiers) - 1)].width_ns] += agg->col_u64(1);
    s.rows += agg->col_u64(1);
    uint64_t lo = agg->col_u64(2), hi = agg->col_u64(3);
    s.oldest_ns = s.oldest_ns ? std::min(s.oldest_ns, lo) : lo;
    s.newest_ns = std::max(s.newest_ns, hi);
  }
  auto summaries = db_->query_int("SELECT count(*) FROM summaries", "count summary rows");
  if (!summaries) return summaries.error();
  s.summary_rows = uint64_t(*summaries);
  auto edges = db_->query_int("SELECT count(*) FROM edges", "count edges");
  if (!edges) return edges.error();
  s.edges = uint64_t(*edges);
  auto meta = db_->prepare("SELECT key, value FROM meta WHERE key <> 'schema_version'", "read counters");
  if (!meta) return meta.error();
  for (const char* k : {"rows_written", "intervals_written", "intervals_dropped", "rows_rolled_up", "rows_rolled_up_early",
                        "rows_evicted_age",
                        "rows_evicted_size", "last_write_ns"})
    s.counters[k] = 0;
  for (;;) {
    auto row = meta->step();
    if (!row) return row.error();
    if (!*row) break;
    s.counters[meta->col_text(0)] = meta->col_u64(1);
  }
  return s;
}

#undef HS_END_NS

}  // namespace hostscope::history
