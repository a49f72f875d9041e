#pragma once
// A bounded, read-only ELF view shared by the Go build info reader (go_buildinfo.h) and the offset finder
// (go_offsets.h). It parses headers itself (not libelf) so every offset is checked against the image size.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hostscope::identity {

// Why a read failed (defined in go_buildinfo.h); Image::open reports kNotElf / kCorrupt.
enum class GoErrorKind : uint8_t;

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

}  // namespace hostscope::identity
