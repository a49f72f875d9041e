#include "common/time_arg.h"

#include <charconv>
#include <utility>

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

namespace {

constexpr uint64_t kDayNs = 86'400'000'000'000ull;

// "HH:MM" or "HH:MM:SS" -> ns since midnight.
std::optional<uint64_t> time_of_day_ns(std::string_view s) {
  if (s.size() != 5 && s.size() != 8) return std::nullopt;
  auto two = [&](size_t at, unsigned max) -> std::optional<unsigned> {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + at, s.data() + at + 2, v);
    if (ec != std::errc() || p != s.data() + at + 2 || v > max) return std::nullopt;
    return v;
  };
  auto h = two(0, 23), m = two(3, 59);
  auto sec = s.size() == 8 ? two(6, 59) : std::optional<unsigned>(0);
  if (s[2] != ':' || (s.size() == 8 && s[5] != ':') || !h || !m || !sec) return std::nullopt;
  return ((uint64_t(*h) * 60 + *m) * 60 + *sec) * 1'000'000'000ull;
}

}  // namespace

Result<uint64_t> parse_time_arg(std::string_view s, uint64_t now_ns) {
  if (s == "now") return now_ns;
  if (!s.empty() && s[0] == '-') {
    auto d = parse_duration_ns(s.substr(1));
    if (!d) return errorf("time '{}': expected a duration back from now like -15m, -2h or -7d", s);
    if (*d >= now_ns) return errorf("time '{}': before 1970", s);
    return now_ns - *d;
  }
  if (auto t = topology::parse_time(s)) return *t;
  // "03:12": the latest such time of day (UTC) not after now_ns (today's, else yesterday's).
  if (auto tod = time_of_day_ns(s)) {
    const uint64_t midnight = now_ns - now_ns % kDayNs;
    if (midnight + *tod <= now_ns) return midnight + *tod;
    if (midnight < kDayNs) return errorf("time '{}': before 1970", s);
    return midnight - kDayNs + *tod;
  }
  // "today 03:12", "yesterday 03:12:30": a time of day (UTC) on the day of now_ns or the day before.
  for (auto [word, days_back] : {std::pair<std::string_view, uint64_t>{"today ", 0}, {"yesterday ", 1}}) {
    if (s.substr(0, word.size()) != word) continue;
    auto tod = time_of_day_ns(s.substr(word.size()));
    if (!tod) return errorf("time '{}': expected {}HH:MM or {}HH:MM:SS (UTC)", s, word, word);
    const uint64_t midnight = now_ns - now_ns % kDayNs;
    if (midnight < days_back * kDayNs) return errorf("time '{}': before 1970", s);
    return midnight - days_back * kDayNs + *tod;
  }
  return errorf("time '{}': expected now, -15m/-2h/-7d, HH:MM, today/yesterday HH:MM (UTC) or an RFC 3339 UTC time like "
                "2024-05-01T03:12:00Z", s);
}

}  // namespace hostscope
