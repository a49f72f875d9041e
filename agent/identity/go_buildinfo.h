#pragma once
// Go build information (`go version -m`) read from an ELF executable without running it.
//
// The agent passes /proc/PID/exe so deleted binaries and binaries in other mount namespaces work.
// Every read is bounded by the file size and by GoParseLimits; malformed input yields an error,
// never a crash. See docs/go-identity.md for the lookup order and the fallbacks. The ELF view it reads
// through is elf_reader.h; this file's go_buildinfo.cpp locates and decodes the build info blob.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/elf_reader.h"
#include "common/result.h"

namespace hostscope::identity {

// Why a read failed; the Error message says the same in words and names the file.
enum class GoErrorKind : uint8_t {
  kNone = 0,
  kIo,       // open/stat/read failed (errno in Error::err)
  kNotElf,   // no ELF magic
  kNotGo,    // a valid ELF without Go build info
  kCorrupt,  // truncated or inconsistent: tables or strings outside the file, bad varint, bad modinfo
};
const char* go_error_kind_name(GoErrorKind k);

struct GoModuleVersion {
  std::string path;
  std::string version;
  std::string sum;
  bool operator==(const GoModuleVersion&) const = default;
};

struct GoModule : GoModuleVersion {
  std::optional<GoModuleVersion> replace;  // "=>" line
  bool operator==(const GoModule&) const = default;
};

struct GoBuildSetting {
  std::string key;
  std::string value;
  bool operator==(const GoBuildSetting&) const = default;
};

// Where the build info was found, in lookup order.
enum class GoBuildInfoSource : uint8_t {
  kSection,         // the .go.buildinfo section
  kSegmentScan,     // "\xff Go buildinf:" found by scanning PT_LOAD segments (no section headers)
  kModinfoMarkers,  // no header: modinfo sentinels plus a go1.N version string
};
const char* go_build_info_source_name(GoBuildInfoSource s);

struct GoBuildInfo {
  std::string go_version;  // runtime.buildVersion, e.g. "go1.19.8"
  std::string path;        // main package path
  GoModule main;           // empty when built outside module mode
  std::vector<GoModule> deps;
  std::vector<GoBuildSetting> settings;  // in file order: -buildmode, -ldflags, CGO_ENABLED, GOOS, vcs.*, ...
  bool deps_truncated = false;           // GoParseLimits::max_deps or max_modinfo_bytes cut the list

  GoBuildInfoSource source = GoBuildInfoSource::kSection;
  bool inline_strings = false;  // 1.18+ header format (flag bit 2); false: pre-1.18 pointer format
  uint8_t ptr_size = 0;         // from the header; 0 when found through the markers
  uint16_t elf_machine = 0;     // EM_X86_64, EM_AARCH64, ...

  // Value of a build setting, or nullptr (e.g. setting("vcs.revision")).
  const std::string* setting(std::string_view key) const;
  // Same text as Go's debug.BuildInfo.String(): "go\t<ver>\n", "path\t...", "mod\t...", "dep\t...",
  // "build\tk=v" with Go's quoting. `go version -m` prints these lines after "FILE: <ver>".
  std::string to_string() const;
};

struct GoParseLimits {
  size_t max_modinfo_bytes = 256 * 1024;  // longer modinfo is cut at the last whole line
  size_t max_version_bytes = 1024;
  size_t max_deps = 4096;
  uint64_t max_read_bytes = 64ull << 20;   // all reads of one image together; past it the image is refused
};

// Reads from a path (typically /proc/PID/exe). `kind`, when given, receives the failure class.
Result<GoBuildInfo> read_go_build_info(const std::string& path, GoErrorKind* kind = nullptr,
                                       const GoParseLimits& limits = {});
// Same, from an open file descriptor (not closed); `name` is only used in messages.
Result<GoBuildInfo> read_go_build_info_fd(int fd, const std::string& name, GoErrorKind* kind = nullptr,
                                          const GoParseLimits& limits = {});
// Same, from an in-memory image (used by the fuzzer and by tests).
Result<GoBuildInfo> parse_go_build_info(std::span<const uint8_t> image, GoErrorKind* kind = nullptr,
                                        const GoParseLimits& limits = {});

// Parses the modinfo text (between the sentinels) exactly like Go's runtime/debug.ParseBuildInfo
// (go_modinfo.cpp, with GoBuildInfo::to_string).
Result<GoBuildInfo> parse_go_modinfo(std::string_view modinfo, size_t max_deps = 4096);

// Go's strconv.Quote / strconv.Unquote, as used for build setting keys and values (go_quote.cpp).
std::string go_quote(std::string_view s);
std::optional<std::string> go_unquote(std::string_view s);

// Same as read_go_build_info, from any byte source (its read budget becomes limits.max_read_bytes).
Result<GoBuildInfo> read_go_build_info(goelf::ByteSource src, const std::string& name, GoErrorKind* kind = nullptr,
                                       const GoParseLimits& limits = {});
}  // namespace hostscope::identity
