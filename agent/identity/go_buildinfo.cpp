#include "agent/identity/go_buildinfo.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <variant>

namespace hostscope::identity {

const char* go_error_kind_name(GoErrorKind k) {
  switch (k) {
    case GoErrorKind::kNone:
      return "none";
    case GoErrorKind::kIo:
      return "io";
    case GoErrorKind::kNotElf:
      return "not-elf";
    case GoErrorKind::kNotGo:
      return "not-go";
    case GoErrorKind::kCorrupt:
      return "corrupt";
  }
  return "unknown";
}

const char* go_build_info_source_name(GoBuildInfoSource s) {
  switch (s) {
    case GoBuildInfoSource::kSection:
      return "section";
    case GoBuildInfoSource::kSegmentScan:
      return "segment-scan";
    case GoBuildInfoSource::kModinfoMarkers:
      return "modinfo-markers";
  }
  return "unknown";
}

namespace {

// A failure with its class; converted to Error + GoErrorKind at the API edge.
struct Failure {
  GoErrorKind kind;
  std::string detail;
  int err = 0;
};

template <typename T>
using Parsed = std::variant<T, Failure>;

Failure corrupt(std::string detail) { return Failure{GoErrorKind::kCorrupt, std::move(detail)}; }

// The 16-byte header magic, its size and alignment (cmd/link buildinfo).
constexpr std::string_view kBuildInfoMagic{"\xff Go buildinf:", 14};
constexpr uint64_t kBuildInfoHeaderSize = 32;
constexpr uint64_t kBuildInfoAlign = 16;
// cmd/go/internal/modload infoStart / infoEnd: framing around the modinfo text.
constexpr std::array<uint8_t, 16> kInfoStart = {0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02,
                                                0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6, 0x18, 0xe6};
constexpr std::array<uint8_t, 16> kInfoEnd = {0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72,
                                              0x00, 0x82, 0x42, 0x10, 0x41, 0x16, 0xd8, 0xf2};
constexpr uint64_t kScanChunk = 1 << 20;

bool add_overflows(uint64_t a, uint64_t b) { return a > std::numeric_limits<uint64_t>::max() - b; }

}  // namespace

// ---------------------------------------------------------------------------------------------
namespace goelf {

ByteSource ByteSource::memory(std::span<const uint8_t> image, uint64_t virtual_size) {
  ByteSource s;
  s.mem_ = image;
  s.size_ = std::max<uint64_t>(image.size(), virtual_size);
  return s;
}

ByteSource ByteSource::file(int fd, uint64_t size) {
  ByteSource s;
  s.fd_ = fd;
  s.size_ = size;
  return s;
}

Status ByteSource::read(uint64_t off, uint64_t len, std::vector<uint8_t>& out) const {
  if (off > size_ || len > size_ - off) {
    return errorf("range [{:#x}, +{:#x}) is outside the {}-byte image (truncated?)", off, len, size_);
  }
  if (len > budget_ - std::min(read_, budget_)) {
    return errorf("read budget of {} bytes used up (reading [{:#x}, +{:#x}) after {} bytes)", budget_, off, len,
                  read_);
  }
  read_ += len;
  out.resize(len);
  if (len == 0) return {};
  if (fd_ < 0) {
    // Past the image: the hole of a sparse image reads as zeros.
    const uint64_t have = off < mem_.size() ? std::min<uint64_t>(len, mem_.size() - off) : 0;
    if (have > 0) std::memcpy(out.data(), mem_.data() + off, have);
    std::memset(out.data() + have, 0, len - have);
    return {};
  }
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, out.data() + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errorf_errno(errno, "pread at {:#x}", off + done);
    }
    // The file shrank under us: treat like a truncated image, never read past what exists.
    if (n == 0)
      return errorf("file ends at {:#x}, expected {} bytes (truncated while reading?)", off + done, len);
    done += static_cast<uint64_t>(n);
  }
  return {};
}

uint64_t Image::load_uint(const uint8_t* p, size_t width) const {
  uint64_t v = 0;
  for (size_t i = 0; i < width; i++) {
    size_t idx = little_ ? width - 1 - i : i;
    v = (v << 8) | p[idx];
  }
  return v;
}

const Section* Image::section(std::string_view name) const {
  for (const auto& s : sections_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

const Segment* Image::segment_of_type(uint32_t type) const {
  for (const auto& s : segments_) {
    if (s.type == type) return &s;
  }
  return nullptr;
}

Result<Image> Image::open(ByteSource src, GoErrorKind* kind) {
  auto fail = [&](GoErrorKind k, std::string msg) -> Result<Image> {
    if (kind) *kind = k;
    return make_error(std::move(msg));
  };
  Image img;
  img.src_ = src;
  std::vector<uint8_t> buf;
  const uint64_t fsize = src.size();
  if (fsize < 4 || !src.read(0, 4, buf) || std::memcmp(buf.data(), ELFMAG, SELFMAG) != 0) {
    return fail(GoErrorKind::kNotElf, "not an ELF file (no \\x7fELF magic)");
  }
  if (fsize < EI_NIDENT) return fail(GoErrorKind::kCorrupt, "truncated ELF header");
  if (auto st = src.read(0, EI_NIDENT, buf); !st) return fail(GoErrorKind::kIo, st.error().str());
  const uint8_t cls = buf[EI_CLASS], data = buf[EI_DATA];
  if (cls != ELFCLASS32 && cls != ELFCLASS64)
    return fail(GoErrorKind::kCorrupt, fmt::format("bad ELF class {}", cls));
  if (data != ELFDATA2LSB && data != ELFDATA2MSB) {
    return fail(GoErrorKind::kCorrupt, fmt::format("bad ELF data encoding {}", data));
  }
  img.is64_ = cls == ELFCLASS64;
  img.little_ = data == ELFDATA2LSB;
  const uint64_t ehsize = img.is64_ ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
  if (fsize < ehsize) return fail(GoErrorKind::kCorrupt, "truncated ELF header");
  if (auto st = src.read(0, ehsize, buf); !st) return fail(GoErrorKind::kIo, st.error().str());
  const uint8_t* h = buf.data();
  const size_t w = img.is64_ ? 8 : 4;  // width of address/offset fields
  img.type_ = static_cast<uint16_t>(img.load_uint(h + 16, 2));
  img.machine_ = static_cast<uint16_t>(img.load_uint(h + 18, 2));
  size_t p = 24 + w;  // past e_version and e_entry
  const uint64_t phoff = img.load_uint(h + p, w);
  const uint64_t shoff = img.load_uint(h + p + w, w);
  p += 2 * w + 4 + 2;  // e_phoff, e_shoff, e_flags, e_ehsize
  const uint64_t phentsize = img.load_uint(h + p, 2);
  uint64_t phnum = img.load_uint(h + p + 2, 2);
  const uint64_t shentsize = img.load_uint(h + p + 4, 2);
  uint64_t shnum = img.load_uint(h + p + 6, 2);
  uint64_t shstrndx = img.load_uint(h + p + 8, 2);

  const uint64_t min_shent = img.is64_ ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
  const uint64_t min_phent = img.is64_ ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);

  // Section header 0 carries the real counts when they overflow the 16-bit header fields.
  uint64_t sh0_size = 0, sh0_link = 0, sh0_info = 0;
  if (shoff != 0) {
    if (shentsize < min_shent)
      return fail(GoErrorKind::kCorrupt, fmt::format("bad e_shentsize {}", shentsize));
    if (add_overflows(shoff, shentsize) || shoff + shentsize > fsize) {
      return fail(
          GoErrorKind::kCorrupt,
          fmt::format("truncated: section headers at {:#x} are beyond the {}-byte file", shoff, fsize));
    }
    if (auto st = src.read(shoff, min_shent, buf); !st) return fail(GoErrorKind::kIo, st.error().str());
    sh0_size = img.load_uint(buf.data() + 4 + 4 + w + w + w, w);
    sh0_link = img.load_uint(buf.data() + 4 + 4 + 4 * w, 4);
    sh0_info = img.load_uint(buf.data() + 4 + 4 + 4 * w + 4, 4);
    if (shnum == 0) shnum = sh0_size;
    if (shstrndx == SHN_XINDEX) shstrndx = sh0_link;
  } else {
    shnum = 0;
  }
  if (phnum == PN_XNUM) phnum = sh0_info;
  constexpr uint64_t kMaxHeaders = 1 << 16;
  if (phnum > kMaxHeaders || shnum > kMaxHeaders) {
    return fail(GoErrorKind::kCorrupt,
                fmt::format("implausible header counts: {} segments, {} sections", phnum, shnum));
  }

  if (phnum > 0) {
    if (phentsize < min_phent)
      return fail(GoErrorKind::kCorrupt, fmt::format("bad e_phentsize {}", phentsize));
    const uint64_t len = phnum * phentsize;
    if (len > kMaxHeaderTableBytes) {
      return fail(GoErrorKind::kCorrupt,
                  fmt::format("program header table of {} x {} bytes is over the {}-byte cap", phnum, phentsize,
                              kMaxHeaderTableBytes));
    }
    if (add_overflows(phoff, len) || phoff + len > fsize) {
      return fail(GoErrorKind::kCorrupt,
                  fmt::format("truncated: program headers [{:#x}, +{:#x}) are beyond the {}-byte "
                              "file",
                              phoff, len, fsize));
    }
    if (auto st = src.read(phoff, len, buf); !st) return fail(GoErrorKind::kIo, st.error().str());
    img.segments_.reserve(phnum);
    for (uint64_t i = 0; i < phnum; i++) {
      const uint8_t* e = buf.data() + i * phentsize;
      Segment s;
      s.type = static_cast<uint32_t>(img.load_uint(e, 4));
      if (img.is64_) {
        s.flags = static_cast<uint32_t>(img.load_uint(e + 4, 4));
        s.offset = img.load_uint(e + 8, 8);
        s.vaddr = img.load_uint(e + 16, 8);
        s.filesz = img.load_uint(e + 32, 8);
        s.memsz = img.load_uint(e + 40, 8);
        s.align = img.load_uint(e + 48, 8);
      } else {
        s.offset = img.load_uint(e + 4, 4);
        s.vaddr = img.load_uint(e + 8, 4);
        s.filesz = img.load_uint(e + 16, 4);
        s.memsz = img.load_uint(e + 20, 4);
        s.flags = static_cast<uint32_t>(img.load_uint(e + 24, 4));
        s.align = img.load_uint(e + 28, 4);
      }
      if (s.type == PT_LOAD && (add_overflows(s.offset, s.filesz) || s.offset + s.filesz > fsize)) {
        return fail(GoErrorKind::kCorrupt,
                    fmt::format("truncated: segment {} [{:#x}, +{:#x}) is beyond the {}-byte file", i,
                                s.offset, s.filesz, fsize));
      }
      img.segments_.push_back(s);
    }
  }

  if (shnum > 0) {
    const uint64_t len = shnum * shentsize;
    if (len > kMaxHeaderTableBytes) {
      return fail(GoErrorKind::kCorrupt,
                  fmt::format("section header table of {} x {} bytes is over the {}-byte cap", shnum, shentsize,
                              kMaxHeaderTableBytes));
    }
    if (add_overflows(shoff, len) || shoff + len > fsize) {
      return fail(GoErrorKind::kCorrupt,
                  fmt::format("truncated: section headers [{:#x}, +{:#x}) are beyond the {}-byte "
                              "file",
                              shoff, len, fsize));
    }
    if (auto st = src.read(shoff, len, buf); !st) return fail(GoErrorKind::kIo, st.error().str());
    std::vector<uint32_t> name_offs;
    img.sections_.reserve(shnum);
    name_offs.reserve(shnum);
    for (uint64_t i = 0; i < shnum; i++) {
      const uint8_t* e = buf.data() + i * shentsize;
      Section s;
      name_offs.push_back(static_cast<uint32_t>(img.load_uint(e, 4)));
      s.type = static_cast<uint32_t>(img.load_uint(e + 4, 4));
      s.flags = img.load_uint(e + 8, w);
      s.addr = img.load_uint(e + 8 + w, w);
      s.offset = img.load_uint(e + 8 + 2 * w, w);
      s.size = img.load_uint(e + 8 + 3 * w, w);
      s.link = static_cast<uint32_t>(img.load_uint(e + 8 + 4 * w, 4));
      s.entsize = img.load_uint(e + 8 + 4 * w + 8 + w, w);
      if (s.type != SHT_NOBITS && s.type != SHT_NULL &&
          (add_overflows(s.offset, s.size) || s.offset + s.size > fsize)) {
        return fail(GoErrorKind::kCorrupt,
                    fmt::format("truncated: section {} [{:#x}, +{:#x}) is beyond the {}-byte file", i,
                                s.offset, s.size, fsize));
      }
      img.sections_.push_back(std::move(s));
    }
    // Names are optional: a damaged string table leaves them empty rather than failing the image.
    constexpr uint64_t kMaxShstrtab = 1 << 20;
    if (shstrndx < shnum) {
      const Section& strs = img.sections_[shstrndx];
      if (strs.type != SHT_NOBITS && strs.size <= kMaxShstrtab && !add_overflows(strs.offset, strs.size) &&
          strs.offset + strs.size <= fsize) {
        std::vector<uint8_t> names;
        if (src.read(strs.offset, strs.size, names)) {
          for (uint64_t i = 0; i < shnum; i++) {
            uint64_t off = name_offs[i];
            if (off >= names.size()) continue;
            const auto* start = reinterpret_cast<const char*>(names.data() + off);
            img.sections_[i].name.assign(start, strnlen(start, std::min<uint64_t>(names.size() - off, 256)));
          }
        }
      }
    }
  }
  img.src_ = src;  // with the bytes the headers took counted against its budget
  return img;
}

Status Image::read_vaddr(uint64_t addr, uint64_t size, std::vector<uint8_t>& out) const {
  for (const auto& s : segments_) {
    if (s.type != PT_LOAD || s.filesz == 0) continue;
    if (addr < s.vaddr || addr - s.vaddr >= s.filesz) continue;
    const uint64_t rel = addr - s.vaddr;
    const uint64_t n = std::min(size, s.filesz - rel);
    return src_.read(s.offset + rel, n, out);
  }
  return errorf("address {:#x} is not in any loaded segment", addr);
}

std::optional<Symbol> Image::find_symbol(std::string_view name) const {
  if (name.empty()) return std::nullopt;
  const uint64_t entsize = is64_ ? sizeof(Elf64_Sym) : sizeof(Elf32_Sym);
  constexpr uint64_t kChunk = 64 * 1024;
  constexpr size_t kMaxNameHits = 16;
  // "name\0" preceded by a NUL (or at offset 0): where the name starts in a string table.
  std::string needle(name);
  needle.push_back('\0');
  std::vector<uint8_t> buf;
  for (uint32_t want : {static_cast<uint32_t>(SHT_SYMTAB), static_cast<uint32_t>(SHT_DYNSYM)}) {
    for (const auto& sec : sections_) {
      if (sec.type != want || sec.link >= sections_.size()) continue;
      const Section& strs = sections_[sec.link];
      if (strs.type == SHT_NOBITS) continue;
      // Pass 1: the offsets at which the name is stored, from the string table in chunks that overlap by the
      // needle and the byte before it (a hit at 0 of a later chunk was found, with that byte, in the one before).
      std::vector<uint64_t> name_offs;
      bool failed = false;
      for (uint64_t rel = 0; rel < strs.size && name_offs.size() < kMaxNameHits;) {
        const uint64_t n = std::min(kChunk, strs.size - rel);
        if (!src_.read(strs.offset + rel, n, buf)) {
          failed = true;
          break;
        }
        for (size_t i = 0; i + needle.size() <= n && name_offs.size() < kMaxNameHits;) {
          const void* hit = ::memmem(buf.data() + i, n - i, needle.data(), needle.size());
          if (hit == nullptr) break;
          const size_t at = static_cast<size_t>(static_cast<const uint8_t*>(hit) - buf.data());
          if (at > 0 ? buf[at - 1] == 0 : rel == 0) name_offs.push_back(rel + at);
          i = at + 1;
        }
        if (rel + n >= strs.size || n <= needle.size()) break;
        rel += n - needle.size();
      }
      if (failed || name_offs.empty()) continue;
      // Pass 2: the symbol whose name is at one of those offsets, from the symbol table in chunks.
      const uint64_t per_chunk = std::max<uint64_t>(1, kChunk / entsize) * entsize;
      for (uint64_t rel = 0; rel + entsize <= sec.size;) {
        const uint64_t n = std::min(per_chunk, (sec.size - rel) / entsize * entsize);
        if (!src_.read(sec.offset + rel, n, buf)) break;
        for (uint64_t off = 0; off + entsize <= n; off += entsize) {
          const uint8_t* e = buf.data() + off;
          if (std::find(name_offs.begin(), name_offs.end(), load_uint(e, 4)) == name_offs.end()) continue;
          Symbol s;
          s.name = std::string(name);
          if (is64_) {
            s.type = ELF64_ST_TYPE(e[4]);
            s.value = load_uint(e + 8, 8);
            s.size = load_uint(e + 16, 8);
          } else {
            s.value = load_uint(e + 4, 4);
            s.size = load_uint(e + 8, 4);
            s.type = ELF32_ST_TYPE(e[12]);
          }
          return s;
        }
        rel += n;
      }
    }
  }
  return std::nullopt;
}

}  // namespace goelf

// ---------------------------------------------------------------------------------------------
// Go's strconv.Quote / Unquote.
namespace {

// Decodes one UTF-8 sequence; returns {rune, width}, {-1, 1} when invalid (Go's RuneError case).
std::pair<int32_t, size_t> decode_rune(std::string_view s, size_t i) {
  const auto c0 = static_cast<uint8_t>(s[i]);
  if (c0 < 0x80) return {c0, 1};
  size_t n;
  int32_t r, min;
  if ((c0 & 0xe0) == 0xc0)
    n = 2, r = c0 & 0x1f, min = 0x80;
  else if ((c0 & 0xf0) == 0xe0)
    n = 3, r = c0 & 0x0f, min = 0x800;
  else if ((c0 & 0xf8) == 0xf0)
    n = 4, r = c0 & 0x07, min = 0x10000;
  else
    return {-1, 1};
  if (i + n > s.size()) return {-1, 1};
  for (size_t k = 1; k < n; k++) {
    const auto c = static_cast<uint8_t>(s[i + k]);
    if ((c & 0xc0) != 0x80) return {-1, 1};
    r = (r << 6) | (c & 0x3f);
  }
  if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return {-1, 1};
  return {r, n};
}

void append_rune(std::string& out, uint32_t r) {
  if (r < 0x80) {
    out.push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (r >> 6)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  } else if (r < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (r >> 12)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (r >> 18)));
    out.push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  }
}

// An approximation of unicode.IsPrint beyond ASCII: the separator, format, private-use and
// non-character ranges that Go escapes. Exact for ASCII, which is what build settings contain.
bool is_print(int32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  if (r <= 0xa0 || r == 0xad) return false;
  if ((r >= 0x2000 && r <= 0x200f) || (r >= 0x2028 && r <= 0x202f) || (r >= 0x205f && r <= 0x206f))
    return false;
  if (r == 0x3000 || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb)) return false;
  if ((r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000) return false;
  if ((r & 0xfffe) == 0xfffe) return false;
  return true;
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the quoted string at the start of s (strconv.QuotedPrefix), or 0 when there is none.
size_t quoted_prefix_len(std::string_view s) {
  if (s.empty()) return 0;
  if (s[0] == '`') {
    size_t end = s.find('`', 1);
    return end == std::string_view::npos ? 0 : end + 1;
  }
  if (s[0] != '"') return 0;
  for (size_t i = 1; i < s.size(); i++) {
    if (s[i] == '\n') return 0;
    if (s[i] == '\\') {
      i++;
      continue;
    }
    if (s[i] == '"') return go_unquote(s.substr(0, i + 1)) ? i + 1 : 0;
  }
  return 0;
}

}  // namespace

std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    auto [r, width] = decode_rune(s, i);
    if (r < 0) {
      const auto b = static_cast<uint8_t>(s[i]);
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
      i += 1;
      continue;
    }
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
    } else if (is_print(r)) {
      out.append(s.substr(i, width));
    } else {
      switch (r) {
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (r < ' ' || r == 0x7f) {
            out += "\\x";
            out.push_back(kHex[(r >> 4) & 15]);
            out.push_back(kHex[r & 15]);
          } else {
            const bool big = r > 0xffff;
            out += big ? "\\U" : "\\u";
            for (int sh = big ? 28 : 12; sh >= 0; sh -= 4) out.push_back(kHex[(r >> sh) & 15]);
          }
      }
    }
    i += width;
  }
  out.push_back('"');
  return out;
}

std::optional<std::string> go_unquote(std::string_view s) {
  if (s.size() < 2 || s.front() != s.back()) return std::nullopt;
  const char quote = s.front();
  std::string_view body = s.substr(1, s.size() - 2);
  if (quote == '`') {
    if (body.find('`') != std::string_view::npos) return std::nullopt;
    std::string out;
    for (char c : body) {
      if (c != '\r') out.push_back(c);  // Go drops carriage returns from raw strings
    }
    return out;
  }
  if (quote != '"') return std::nullopt;
  std::string out;
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c == '"' || c == '\n') return std::nullopt;
    if (static_cast<uint8_t>(c) >= 0x80) {
      auto [r, width] = decode_rune(body, i);
      if (r < 0)
        append_rune(out, 0xfffd);  // Go turns invalid UTF-8 into U+FFFD here
      else
        out.append(body.substr(i, width));
      i += width;
      continue;
    }
    if (c != '\\') {
      out.push_back(c);
      i++;
      continue;
    }
    if (i + 1 >= body.size()) return std::nullopt;
    const char e = body[i + 1];
    i += 2;
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (i + n > body.size()) return std::nullopt;
        uint32_t v = 0;
        for (size_t k = 0; k < n; k++) {
          const int h = hex_val(body[i + k]);
          if (h < 0) return std::nullopt;
          v = (v << 4) | static_cast<uint32_t>(h);
        }
        i += n;
        if (e == 'x') {
          out.push_back(static_cast<char>(v));  // a raw byte, not a rune
        } else {
          if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return std::nullopt;
          append_rune(out, v);
        }
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        if (i + 2 > body.size()) return std::nullopt;
        uint32_t v = static_cast<uint32_t>(e - '0');
        for (size_t k = 0; k < 2; k++) {
          const char d = body[i + k];
          if (d < '0' || d > '7') return std::nullopt;
          v = v * 8 + static_cast<uint32_t>(d - '0');
        }
        if (v > 255) return std::nullopt;
        i += 2;
        out.push_back(static_cast<char>(v));
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// runtime/debug.ParseBuildInfo and BuildInfo.String.
namespace {

bool quote_key(std::string_view k) {
  return k.empty() || k.find_first_of(std::string_view("= \t\r\n\"`")) != std::string_view::npos;
}
bool quote_value(std::string_view v) {
  return v.find_first_of(std::string_view(" \t\r\n\"`")) != std::string_view::npos;
}

std::vector<std::string_view> split_tabs(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t t = s.find('\t', start);
    if (t == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, t - start));
    start = t + 1;
  }
}

}  // namespace

const std::string* GoBuildInfo::setting(std::string_view key) const {
  for (const auto& s : settings) {
    if (s.key == key) return &s.value;
  }
  return nullptr;
}

std::string GoBuildInfo::to_string() const {
  std::string out;
  if (!go_version.empty()) out += fmt::format("go\t{}\n", go_version);
  if (!path.empty()) out += fmt::format("path\t{}\n", path);
  auto format_mod = [&](std::string_view word, const GoModule& m) {
    out += fmt::format("{}\t{}\t{}", word, m.path, m.version);
    if (m.replace) {
      out += fmt::format("\n=>\t{}\t{}\t{}", m.replace->path, m.replace->version, m.replace->sum);
    } else {
      out += fmt::format("\t{}", m.sum);
    }
    out += '\n';
  };
  if (main != GoModule{}) format_mod("mod", main);
  for (const auto& d : deps) format_mod("dep", d);
  for (const auto& s : settings) {
    out += fmt::format("build\t{}={}\n", quote_key(s.key) ? go_quote(s.key) : s.key,
                       quote_value(s.value) ? go_quote(s.value) : s.value);
  }
  return out;
}

Result<GoBuildInfo> parse_go_modinfo(std::string_view data, size_t max_deps) {
  GoBuildInfo bi;
  size_t line_num = 1;
  auto fail = [&](std::string why) -> Result<GoBuildInfo> {
    return errorf("could not parse Go build info: line {}: {}", line_num, why);
  };
  auto read_module = [](std::string_view rest, GoModule& m) -> bool {
    auto elem = split_tabs(rest);
    if (elem.size() != 2 && elem.size() != 3) return false;
    m = GoModule{};
    m.path = elem[0];
    m.version = elem[1];
    if (elem.size() == 3) m.sum = elem[2];
    return true;
  };
  GoModule* last = nullptr;
  bool skipping = false;  // a dep past max_deps: parsed for errors, not kept
  GoModule scratch;
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    if (nl == std::string_view::npos) break;  // Go ignores an unterminated last line
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl + 1);
    auto has = [&](std::string_view p) { return line.substr(0, p.size()) == p; };
    if (has("path\t")) {
      bi.path = line.substr(5);
    } else if (has("mod\t")) {
      if (!read_module(line.substr(4), bi.main)) {
        return fail(fmt::format("expected 2 or 3 columns; got {}", split_tabs(line.substr(4)).size()));
      }
      last = &bi.main;
      skipping = false;
    } else if (has("dep\t")) {
      if (!read_module(line.substr(4), scratch)) {
        return fail(fmt::format("expected 2 or 3 columns; got {}", split_tabs(line.substr(4)).size()));
      }
      if (bi.deps.size() < max_deps) {
        bi.deps.push_back(std::move(scratch));
        last = &bi.deps.back();
        skipping = false;
      } else {
        bi.deps_truncated = true;
        last = nullptr;
        skipping = true;
      }
    } else if (has("=>\t")) {
      auto elem = split_tabs(line.substr(3));
      if (elem.size() != 3)
        return fail(fmt::format("expected 3 columns for replacement; got {}", elem.size()));
      if (last == nullptr && !skipping) return fail("replacement with no module on previous line");
      if (last)
        last->replace = GoModuleVersion{std::string(elem[0]), std::string(elem[1]), std::string(elem[2])};
      last = nullptr;
      skipping = false;
    } else if (has("build\t")) {
      std::string_view kv = line.substr(6);
      if (kv.empty()) return fail("build line missing '='");
      std::string key;
      std::string_view raw_value;
      if (kv[0] == '=') return fail("build line with missing key");
      if (kv[0] == '`' || kv[0] == '"') {
        const size_t n = quoted_prefix_len(kv);
        if (n == 0) return fail("invalid quoted key in build line");
        if (n == kv.size()) return fail("build line missing '=' after quoted key");
        if (kv[n] != '=') return fail(fmt::format("unexpected character after quoted key: {:?}", kv[n]));
        key = *go_unquote(kv.substr(0, n));
        raw_value = kv.substr(n + 1);
      } else {
        const size_t eq = kv.find('=');
        if (eq == std::string_view::npos) return fail("build line missing '=' after key");
        key = kv.substr(0, eq);
        raw_value = kv.substr(eq + 1);
        if (quote_key(key)) return fail(fmt::format("unquoted key {} must be quoted", go_quote(key)));
      }
      std::string value;
      if (!raw_value.empty()) {
        if (raw_value[0] == '`' || raw_value[0] == '"') {
          auto v = go_unquote(raw_value);
          if (!v) return fail("invalid quoted value in build line");
          value = std::move(*v);
        } else {
          value = raw_value;
          if (quote_value(value))
            return fail(fmt::format("unquoted value {} must be quoted", go_quote(value)));
        }
      }
      bi.settings.push_back(GoBuildSetting{std::move(key), std::move(value)});
    }
    line_num++;
  }
  return bi;
}

// ---------------------------------------------------------------------------------------------
// Locating and decoding the build info blob.
namespace {

struct RawInfo {
  std::string version;
  std::string modinfo;  // with the 16-byte sentinels stripped; empty without module info
  bool modinfo_truncated = false;
  bool inline_strings = false;
  uint8_t ptr_size = 0;
  GoBuildInfoSource source = GoBuildInfoSource::kSection;
};

// Strips the sentinels like debug/buildinfo; a modinfo cut at the limit keeps its whole lines.
void frame_modinfo(RawInfo& raw, std::string mod, bool cut) {
  if (cut) {
    if (mod.size() >= 16 && std::memcmp(mod.data(), kInfoStart.data(), 16) == 0) {
      mod.erase(0, 16);
      const size_t nl = mod.rfind('\n');
      mod.resize(nl == std::string::npos ? 0 : nl + 1);
      raw.modinfo = std::move(mod);
      raw.modinfo_truncated = true;
    }
    return;
  }
  if (mod.size() >= 33 && mod[mod.size() - 17] == '\n') raw.modinfo = mod.substr(16, mod.size() - 32);
}

class Decoder {
 public:
  Decoder(const goelf::Image& img, const GoParseLimits& limits) : img_(img), limits_(limits) {}

  // Returns the 16-aligned address of the first magic in [start, start+size), or nullopt.
  Parsed<std::optional<uint64_t>> search_magic(uint64_t start, uint64_t size) {
    if (add_overflows(start, size)) return corrupt("segment address range overflows");
    const uint64_t end = start + size;
    uint64_t pos = (start + kBuildInfoAlign - 1) & ~(kBuildInfoAlign - 1);
    while (pos < end) {
      const uint64_t want = std::min(kScanChunk, end - pos);
      if (auto st = img_.read_vaddr(pos, want, buf_); !st) return corrupt(st.error().str());
      if (buf_.empty()) break;
      for (uint64_t i = 0; i + kBuildInfoMagic.size() <= buf_.size(); i += kBuildInfoAlign) {
        if (std::memcmp(buf_.data() + i, kBuildInfoMagic.data(), kBuildInfoMagic.size()) == 0)
          return std::optional<uint64_t>{pos + i};
      }
      pos += buf_.size();             // chunks are multiples of 16, so alignment holds
      if (buf_.size() < want) break;  // the segment's file bytes ended
    }
    return std::optional<uint64_t>{};
  }

  Parsed<RawInfo> decode_header(uint64_t addr, GoBuildInfoSource source) {
    if (auto st = img_.read_vaddr(addr, kBuildInfoHeaderSize, buf_); !st) return corrupt(st.error().str());
    if (buf_.size() < kBuildInfoHeaderSize) return corrupt("build info header runs past its segment");
    const std::vector<uint8_t> hdr = buf_;
    RawInfo raw;
    raw.source = source;
    raw.ptr_size = hdr[14];
    const uint8_t flags = hdr[15];
    if (flags & 2) {
      raw.inline_strings = true;
      uint64_t next = addr + kBuildInfoHeaderSize;
      bool cut = false;
      if (auto f = decode_varint_string(next, limits_.max_version_bytes, false, raw.version, cut)) return *f;
      std::string mod;
      if (auto f = decode_varint_string(next, limits_.max_modinfo_bytes, true, mod, cut)) return *f;
      frame_modinfo(raw, std::move(mod), cut);
    } else {
      if (raw.ptr_size != 4 && raw.ptr_size != 8)
        return corrupt(fmt::format("bad pointer size {}", raw.ptr_size));
      const bool big = flags & 1;
      auto ptr_at = [&](const uint8_t* p) {
        uint64_t v = 0;
        for (size_t i = 0; i < raw.ptr_size; i++) v = (v << 8) | p[big ? i : raw.ptr_size - 1 - i];
        return v;
      };
      const uint64_t vers_ptr = ptr_at(hdr.data() + 16);
      const uint64_t mod_ptr = ptr_at(hdr.data() + 16 + raw.ptr_size);
      bool cut = false;
      if (auto f = read_go_string(vers_ptr, raw.ptr_size, ptr_at, limits_.max_version_bytes, false,
                                  raw.version, cut)) {
        return *f;
      }
      std::string mod;
      if (auto f = read_go_string(mod_ptr, raw.ptr_size, ptr_at, limits_.max_modinfo_bytes, true, mod, cut))
        return *f;
      frame_modinfo(raw, std::move(mod), cut);
    }
    if (raw.version.empty()) return Failure{GoErrorKind::kNotGo, "build info header has an empty Go version"};
    return raw;
  }

  // Last resort when no header survives: modinfo between its sentinels plus a go1.N string.
  Parsed<RawInfo> decode_markers() {
    for (const auto* seg : non_exec_segments()) {
      auto hit = find_bytes(*seg, kInfoStart.data(), kInfoStart.size());
      if (std::holds_alternative<Failure>(hit)) return std::get<Failure>(hit);
      auto start = std::get<std::optional<uint64_t>>(hit);
      if (!start) continue;
      // The end sentinel follows within the modinfo limit.
      goelf::Segment rest = *seg;
      const uint64_t skip = *start - seg->vaddr;
      rest.vaddr += skip;
      rest.offset += skip;
      rest.filesz = std::min<uint64_t>(seg->filesz - skip, limits_.max_modinfo_bytes + 32);
      auto end_hit = find_bytes(rest, kInfoEnd.data(), kInfoEnd.size());
      if (std::holds_alternative<Failure>(end_hit)) return std::get<Failure>(end_hit);
      auto end = std::get<std::optional<uint64_t>>(end_hit);
      if (!end) continue;
      const uint64_t len = *end + 16 - *start;
      if (auto st = img_.read_vaddr(*start, len, buf_); !st || buf_.size() != len) continue;
      RawInfo raw;
      raw.source = GoBuildInfoSource::kModinfoMarkers;
      frame_modinfo(raw, std::string(buf_.begin(), buf_.end()), false);
      if (raw.modinfo.empty()) continue;
      raw.version = version_before(*start, len);
      if (raw.version.empty()) raw.version = scan_version();
      if (raw.version.empty()) continue;
      return raw;
    }
    return Failure{GoErrorKind::kNotGo, "no \"\\xff Go buildinf:\" header and no modinfo markers"};
  }

  std::vector<const goelf::Segment*> non_exec_segments(bool writable_only = false) const {
    std::vector<const goelf::Segment*> out;
    for (int pass = 0; pass < 2; pass++) {
      for (const auto& s : img_.segments()) {
        if (s.type != PT_LOAD || (s.flags & PF_X) || s.filesz == 0) continue;
        const bool writable = s.flags & PF_W;
        if ((pass == 0) == writable) out.push_back(&s);
      }
      if (writable_only) break;
    }
    return out;
  }

 private:
  // Returns a failure, or nullopt with `out` filled.
  std::optional<Failure> decode_varint_string(uint64_t& addr, size_t cap, bool may_cut, std::string& out,
                                              bool& cut) {
    if (auto st = img_.read_vaddr(addr, 10, buf_); !st) return corrupt(st.error().str());
    uint64_t len = 0;
    size_t n = 0;
    for (int shift = 0;; shift += 7) {
      if (n >= buf_.size() || shift > 63) return corrupt("bad varint string length in build info");
      const uint8_t b = buf_[n++];
      len |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    addr += n;
    return read_bytes(addr, len, cap, may_cut, out, cut);
  }

  template <typename PtrAt>
  std::optional<Failure> read_go_string(uint64_t hdr_addr, uint8_t ptr_size, PtrAt ptr_at, size_t cap,
                                        bool may_cut, std::string& out, bool& cut) {
    if (auto st = img_.read_vaddr(hdr_addr, 2u * ptr_size, buf_); !st || buf_.size() < 2u * ptr_size) {
      return corrupt(fmt::format("string header at {:#x} is not in the file", hdr_addr));
    }
    uint64_t data = ptr_at(buf_.data());
    const uint64_t len = ptr_at(buf_.data() + ptr_size);
    if (len == 0) {
      out.clear();
      return std::nullopt;
    }
    return read_bytes(data, len, cap, may_cut, out, cut);
  }

  std::optional<Failure> read_bytes(uint64_t& addr, uint64_t len, size_t cap, bool may_cut, std::string& out,
                                    bool& cut) {
    cut = false;
    uint64_t want = len;
    if (len > cap) {
      if (!may_cut)
        return corrupt(fmt::format("build info string of {} bytes exceeds the {}-byte limit", len, cap));
      want = cap;
      cut = true;
    }
    if (auto st = img_.read_vaddr(addr, want, buf_); !st) return corrupt(st.error().str());
    if (buf_.size() < want)
      return corrupt(fmt::format("build info string at {:#x} runs past its segment", addr));
    out.assign(buf_.begin(), buf_.end());
    addr += len;
    return std::nullopt;
  }

  // memmem over a segment in chunks that overlap by needle-1 bytes.
  Parsed<std::optional<uint64_t>> find_bytes(const goelf::Segment& seg, const uint8_t* needle, size_t n) {
    uint64_t rel = 0;
    while (rel < seg.filesz) {
      const uint64_t want = std::min(kScanChunk, seg.filesz - rel);
      if (auto st = img_.source().read(seg.offset + rel, want, buf_); !st) return corrupt(st.error().str());
      auto it = std::search(buf_.begin(), buf_.end(), needle, needle + n);
      if (it != buf_.end()) return std::optional<uint64_t>{seg.vaddr + rel + (it - buf_.begin())};
      if (rel + want >= seg.filesz) break;
      rel += want - (n - 1);
    }
    return std::optional<uint64_t>{};
  }

  // In the 1.18+ layout the modinfo is preceded by uvarint(len(mod)), the version and uvarint(len(vers)).
  std::string version_before(uint64_t mod_addr, uint64_t mod_len) {
    uint8_t enc[10];
    size_t enc_n = 0;
    for (uint64_t v = mod_len; enc_n < sizeof(enc); v >>= 7) {
      enc[enc_n++] = static_cast<uint8_t>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
      if (v < 0x80) break;
    }
    constexpr uint64_t kMaxBack = 128;
    if (mod_addr < kMaxBack + enc_n) return {};
    if (!img_.read_vaddr(mod_addr - kMaxBack - enc_n, kMaxBack + enc_n, buf_) ||
        buf_.size() != kMaxBack + enc_n) {
      return {};
    }
    if (std::memcmp(buf_.data() + kMaxBack, enc, enc_n) != 0) return {};
    for (uint64_t vlen = 2; vlen < kMaxBack - 1 && vlen < 0x80; vlen++) {
      const uint64_t at = kMaxBack - vlen;
      if (buf_[at - 1] != vlen) continue;
      std::string v(buf_.begin() + static_cast<long>(at), buf_.begin() + static_cast<long>(kMaxBack));
      if (v.rfind("go1.", 0) == 0 || v.rfind("devel", 0) == 0) return v;
    }
    return {};
  }

  // The first "go1.N[.M][rcK|betaK]" in read-only data; runtime.buildVersion lives there.
  std::string scan_version() {
    constexpr std::string_view kPrefix = "go1.";
    for (const auto* seg : non_exec_segments()) {
      goelf::Segment rest = *seg;
      // Bounded: each miss rescans from the next byte, so cap the candidates per segment.
      for (int candidates = 0; candidates < 64; candidates++) {
        uint64_t addr;
        auto h = find_bytes(rest, reinterpret_cast<const uint8_t*>(kPrefix.data()), kPrefix.size());
        if (!std::holds_alternative<std::optional<uint64_t>>(h) || !std::get<std::optional<uint64_t>>(h))
          break;
        addr = *std::get<std::optional<uint64_t>>(h);
        if (!img_.read_vaddr(addr, 32, buf_)) break;
        std::string_view s(reinterpret_cast<const char*>(buf_.data()), buf_.size());
        size_t i = kPrefix.size();
        auto digits = [&] {
          size_t st = i;
          while (i < s.size() && s[i] >= '0' && s[i] <= '9') i++;
          return i > st;
        };
        if (digits()) {
          if (i + 1 < s.size() && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            i++;
            digits();
          }
          for (std::string_view pre : {"rc", "beta"}) {
            if (s.substr(i, pre.size()) == pre && i + pre.size() < s.size() && s[i + pre.size()] >= '0' &&
                s[i + pre.size()] <= '9') {
              i += pre.size();
              digits();
            }
          }
          return std::string(s.substr(0, i));
        }
        const uint64_t skip = addr + 1 - rest.vaddr;
        if (skip >= rest.filesz) break;
        rest.vaddr += skip;
        rest.offset += skip;
        rest.filesz -= skip;
      }
    }
    return {};
  }

  const goelf::Image& img_;
  const GoParseLimits& limits_;
  std::vector<uint8_t> buf_;
};

Parsed<RawInfo> find_raw_info(const goelf::Image& img, const GoParseLimits& limits) {
  Decoder dec(img, limits);
  std::optional<Failure> first_failure;
  auto try_range = [&](uint64_t start, uint64_t size, GoBuildInfoSource src) -> std::optional<RawInfo> {
    auto found = dec.search_magic(start, size);
    if (auto* f = std::get_if<Failure>(&found)) {
      if (!first_failure) first_failure = *f;
      return std::nullopt;
    }
    auto addr = std::get<std::optional<uint64_t>>(found);
    if (!addr) return std::nullopt;
    auto raw = dec.decode_header(*addr, src);
    if (auto* f = std::get_if<Failure>(&raw)) {
      if (!first_failure) first_failure = *f;
      return std::nullopt;
    }
    return std::get<RawInfo>(std::move(raw));
  };

  const goelf::Section* sec = img.section(".go.buildinfo");
  if (sec && sec->type != SHT_NOBITS) {
    if (auto r = try_range(sec->addr, sec->size, GoBuildInfoSource::kSection)) return *r;
  }
  // With intact section headers Go keeps the blob in writable data; without them, scan read-only
  // data too. Executable segments are never scanned: the blob is never there and they are the bulk.
  const bool have_sections = !img.sections().empty();
  for (const auto* seg : dec.non_exec_segments(have_sections)) {
    if (auto r = try_range(seg->vaddr, seg->filesz, GoBuildInfoSource::kSegmentScan)) return *r;
  }
  if (first_failure) return *first_failure;
  return dec.decode_markers();
}

// "read Go build info from NAME failed: <class>: <detail>", the class matching `k`.
Error read_failure(const std::string& name, GoErrorKind k, const std::string& detail, int err = 0) {
  const char* cls = k == GoErrorKind::kNotGo     ? "not a Go binary"
                    : k == GoErrorKind::kNotElf  ? "not an ELF file"
                    : k == GoErrorKind::kCorrupt ? "truncated or corrupt"
                                                 : "I/O error";
  return make_error(fmt::format("read Go build info from {} failed: {}: {}", name, cls, detail), err);
}

Result<GoBuildInfo> read_from_source(goelf::ByteSource src, const std::string& name, GoErrorKind* kind,
                                     const GoParseLimits& limits) {
  auto fail = [&](GoErrorKind k, const std::string& detail, int err = 0) -> Result<GoBuildInfo> {
    if (kind) *kind = k;
    return read_failure(name, k, detail, err);
  };
  GoErrorKind k = GoErrorKind::kNone;
  src.set_read_budget(limits.max_read_bytes);
  auto img = goelf::Image::open(src, &k);
  if (!img) return fail(k, img.error().message);
  auto parsed = find_raw_info(*img, limits);
  if (auto* f = std::get_if<Failure>(&parsed)) return fail(f->kind, f->detail, f->err);
  RawInfo raw = std::get<RawInfo>(std::move(parsed));
  auto bi = parse_go_modinfo(raw.modinfo, limits.max_deps);
  if (!bi) return fail(GoErrorKind::kCorrupt, bi.error().message);
  GoBuildInfo out = std::move(*bi);
  out.go_version = std::move(raw.version);
  out.deps_truncated = out.deps_truncated || raw.modinfo_truncated;
  out.source = raw.source;
  out.inline_strings = raw.inline_strings;
  out.ptr_size = raw.ptr_size;
  out.elf_machine = img->machine();
  if (kind) *kind = GoErrorKind::kNone;
  return out;
}

}  // namespace

Result<GoBuildInfo> read_go_build_info_fd(int fd, const std::string& name, GoErrorKind* kind,
                                          const GoParseLimits& limits) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (kind) *kind = GoErrorKind::kIo;
    return errorf_errno(errno, "read Go build info from {} failed: fstat", name);
  }
  if (!S_ISREG(st.st_mode)) {
    if (kind) *kind = GoErrorKind::kNotElf;
    return errorf("read Go build info from {} failed: not an ELF file: not a regular file", name);
  }
  return read_from_source(goelf::ByteSource::file(fd, static_cast<uint64_t>(st.st_size)), name, kind, limits);
}

Result<GoBuildInfo> read_go_build_info(const std::string& path, GoErrorKind* kind,
                                       const GoParseLimits& limits) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (kind) *kind = GoErrorKind::kIo;
    return errorf_errno(errno, "read Go build info from {} failed: open", path);
  }
  auto r = read_go_build_info_fd(fd, path, kind, limits);
  ::close(fd);
  return r;
}

Result<GoBuildInfo> parse_go_build_info(std::span<const uint8_t> image, GoErrorKind* kind,
                                        const GoParseLimits& limits) {
  return read_from_source(goelf::ByteSource::memory(image), "<memory image>", kind, limits);
}

Result<GoBuildInfo> read_go_build_info(goelf::ByteSource src, const std::string& name, GoErrorKind* kind,
                                       const GoParseLimits& limits) {
  return read_from_source(src, name, kind, limits);
}

}  // namespace hostscope::identity
