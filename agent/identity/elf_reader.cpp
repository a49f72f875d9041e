#include "agent/identity/elf_reader.h"

#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

#include "agent/identity/go_buildinfo.h"

namespace hostscope::identity {

namespace {

bool add_overflows(uint64_t a, uint64_t b) { return a > std::numeric_limits<uint64_t>::max() - b; }

}  // namespace

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

}  // namespace hostscope::identity
