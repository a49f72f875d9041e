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

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_octal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    auto octal = [&](size_t k, char max) { return s[k] >= '0' && s[k] <= max; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1, '3') && octal(i + 2, '7') && octal(i + 3, '7')) {
      out.push_back(char((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::vector<MountEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountEntry> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>"
    size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    std::string_view after = line.substr(dash + 3);
    size_t p = 0;
    for (int field = 0; field < 4 && p != std::string_view::npos; field++) p = line.find(' ', p + 1);
    if (p == std::string_view::npos || p > dash) continue;
    std::string_view point = line.substr(p + 1);
    point = point.substr(0, point.find(' '));
    std::string_view type = after.substr(0, after.find(' '));
    if (point.empty() || type.empty()) continue;
    out.push_back({unescape_octal(point), std::string(type)});
  }
  return out;
}

std::string first_mount_of_type(const std::vector<MountEntry>& mounts, std::string_view fstype) {
  for (const auto& m : mounts)
    if (m.fstype == fstype) return m.point;
  return "";
}

Status ensure_tracefs() { return ensure_mount(kTracefsPath, "tracefs", TRACEFS_MAGIC); }
Status ensure_bpffs() { return ensure_mount(kBpffsPath, "bpf", BPF_FS_MAGIC); }

}  // namespace hostscope
