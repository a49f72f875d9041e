#pragma once
// Files under the policy state directory are replaced atomically and durably (write <name>.tmp, fsync it, rename,
// fsync the directory), so a crash, a power cut or a full disk leaves either the old content or the new, never a
// torn file. One process at a time changes the directory (and the rules it describes): StateLock.
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace hostscope::policy {

// `sync_dir` false: the rename becomes durable with the next fsync of the directory (a caller that makes one before
// anything relies on the file; each fsync costs a journal commit, ~5 ms on the test machines' disks).
Status write_file_atomic(const std::filesystem::path& p, const std::string& text, bool sync_dir = true);
// Several files, each replaced atomically as above, with fewer journal commits: every <name>.tmp is written, then all
// are fsynced, renamed in the order given, and the directory (of each) fsynced once. After a crash each file is old
// or new, and (on journalled file systems, which commit renames in order) a file is new only if those before it are.
Status write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files);
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
