#include "agent/identity/go_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace hostscope::identity {

size_t GoIdentityCache::KeyHash::operator()(const GoBinaryKey& k) const {
  uint64_t h = k.dev * 0x9e3779b97f4a7c15ull;
  h ^= k.ino + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= static_cast<uint64_t>(k.mtime_ns) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return static_cast<size_t>(h);
}

GoIdentityCache::GoIdentityCache(size_t capacity, Parser parser)
    : parser_(parser ? std::move(parser) : Parser(&GoIdentityCache::parse)),
      capacity_(capacity == 0 ? 1 : capacity) {}

GoBinaryIdentity GoIdentityCache::parse(int fd, const std::string& name) {
  GoBinaryIdentity id;
  GoErrorKind kind = GoErrorKind::kNone;
  auto bi = read_go_build_info_fd(fd, name, &kind);
  if (!bi) {
    id.build_error_kind = kind;
    id.build_error = bi.error().str();
    return id;
  }
  auto offs = read_go_offsets_fd(fd, name, *bi);
  if (offs)
    id.offsets = std::move(*offs);
  else
    id.offsets_error = offs.error().str();
  id.build_info = std::move(*bi);
  return id;
}

Result<std::shared_ptr<const GoBinaryIdentity>> GoIdentityCache::lookup(const std::string& exe_path) {
  // Open first and stat the descriptor: the key then describes exactly the bytes we parse, even if
  // the path is replaced meanwhile.
  const int fd = ::open(exe_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errorf_errno(errno, "go identity lookup of {} failed: open", exe_path);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errorf_errno(errno, "go identity lookup of {} failed: fstat", exe_path);
  const GoBinaryKey key{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};

  std::promise<std::shared_ptr<const GoBinaryIdentity>> promise;
  Value value;
  bool owner = false;  // this call parses; others wait on the shared future
  {
    std::lock_guard lock(mu_);
    if (auto it = map_.find(key); it != map_.end()) {
      stats_.hits++;
      lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
      value = it->second.value;
    } else {
      stats_.misses++;
      owner = true;
      value = promise.get_future().share();
      lru_.push_front(key);
      map_.emplace(key, Entry{value, lru_.begin()});
      evict_locked();
    }
  }
  if (!owner) return value.get();

  // Parse outside the lock so lookups of other binaries are not held up.
  std::shared_ptr<const GoBinaryIdentity> result;
  try {
    result = std::make_shared<const GoBinaryIdentity>(parser_(fd, exe_path));
  } catch (const std::exception& e) {
    GoBinaryIdentity failed;
    failed.build_error_kind = GoErrorKind::kIo;
    failed.build_error = fmt::format("go identity parse of {} failed: {}", exe_path, e.what());
    result = std::make_shared<const GoBinaryIdentity>(std::move(failed));
  }
  if (result->build_error_kind == GoErrorKind::kCorrupt) {
    // Hostile or damaged headers (issue 15): refused within the reader's bounds, counted, never retried
    // while the binary is cached.
    spdlog::debug("{}", result->build_error);
    std::lock_guard lock(mu_);
    stats_.refused++;
  }
  promise.set_value(result);
  return result;
}

void GoIdentityCache::evict_locked() {
  while (map_.size() > capacity_ && !lru_.empty()) {
    map_.erase(lru_.back());
    lru_.pop_back();
    stats_.evictions++;
  }
}

GoIdentityCache::Stats GoIdentityCache::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.size = map_.size();
  s.capacity = capacity_;
  return s;
}

void GoIdentityCache::set_capacity(size_t capacity) {
  std::lock_guard lock(mu_);
  capacity_ = capacity == 0 ? 1 : capacity;
  evict_locked();
}

}  // namespace hostscope::identity
