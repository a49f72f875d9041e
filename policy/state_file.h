#pragma once
// Files under the policy state directory are replaced atomically and durably (write <name>.tmp, fsync it, rename,
// fsync the directory), so a crash, a power cut or a full disk leaves either the old content or the new, never a
// torn file. One process at a time changes the directory (and the rules it describes): StateLock.
#include <filesystem>
#include <string>

#include "common/result.h"

namespace hostscope::policy {

Status write_file_atomic(const std::filesystem::path& p, const std::string& text);
// Removes `p` (absent is fine) and makes the removal durable (fsync of the directory).
Status remove_file_durable(const std::filesystem::path& p);

// An exclusive flock on <dir>/lock, released when the holder is destroyed or its process dies (also by SIGKILL).
class StateLock {
 public:
  // Waits up to `timeout_ms` for another holder; the directory is created when missing.
  static Result<StateLock> acquire(const std::filesystem::path& dir, int timeout_ms = 60000);
  StateLock(StateLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateLock& operator=(StateLock&&) = delete;
  StateLock(const StateLock&) = delete;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace hostscope::policy
