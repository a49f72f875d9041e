#include "agent/util/mounts.h"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "agent/util/logging.h"

namespace hostscope {

bool is_mounted_as(const char* path, long fs_magic) {
  struct statfs st{};
  return statfs(path, &st) == 0 && static_cast<long>(st.f_type) == fs_magic;
}

static Status ensure_mount(const char* path, const char* fstype, long magic) {
  if (is_mounted_as(path, magic)) return {};
  ::mkdir(path, 0700);  // usually exists; a failure shows up in mount()
  if (::mount(fstype, path, fstype, 0, nullptr) != 0) return errorf_errno(errno, "mount {} on {}", fstype, path);
  spdlog::info("mounted {} on {}", fstype, path);
  return {};
}

Status ensure_tracefs() { return ensure_mount(kTracefsPath, "tracefs", TRACEFS_MAGIC); }
Status ensure_bpffs() { return ensure_mount(kBpffsPath, "bpf", BPF_FS_MAGIC); }

}  // namespace hostscope
