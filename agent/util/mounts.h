#pragma once
// Kernel filesystems the agent needs: tracefs (classic tracepoints) and bpffs (pinning). A new machine has
// neither mounted; the agent mounts them when missing.
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hostscope {

inline constexpr const char* kTracefsPath = "/sys/kernel/tracing";
inline constexpr const char* kBpffsPath = "/sys/fs/bpf";

bool is_mounted_as(const char* path, long fs_magic);
Status ensure_tracefs();
Status ensure_bpffs();

// Mount point and file-system type of each line of /proc/<pid>/mountinfo text (octal escapes such as \040
// decoded); malformed lines are skipped.
struct MountEntry {
  std::string point, fstype;
};
std::vector<MountEntry> parse_mountinfo(std::string_view text);
// The first mount of `fstype`, "" when there is none.
std::string first_mount_of_type(const std::vector<MountEntry>& mounts, std::string_view fstype);

}  // namespace hostscope
