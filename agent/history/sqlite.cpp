#include "agent/history/sqlite.h"

#include <sqlite3.h>

#include <climits>
#include <utility>

namespace hostscope::history {

Stmt::Stmt(Stmt&& o) noexcept
    : db_(std::exchange(o.db_, nullptr)), s_(std::exchange(o.s_, nullptr)), what_(std::move(o.what_)) {}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (s_) sqlite3_finalize(s_);
    db_ = std::exchange(o.db_, nullptr);
    s_ = std::exchange(o.s_, nullptr);
    what_ = std::move(o.what_);
  }
  return *this;
}

Stmt::~Stmt() {
  if (s_) sqlite3_finalize(s_);
}

Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(s_, i, v);
  return *this;
}
Stmt& Stmt::bind_u64(int i, uint64_t v) { return bind(i, v > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v)); }
Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_blob(int i, const void* p, size_t n) {
  sqlite3_bind_blob(s_, i, p, int(n), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(s_, i);
  return *this;
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  auto e = db_->error(what_, rc);
  sqlite3_reset(s_);
  return e;
}

Status Stmt::run() {
  for (;;) {
    auto r = step();
    if (!r) return r.error();
    if (!*r) break;
  }
  reset();
  return {};
}

void Stmt::reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
}

int64_t Stmt::col_i64(int i) const { return sqlite3_column_int64(s_, i); }
uint64_t Stmt::col_u64(int i) const {
  int64_t v = sqlite3_column_int64(s_, i);
  return v < 0 ? 0 : uint64_t(v);
}
std::string Stmt::col_text(int i) const {
  auto* p = sqlite3_column_text(s_, i);
  return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, i))) : std::string();
}
std::string Stmt::col_blob(int i) const {
  auto* p = sqlite3_column_blob(s_, i);
  return p ? std::string(static_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, i))) : std::string();
}
bool Stmt::col_null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }

Db::Db(Db&& o) noexcept : db_(std::exchange(o.db_, nullptr)), path_(std::move(o.path_)) {}

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(o.db_, nullptr);
    path_ = std::move(o.path_);
  }
  return *this;
}

Db::~Db() {
  if (db_) sqlite3_close_v2(db_);
}

Result<Db> Db::open(const std::string& path, bool read_only) {
  sqlite3* h = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;  // one thread per connection
  int rc = sqlite3_open_v2(path.c_str(), &h, flags, nullptr);
  Db db(h, path);  // closes `h` on every path, also when open failed
  if (rc != SQLITE_OK) return db.error(read_only ? "open (read-only)" : "open", rc);
  sqlite3_extended_result_codes(h, 1);
  // A reader and the agent's writer may meet on the file; wait for the other side's short transaction.
  sqlite3_busy_timeout(h, 5000);
  return db;
}

Result<Stmt> Db::prepare(std::string_view sql, std::string what) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), int(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    if (s) sqlite3_finalize(s);
    return error("prepare " + what, rc);
  }
  return Stmt(this, s, std::move(what));
}

Status Db::exec(std::string_view sql, std::string_view what) {
  std::string s(sql);
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return error(what, rc);
  return {};
}

Result<int64_t> Db::query_int(std::string_view sql, std::string_view what) {
  auto st = prepare(sql, std::string(what));
  if (!st) return st.error();
  auto r = st->step();
  if (!r) return r.error();
  if (!*r) return errorf("history {} {} failed: no row", path_, what);
  return st->col_i64(0);
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }

Error Db::error(std::string_view what) const { return error(what, db_ ? sqlite3_extended_errcode(db_) : SQLITE_ERROR); }

Error Db::error(std::string_view what, int rc) const {
  const char* msg = db_ && sqlite3_errcode(db_) != SQLITE_OK ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  int os = db_ ? sqlite3_system_errno(db_) : 0;
  return errorf_errno(os, "history {} {} failed: {}", path_, what, msg);
}

Result<StmtLease> StmtCache::get(Db& db, size_t index, std::string_view sql, const char* what) {
  if (index >= stmts_.size()) stmts_.resize(index + 1);
  if (!stmts_[index].prepared()) {
    auto st = db.prepare(sql, what);
    if (!st) return st.error();
    stmts_[index] = std::move(*st);
  }
  return StmtLease(stmts_[index]);
}

Transaction::~Transaction() {
  if (open_) (void)db_.exec("ROLLBACK", "rollback");
}

Status Transaction::begin() {
  if (auto st = db_.exec("BEGIN IMMEDIATE", "begin transaction"); !st) return st;
  open_ = true;
  return {};
}

Status Transaction::commit() {
  auto st = db_.exec("COMMIT", "commit");
  if (st) open_ = false;
  return st;
}

}  // namespace hostscope::history
