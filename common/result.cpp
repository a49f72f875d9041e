#include "common/result.h"

namespace hostscope {

const char* Error::errno_name(int e) {
  switch (e) {
#define X(n) \
  case n:    \
    return #n;
    X(EPERM) X(ENOENT) X(ESRCH) X(EINTR) X(EIO) X(ENXIO) X(E2BIG) X(ENOEXEC) X(EBADF) X(ECHILD) X(EAGAIN)
    X(ENOMEM) X(EACCES) X(EFAULT) X(EBUSY) X(EEXIST) X(ENODEV) X(ENOTDIR) X(EISDIR) X(EINVAL) X(ENFILE)
    X(EMFILE) X(ENOSPC) X(ERANGE) X(ENOSYS) X(ENOTSUP)
#undef X
    default:
      return "errno";
  }
}

}  // namespace hostscope
