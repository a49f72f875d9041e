#pragma once
// Kernel filesystems the agent needs: tracefs (classic tracepoints) and bpffs (pinning). A new machine has
// neither mounted; the agent mounts them when missing.
#include "agent/util/result.h"

namespace hostscope {

inline constexpr const char* kTracefsPath = "/sys/kernel/tracing";
inline constexpr const char* kBpffsPath = "/sys/fs/bpf";

bool is_mounted_as(const char* path, long fs_magic);
Status ensure_tracefs();
Status ensure_bpffs();

}  // namespace hostscope
