#pragma once
// Thin RAII over SQLite for the history store: one owner per connection and per prepared statement, errors as
// Result naming the database file and the operation ("history /var/lib/hostscope/history.db insert interval
// failed: database or disk is full"). Nothing here knows the schema.
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hostscope::history {

class Db;

// A prepared statement; reset after each use so it can be run again (the store keeps its hot ones).
class Stmt {
 public:
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&& o) noexcept;
  ~Stmt();

  // Binds are 1-based like SQLite's; unsigned values above INT64_MAX are stored as INT64_MAX (never wrap negative).
  Stmt& bind(int i, int64_t v);
  Stmt& bind_u64(int i, uint64_t v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind_blob(int i, const void* p, size_t n);
  Stmt& bind_null(int i);
  // One step: true while a row is available, false when done; errors name `what`.
  Result<bool> step();
  // Runs to completion (statements without rows or whose rows are ignored), then resets.
  Status run();
  void reset();
  bool prepared() const { return s_ != nullptr; }

  int64_t col_i64(int i) const;
  uint64_t col_u64(int i) const;  // negative values read as 0
  std::string col_text(int i) const;
  std::string col_blob(int i) const;
  bool col_null(int i) const;

 private:
  friend class Db;
  Stmt(Db* db, sqlite3_stmt* s, std::string what) : db_(db), s_(s), what_(std::move(what)) {}
  Db* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  std::string what_;
};

class Db {
 public:
  Db() = default;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  Db(Db&& o) noexcept;
  Db& operator=(Db&& o) noexcept;
  ~Db();

  // Opens (read-write creates the file, mode 0600 by the caller's umask); read-only never creates or writes.
  static Result<Db> open(const std::string& path, bool read_only);
  bool is_open() const { return db_ != nullptr; }
  const std::string& path() const { return path_; }

  // Statements; `what` names the operation in errors ("insert interval").
  Result<Stmt> prepare(std::string_view sql, std::string what);
  Status exec(std::string_view sql, std::string_view what);
  // A single integer from `sql` (PRAGMA page_count, SELECT count(*) ...).
  Result<int64_t> query_int(std::string_view sql, std::string_view what);
  int64_t changes() const;

  // "history <path> <what> failed: <sqlite message>" (with errno when SQLite had one).
  Error error(std::string_view what) const;
  Error error(std::string_view what, int rc) const;

 private:
  explicit Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_ = nullptr;
  std::string path_;
};

// A kept statement lent out for one use: reset (bindings cleared) when the lease ends, so an early return never
// leaves a statement mid-step holding a read open on the file.
class StmtLease {
 public:
  explicit StmtLease(Stmt& s) : s_(&s) {}
  StmtLease(StmtLease&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StmtLease(const StmtLease&) = delete;
  StmtLease& operator=(const StmtLease&) = delete;
  StmtLease& operator=(StmtLease&&) = delete;
  ~StmtLease() {
    if (s_) s_->reset();
  }
  Stmt* operator->() const { return s_; }
  Stmt& operator*() const { return *s_; }

 private:
  Stmt* s_;
};

// Statements prepared once per connection, each under a small index the owner chooses. The owner declares the cache
// after its Db (at a stable address) so the statements are finalized before the connection closes.
class StmtCache {
 public:
  Result<StmtLease> get(Db& db, size_t index, std::string_view sql, const char* what);
  void clear() { stmts_.clear(); }

 private:
  std::deque<Stmt> stmts_;  // growing at the end keeps the lent statements where they are
};

// Runs its statements in one transaction: commit() or rolled back when destroyed.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  Status begin();
  Status commit();

 private:
  Db& db_;
  bool open_ = false;
};

}  // namespace hostscope::history
