#pragma once
// Go build information (`go version -m`) read from an ELF executable without running it.
//
// The agent passes /proc/PID/exe so deleted binaries and binaries in other mount namespaces work.
// Every read is bounded by the file size and by GoParseLimits; malformed input yields an error,
// never a crash. See docs/go-identity.md for the lookup order and the fallbacks.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

// Parses the modinfo text (between the sentinels) exactly like Go's runtime/debug.ParseBuildInfo.
Result<GoBuildInfo> parse_go_modinfo(std::string_view modinfo, size_t max_deps = 4096);

// Go's strconv.Quote / strconv.Unquote, as used for build setting keys and values.
std::string go_quote(std::string_view s);
std::optional<std::string> go_unquote(std::string_view s);

// ---------------------------------------------------------------------------------------------
// A bounded, read-only ELF view shared by the build info reader and the offset finder.
// It parses headers itself (not libelf) so every offset is checked against the image size.
namespace goelf {

struct Segment {
  uint32_t type = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint64_t align = 0;
};

struct Section {
  std::string name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t link = 0;
  uint64_t entsize = 0;
};

struct Symbol {
  std::string name;
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;  // STT_*
};

// The most a header table (program or section headers) may occupy, whatever the file size claims:
// 16384 64-byte section headers (executables have tens). Issue 15: 65535 x 65535 claimed 4.29 GB.
inline constexpr uint64_t kMaxHeaderTableBytes = 1ull << 20;
// Reads of one image together, unless the caller sets another budget (GoParseLimits::max_read_bytes).
inline constexpr uint64_t kDefaultReadBudget = 64ull << 20;

// Where the bytes come from: a memory image or a file read with pread. Every read counts against a
// budget, so no header, however large its claims, makes a reader go through more than that.
class ByteSource {
 public:
  // `virtual_size` > image.size(): the image is followed by a hole of zeros up to that size, like a
  // sparse file (the fuzzer uses it to reach the size checks with small inputs).
  static ByteSource memory(std::span<const uint8_t> image, uint64_t virtual_size = 0);
  static ByteSource file(int fd, uint64_t size);
  uint64_t size() const { return size_; }
  // Reads exactly [off, off+len) into `out` (resized); an error when that range is outside the image
  // or the read would go past the budget.
  Status read(uint64_t off, uint64_t len, std::vector<uint8_t>& out) const;
  void set_read_budget(uint64_t bytes) { budget_ = bytes; }
  uint64_t bytes_read() const { return read_; }

 private:
  std::span<const uint8_t> mem_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t budget_ = kDefaultReadBudget;
  mutable uint64_t read_ = 0;
};

class Image {
 public:
  // Parses the ELF, program and section headers. `kind` receives kNotElf / kCorrupt on failure.
  static Result<Image> open(ByteSource src, GoErrorKind* kind = nullptr);

  bool is64() const { return is64_; }
  bool little_endian() const { return little_; }
  uint16_t machine() const { return machine_; }
  uint16_t type() const { return type_; }
  const std::vector<Segment>& segments() const { return segments_; }
  const std::vector<Section>& sections() const { return sections_; }
  const ByteSource& source() const { return src_; }
  const Section* section(std::string_view name) const;
  const Segment* segment_of_type(uint32_t type) const;

  // Reads up to `size` bytes at virtual address `addr` from the PT_LOAD segment that holds it in the
  // file (like debug/buildinfo's ReadData: the result is shorter when the segment ends first).
  Status read_vaddr(uint64_t addr, uint64_t size, std::vector<uint8_t>& out) const;
  // Looks a symbol up in .symtab (then .dynsym); nullopt when absent, stripped, or past the read
  // budget. Both tables are read in fixed-size chunks, never whole, whatever their claimed size.
  std::optional<Symbol> find_symbol(std::string_view name) const;

  uint64_t load_uint(const uint8_t* p, size_t width) const;

 private:
  ByteSource src_;
  bool is64_ = true;
  bool little_ = true;
  uint16_t machine_ = 0;
  uint16_t type_ = 0;
  std::vector<Segment> segments_;
  std::vector<Section> sections_;
};

}  // namespace goelf

// Same as read_go_build_info, from any byte source (its read budget becomes limits.max_read_bytes).
Result<GoBuildInfo> read_go_build_info(goelf::ByteSource src, const std::string& name, GoErrorKind* kind = nullptr,
                                       const GoParseLimits& limits = {});
}  // namespace hostscope::identity
