#pragma once
// A bounded LRU of Go binary identities keyed by the executable's (st_dev, st_ino, st_mtime), so a
// binary shared by many processes (or restarted often) is parsed once. Non-Go results are cached too:
// most processes are not Go and must not cost a parse per lookup. Thread-safe; concurrent lookups of
// the same key wait for the one parse in flight.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "agent/identity/go_buildinfo.h"
#include "agent/identity/go_offsets.h"
#include "common/result.h"

namespace hostscope::identity {

struct GoBinaryIdentity {
  std::optional<GoBuildInfo> build_info;  // nullopt: not a Go binary or unreadable (see build_error)
  GoErrorKind build_error_kind = GoErrorKind::kNone;
  std::string build_error;
  std::optional<GoOffsets> offsets;  // only for Go binaries; nullopt with offsets_error otherwise
  std::string offsets_error;

  bool is_go() const { return build_info.has_value(); }
};

struct GoBinaryKey {
  uint64_t dev = 0;
  uint64_t ino = 0;
  int64_t mtime_ns = 0;
  bool operator==(const GoBinaryKey&) const = default;
};

class GoIdentityCache {
 public:
  // Parses one open executable; replaceable for tests.
  using Parser = std::function<GoBinaryIdentity(int fd, const std::string& name)>;

  explicit GoIdentityCache(size_t capacity = 1024, Parser parser = {});

  // Opens `exe_path` (e.g. /proc/PID/exe), keys it by fstat and returns the cached or fresh identity.
  // An error only when the file cannot be opened or stat'ed (the process may have exited).
  Result<std::shared_ptr<const GoBinaryIdentity>> lookup(const std::string& exe_path);

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;  // equals the number of parses
    uint64_t evictions = 0;
    uint64_t refused = 0;  // binaries refused as corrupt or oversized (hostile headers, truncated files)
    size_t size = 0;
    size_t capacity = 0;
  };
  Stats stats() const;
  void set_capacity(size_t capacity);  // evicts down to the new cap (minimum 1)

  // The default parser: build info, then offsets for Go binaries.
  static GoBinaryIdentity parse(int fd, const std::string& name);

 private:
  struct KeyHash {
    size_t operator()(const GoBinaryKey& k) const;
  };
  using Value = std::shared_future<std::shared_ptr<const GoBinaryIdentity>>;
  struct Entry {
    Value value;
    std::list<GoBinaryKey>::iterator lru_pos;
  };
  void evict_locked();

  Parser parser_;
  mutable std::mutex mu_;
  size_t capacity_;
  std::list<GoBinaryKey> lru_;  // front = most recently used
  std::unordered_map<GoBinaryKey, Entry, KeyHash> map_;
  Stats stats_;
};

}  // namespace hostscope::identity
