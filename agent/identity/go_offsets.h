#pragma once
// Go runtime offsets for goroutine attribution: a BPF program reads the current `g` from the
// thread's TLS (fsbase + g_tls_offset) and the goroutine id at g + goid_offset.
// The rules and the version table, with their sources, are in docs/go-identity.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/identity/go_buildinfo.h"
#include "common/result.h"

namespace hostscope::identity {

struct GoOffsets {
  int64_t g_tls_offset = 0;  // g is at (thread pointer + g_tls_offset); -8 for internally linked amd64
  uint32_t goid_offset = 0;  // offset of runtime.g.goid
  std::string source;        // how each was found, e.g. "goid=dwarf tls=pt_tls+runtime.tlsg"
};

// "go1.21.3", "go1.22rc1", "devel go1.23-abc123 ..." -> {1, 21}; nullopt when no go1.N is present.
struct GoVersion {
  int major = 0;
  int minor = 0;
};
std::optional<GoVersion> parse_go_version(std::string_view v);

// The most DWARF (decompressed) that goid_offset_from_dwarf lets libdw load; larger binaries use the
// version table. A Go hello world has about 2 MiB.
inline constexpr uint64_t kMaxDwarfBytes = 16ull << 20;

// The offset of runtime.g.goid from the binary's DWARF (compressed sections handled by libdw).
// An error when the binary has no DWARF (built with -ldflags=-w or stripped), no runtime.g, or DWARF
// over kMaxDwarfBytes.
Result<uint32_t> goid_offset_from_dwarf(int fd, const std::string& name);
Result<uint32_t> goid_offset_from_dwarf(const std::string& path);

// The per-version table for stripped binaries; an error for versions or machines it does not cover
// (never a guess). `elf_machine` is EM_X86_64 or EM_AARCH64.
Result<uint32_t> goid_offset_from_table(std::string_view go_version, uint16_t elf_machine);

// Offset of the g slot relative to the thread pointer (x86-64 fsbase); `source` describes the rule used.
Result<int64_t> g_tls_offset(const goelf::Image& img, std::string* source = nullptr);

// Everything at once from an open executable: DWARF first, then the table.
Result<GoOffsets> read_go_offsets_fd(int fd, const std::string& name, const GoBuildInfo& info);
Result<GoOffsets> read_go_offsets(const std::string& path, const GoBuildInfo& info);

}  // namespace hostscope::identity
