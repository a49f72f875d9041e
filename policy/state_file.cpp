#include "policy/state_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
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

namespace {

std::filesystem::path tmp_of(const std::filesystem::path& p) {
  auto tmp = p;
  tmp += ".tmp";
  return tmp;
}

// Writes <p>.tmp; returns its open fd (to fsync), or -1 with the error in `err`.
int write_tmp(const std::filesystem::path& p, const std::string& text, Error& err) {
  auto tmp = tmp_of(p);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    err = Error{fmt::format("policy state file {} open for write failed: {}", tmp.string(), std::strerror(errno))};
    return -1;
  }
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;
      close(fd);
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      err = Error{fmt::format("policy state file {} write failed: {}", tmp.string(), std::strerror(e))};
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

}  // namespace

Status write_file_atomic(const std::filesystem::path& p, const std::string& text, bool sync_dir_after) {
  Error err;
  int fd = write_tmp(p, text, err);
  if (fd < 0) return err;
  auto tmp = tmp_of(p);
  int e = fsync(fd) != 0 ? errno : 0;
  close(fd);
  if (e != 0) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    return Error{fmt::format("policy state file {} write failed: {}", tmp.string(), std::strerror(e))};
  }
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec) return Error{fmt::format("policy state file {} rename failed: {}", p.string(), ec.message())};
  return sync_dir_after ? sync_dir(p.parent_path()) : Status{};
}

Status write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files) {
  std::vector<int> fds;
  Error err;
  auto discard = [&](size_t written) {
    for (size_t i = 0; i < written; ++i) {
      if (fds[i] >= 0) close(fds[i]);
      std::error_code ec;
      std::filesystem::remove(tmp_of(files[i].first), ec);
    }
  };
  for (const auto& [p, text] : files) {
    int fd = write_tmp(p, text, err);
    if (fd < 0) {
      discard(fds.size());
      return err;
    }
    fds.push_back(fd);
  }
  // One journal commit carries every file written so far: the fsyncs after the first find little left to do.
  for (size_t i = 0; i < files.size(); ++i) {
    if (fsync(fds[i]) != 0) {
      int e = errno;
      discard(files.size());
      return Error{fmt::format("policy state file {} write failed: {}", tmp_of(files[i].first).string(), std::strerror(e))};
    }
  }
  for (int& fd : fds) {
    close(fd);
    fd = -1;
  }
  std::vector<std::filesystem::path> dirs;
  for (const auto& [p, text] : files) {
    std::error_code ec;
    std::filesystem::rename(tmp_of(p), p, ec);
    if (ec) {
      for (const auto& [q, t] : files) std::filesystem::remove(tmp_of(q), ec);
      return Error{fmt::format("policy state file {} rename failed: {}", p.string(), ec.message())};
    }
    if (std::find(dirs.begin(), dirs.end(), p.parent_path()) == dirs.end()) dirs.push_back(p.parent_path());
  }
  for (const auto& d : dirs)
    if (auto r = sync_dir(d); !r) return r;
  return {};
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
