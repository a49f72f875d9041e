#pragma once
// Bounded reads of whole configuration files: the type and size are checked on the open descriptor before
// anything is read, so /dev/zero, a FIFO or a sparse terabyte cannot make a reader block or allocate without
// bound (issue 15: `--config /dev/zero` ended in std::bad_alloc).
#include <cstddef>
#include <string>

#include "common/result.h"

namespace hostscope {

// The whole of a regular file of at most `max_bytes`. Errors (each naming `path`): open failed (with errno),
// "not a regular file", "larger than N bytes" (from fstat, or because it grew while read).
Result<std::string> read_regular_file(const std::string& path, size_t max_bytes);

}  // namespace hostscope
