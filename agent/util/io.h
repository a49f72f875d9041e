#pragma once
// Writes all of a buffer to a descriptor, retrying short writes and EINTR. MSG_NOSIGNAL semantics are the
// caller's: SIGPIPE is ignored process-wide (cli/signals.h), so a vanished reader shows up as EPIPE here.
#include <unistd.h>

#include <cerrno>
#include <cstddef>

namespace hostscope {

inline bool write_all(int fd, const char* p, size_t n) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= size_t(w);
  }
  return true;
}

}  // namespace hostscope
