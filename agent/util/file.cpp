#include "agent/util/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/fd.h"

namespace hostscope {

Result<std::string> read_regular_file(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO without a writer must not hang; it is refused below like any non-file.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd) return errorf_errno(errno, "{}: open failed", path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errorf_errno(errno, "{}: fstat failed", path);
  if (!S_ISREG(st.st_mode)) return errorf("{}: not a regular file", path);
  if (static_cast<unsigned long long>(st.st_size) > max_bytes) return errorf("{}: larger than {} bytes", path, max_bytes);
  std::string out;
  out.resize(static_cast<size_t>(st.st_size) + 1);  // one more: a file that grew since fstat is noticed
  size_t have = 0;
  while (have < out.size()) {
    const ssize_t n = ::read(fd.get(), out.data() + have, out.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errorf_errno(errno, "{}: read failed", path);
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
    if (have == out.size() && out.size() <= max_bytes) out.resize(std::min(max_bytes + 1, out.size() * 2));
  }
  if (have > max_bytes) return errorf("{}: larger than {} bytes", path, max_bytes);
  out.resize(have);
  return out;
}

}  // namespace hostscope
