#include "common/time_arg.h"

#include <charconv>

#include "common/topology_json.h"

namespace hostscope {

std::optional<uint64_t> parse_duration_ns(std::string_view s) {
  if (s.size() < 2) return std::nullopt;
  uint64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1'000'000'000ull; break;
    case 'm': unit = 60'000'000'000ull; break;
    case 'h': unit = 3'600'000'000'000ull; break;
    case 'd': unit = 86'400'000'000'000ull; break;
    default: return std::nullopt;
  }
  uint64_t n = 0;
  auto num = s.substr(0, s.size() - 1);
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  if (ec != std::errc() || p != num.data() + num.size() || n == 0 || n > UINT64_MAX / unit) return std::nullopt;
  return n * unit;
}

Result<uint64_t> parse_time_arg(std::string_view s, uint64_t now_ns) {
  if (s == "now") return now_ns;
  if (!s.empty() && s[0] == '-') {
    auto d = parse_duration_ns(s.substr(1));
    if (!d) return errorf("time '{}': expected a duration back from now like -15m, -2h or -7d", s);
    if (*d >= now_ns) return errorf("time '{}': before 1970", s);
    return now_ns - *d;
  }
  if (auto t = topology::parse_time(s)) return *t;
  return errorf("time '{}': expected now, -15m/-2h/-7d or an RFC 3339 UTC time like 2024-05-01T03:12:00Z", s);
}

}  // namespace hostscope
