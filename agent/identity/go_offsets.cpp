#include "agent/identity/go_offsets.h"

#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace hostscope::identity {

std::optional<GoVersion> parse_go_version(std::string_view v) {
  // "devel go1.23-abc" and "go1.22.0 X:boringcrypto" both carry the release after "go1.".
  const size_t at = v.find("go1.");
  if (at == std::string_view::npos) return std::nullopt;
  size_t i = at + 4;
  int minor = 0;
  const size_t start = i;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9' && i - start < 4) minor = minor * 10 + (v[i++] - '0');
  if (i == start) return std::nullopt;
  return GoVersion{1, minor};
}

namespace {

// offset of runtime.g.goid on 64-bit targets (amd64, arm64: every field before goid is a pointer
// or uintptr, so the two agree). Derived from src/runtime/runtime2.go `type g struct` per release;
// see docs/go-identity.md for the field lists. Inclusive minor-version ranges.
struct GoidRange {
  int first_minor;
  int last_minor;
  uint32_t offset;
};
constexpr GoidRange kGoid64[] = {
    {9, 22, 152},  // stack(16) stackguard0/1 _panic _defer m (40) sched gobuf{7 words}(56) syscallsp
                   // syscallpc stktopsp param (32) atomicstatus stackLock (8)
    {23, 24, 160},  // + g.syscallbp (go1.23)
    {25, 26, 152},  // - gobuf.ret (go1.25)
};

// The first whole CU-level die named `name` with tag `tag`.
bool find_type(Dwarf* dw, std::string_view name, int tag, Dwarf_Die* out) {
  Dwarf_Off off = 0, next = 0;
  size_t hsize = 0;
  while (dwarf_nextcu(dw, off, &next, &hsize, nullptr, nullptr, nullptr) == 0) {
    Dwarf_Die cu;
    if (dwarf_offdie(dw, off + hsize, &cu) != nullptr) {
      Dwarf_Die child;
      if (dwarf_child(&cu, &child) == 0) {
        do {
          if (dwarf_tag(&child) != tag) continue;
          const char* n = dwarf_diename(&child);
          if (n != nullptr && name == n) {
            *out = child;
            return true;
          }
        } while (dwarf_siblingof(&child, &child) == 0);
      }
    }
    off = next;
  }
  return false;
}

// The bytes libdw would hold or walk for the DWARF sections: the decompressed size of compressed ones
// (SHF_COMPRESSED's Chdr, or .zdebug's "ZLIB" + big-endian size), the section size of the others.
Result<uint64_t> dwarf_bytes(const goelf::Image& img) {
  uint64_t total = 0;
  std::vector<uint8_t> hdr;
  for (const auto& sec : img.sections()) {
    const bool zdebug = sec.name.starts_with(".zdebug_");
    if (!zdebug && !sec.name.starts_with(".debug_")) continue;
    if (sec.type == SHT_NOBITS) continue;
    uint64_t size = sec.size;
    if (sec.flags & SHF_COMPRESSED) {
      const uint64_t chdr = img.is64() ? sizeof(Elf64_Chdr) : sizeof(Elf32_Chdr);
      if (auto st = img.source().read(sec.offset, chdr, hdr); !st) return errorf("section {}: {}", sec.name, st.error().str());
      size = img.is64() ? img.load_uint(hdr.data() + 8, 8) : img.load_uint(hdr.data() + 4, 4);
    } else if (zdebug) {
      if (auto st = img.source().read(sec.offset, 12, hdr); !st) return errorf("section {}: {}", sec.name, st.error().str());
      if (std::memcmp(hdr.data(), "ZLIB", 4) != 0) return errorf("section {}: no ZLIB header", sec.name);
      size = 0;
      for (int i = 4; i < 12; i++) size = (size << 8) | hdr[i];
    }
    if (size > kMaxDwarfBytes - std::min(total, kMaxDwarfBytes)) return kMaxDwarfBytes + 1;
    total += size;
  }
  return total;
}

}  // namespace

Result<uint32_t> goid_offset_from_dwarf(int fd, const std::string& name) {
  // libdw decompresses every DWARF section whole and walks them: bound that by what the headers say,
  // checked by our own reader first (a crafted binary can claim gigabytes in a few kilobytes of zlib).
  const off_t fsize = ::lseek(fd, 0, SEEK_END);
  if (fsize < 0) return errorf_errno(errno, "read DWARF of {} failed: lseek", name);
  auto img = goelf::Image::open(goelf::ByteSource::file(fd, static_cast<uint64_t>(fsize)));
  if (!img) return errorf("read DWARF of {} failed: {}", name, img.error().message);
  auto bytes = dwarf_bytes(*img);
  if (!bytes) return errorf("read DWARF of {} failed: {}", name, bytes.error().message);
  if (*bytes > kMaxDwarfBytes) {
    return errorf("read DWARF of {} failed: its debug sections hold over the {}-byte cap", name, kMaxDwarfBytes);
  }
  Dwarf* dw = dwarf_begin(fd, DWARF_C_READ);
  if (dw == nullptr) {
    return errorf("read DWARF of {} failed: {}", name, dwarf_errmsg(-1));
  }
  struct Closer {
    Dwarf* d;
    ~Closer() { dwarf_end(d); }
  } closer{dw};
  Dwarf_Die g;
  if (!find_type(dw, "runtime.g", DW_TAG_structure_type, &g)) {
    return errorf("read DWARF of {} failed: no runtime.g structure type", name);
  }
  Dwarf_Die member;
  if (dwarf_child(&g, &member) == 0) {
    do {
      if (dwarf_tag(&member) != DW_TAG_member) continue;
      const char* n = dwarf_diename(&member);
      if (n == nullptr || std::strcmp(n, "goid") != 0) continue;
      Dwarf_Attribute attr;
      Dwarf_Word loc = 0;
      if (dwarf_attr(&member, DW_AT_data_member_location, &attr) == nullptr ||
          dwarf_formudata(&attr, &loc) != 0) {
        return errorf("read DWARF of {} failed: runtime.g.goid has no constant data_member_location", name);
      }
      if (loc > 4096)
        return errorf("read DWARF of {} failed: implausible runtime.g.goid offset {}", name, loc);
      return static_cast<uint32_t>(loc);
    } while (dwarf_siblingof(&member, &member) == 0);
  }
  return errorf("read DWARF of {} failed: runtime.g has no goid member", name);
}

Result<uint32_t> goid_offset_from_dwarf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errorf_errno(errno, "read DWARF of {} failed: open", path);
  auto r = goid_offset_from_dwarf(fd, path);
  ::close(fd);
  return r;
}

Result<uint32_t> goid_offset_from_table(std::string_view go_version, uint16_t elf_machine) {
  if (elf_machine != EM_X86_64 && elf_machine != EM_AARCH64) {
    return errorf("goid offset table has no entry for ELF machine {} ({})", elf_machine, go_version);
  }
  auto v = parse_go_version(go_version);
  if (!v) return errorf("goid offset table: cannot parse Go version \"{}\"", go_version);
  for (const auto& r : kGoid64) {
    if (v->minor >= r.first_minor && v->minor <= r.last_minor) return r.offset;
  }
  return errorf("goid offset table has no entry for go1.{} (known: go1.9 to go1.26); refusing to guess",
                v->minor);
}

Result<int64_t> g_tls_offset(const goelf::Image& img, std::string* source) {
  if (img.machine() != EM_X86_64) {
    // arm64 keeps g in R28 and needs a different reader; 32-bit targets are not supported.
    return errorf("g TLS offset: unsupported ELF machine {}", img.machine());
  }
  const goelf::Segment* tls = img.segment_of_type(PT_TLS);
  if (tls == nullptr) {
    // Internally linked: the runtime points fsbase just past m.tls[0] and g is at fs:-8.
    if (source) *source = "internal-link";
    return int64_t{-8};
  }
  // Variant II TLS (x86-64): the executable's block ends at the thread pointer; glibc places it at
  // tp - (roundup(memsz - firstbyte, align) + firstbyte), firstbyte = p_vaddr & (align - 1).
  const uint64_t align = tls->align == 0 ? 1 : tls->align;
  if ((align & (align - 1)) != 0 || align > (1u << 16) || tls->memsz > (1u << 30)) {
    return errorf("g TLS offset: implausible PT_TLS (memsz {}, align {})", tls->memsz, tls->align);
  }
  const uint64_t firstbyte = tls->vaddr & (align - 1);
  const uint64_t block =
      ((tls->memsz - std::min(firstbyte, tls->memsz) + align - 1) & ~(align - 1)) + firstbyte;
  uint64_t tlsg = 0;
  if (auto sym = img.find_symbol("runtime.tlsg"); sym && sym->type == STT_TLS) {
    tlsg = sym->value;
    if (source) *source = "pt_tls+runtime.tlsg";
  } else if (tls->memsz == 8) {
    // Without symbols, a block holding exactly one pointer can only be Go's own g slot.
    if (source) *source = "pt_tls(g only)";
  } else {
    return errorf(
        "g TLS offset: PT_TLS holds {} bytes and runtime.tlsg is not in the symbol table (stripped "
        "externally linked binary)",
        tls->memsz);
  }
  if (tlsg + 8 > tls->memsz) return errorf("g TLS offset: runtime.tlsg {:#x} is outside PT_TLS", tlsg);
  return static_cast<int64_t>(tlsg) - static_cast<int64_t>(block);
}

Result<GoOffsets> read_go_offsets_fd(int fd, const std::string& name, const GoBuildInfo& info) {
  const off_t size = ::lseek(fd, 0, SEEK_END);
  if (size < 0) return errorf_errno(errno, "read Go offsets of {} failed: lseek", name);
  GoErrorKind kind = GoErrorKind::kNone;
  auto img = goelf::Image::open(goelf::ByteSource::file(fd, static_cast<uint64_t>(size)), &kind);
  if (!img) return errorf("read Go offsets of {} failed: {}", name, img.error().message);
  GoOffsets out;
  std::string tls_source;
  auto tls = g_tls_offset(*img, &tls_source);
  if (!tls) return errorf("read Go offsets of {} failed: {}", name, tls.error().message);
  out.g_tls_offset = *tls;
  std::string goid_source;
  if (auto d = goid_offset_from_dwarf(fd, name)) {
    out.goid_offset = *d;
    goid_source = "dwarf";
  } else {
    auto t = goid_offset_from_table(info.go_version, img->machine());
    if (!t)
      return errorf("read Go offsets of {} failed: no DWARF ({}) and {}", name, d.error().message,
                    t.error().message);
    out.goid_offset = *t;
    goid_source = "table:" + info.go_version;
  }
  out.source = fmt::format("goid={} tls={}", goid_source, tls_source);
  return out;
}

Result<GoOffsets> read_go_offsets(const std::string& path, const GoBuildInfo& info) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errorf_errno(errno, "read Go offsets of {} failed: open", path);
  auto r = read_go_offsets_fd(fd, path, info);
  ::close(fd);
  return r;
}

}  // namespace hostscope::identity
