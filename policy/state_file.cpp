#include "policy/state_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace hostscope::policy {
namespace {

Status sync_dir(const std::filesystem::path& dir) {
  int fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error{fmt::format("policy state directory {} open failed: {}", dir.string(), std::strerror(errno))};
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  if (rc != 0) return Error{fmt::format("policy state directory {} fsync failed: {}", dir.string(), std::strerror(e))};
  return {};
}

}  // namespace

Status write_file_atomic(const std::filesystem::path& p, const std::string& text) {
  auto tmp = p;
  tmp += ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return Error{fmt::format("policy state file {} open for write failed: {}", tmp.string(), std::strerror(errno))};
  size_t done = 0;
  int e = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      e = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (e == 0 && fsync(fd) != 0) e = errno;
  close(fd);
  if (e != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return Error{fmt::format("policy state file {} write failed: {}", tmp.string(), std::strerror(e))};
  }
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec) return Error{fmt::format("policy state file {} rename failed: {}", p.string(), ec.message())};
  return sync_dir(p.parent_path());
}

Status remove_file_durable(const std::filesystem::path& p) {
  std::error_code ec;
  if (!std::filesystem::remove(p, ec)) {
    if (ec) return Error{fmt::format("policy state file {} remove failed: {}", p.string(), ec.message())};
    return {};
  }
  return sync_dir(p.parent_path());
}

Result<StateLock> StateLock::acquire(const std::filesystem::path& dir, int timeout_ms) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{fmt::format("policy state directory {} create failed: {}", dir.string(), ec.message())};
  auto path = dir / "lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error{fmt::format("policy state lock {} open failed: {}", path.string(), std::strerror(errno))};
  for (int waited = 0;; waited += 50) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) return StateLock(fd);
    if (errno != EWOULDBLOCK && errno != EINTR) break;
    if (waited >= timeout_ms) {
      close(fd);
      return Error{fmt::format("policy state lock {}: another hostscope process has held it for {} ms (an apply in progress?)",
                                 path.string(), timeout_ms)};
    }
    usleep(50000);
  }
  int e = errno;
  close(fd);
  return Error{fmt::format("policy state lock {} flock failed: {}", path.string(), std::strerror(e))};
}

StateLock::~StateLock() {
  if (fd_ >= 0) close(fd_);
}

}  // namespace hostscope::policy
