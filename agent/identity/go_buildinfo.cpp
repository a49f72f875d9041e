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
    constexpr uint64_t kMaxVlen = std::min<uint64_t>(kMaxBack - 1, 0x80);  // a one-byte varint length, inside the window
    for (uint64_t vlen = 2; vlen < kMaxVlen; vlen++) {
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
