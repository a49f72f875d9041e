// libFuzzer target: the Go build info reader must never crash, hang or over-allocate on any image,
// read as memory and as the start of a sparse file.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "agent/identity/go_buildinfo.h"

using namespace hostscope::identity;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Small limits so the truncation paths are reached with small inputs too.
  GoParseLimits limits;
  limits.max_modinfo_bytes = 4096;
  limits.max_deps = 16;
  GoErrorKind kind = GoErrorKind::kNone;
  auto r = parse_go_build_info(std::span(data, size), &kind, limits);
  if (r) {
    // The printed form must parse back to the same fields (the version is printed separately).
    GoBuildInfo without_version = *r;
    without_version.go_version.clear();
    auto again = parse_go_modinfo(without_version.to_string());
    // Like Go's BuildInfo.String, the text drops the sum of a module that has a replacement.
    GoBuildInfo want = *r;
    if (want.main.replace) want.main.sum.clear();
    for (auto& d : want.deps) {
      if (d.replace) d.sum.clear();
    }
    if (!again || again->path != want.path || again->main != want.main || again->deps != want.deps ||
        again->settings != want.settings) {
      __builtin_trap();
    }
  } else if (kind == GoErrorKind::kNone) {
    __builtin_trap();  // every failure has a class
  }
  // The same bytes as the start of a 4 GiB sparse file (the rest reads as zeros): header claims of
  // gigabytes now fit inside the "file", so only the caps and the read budget keep the reader small
  // (issue 15: e_shentsize = e_shnum = 65535 in a sparse copy of /bin/sleep took 4.28 GB). The run
  // uses -malloc_limit_mb=32 (scripts/test.sh): any single allocation above it is a failure.
  limits.max_read_bytes = 64 << 10;
  const auto sparse = goelf::ByteSource::memory(std::span(data, size), (4ull << 30) + size);
  kind = GoErrorKind::kNone;
  auto s = read_go_build_info(sparse, "sparse", &kind, limits);
  if (!s && kind == GoErrorKind::kNone) __builtin_trap();
  if (auto img = goelf::Image::open(sparse)) (void)img->find_symbol("runtime.tlsg");
  // The modinfo text parser and the unquoter on raw bytes.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_go_modinfo(text, 16);
  (void)go_unquote(text);
  (void)go_quote(text.substr(0, 256));
  return 0;
}
