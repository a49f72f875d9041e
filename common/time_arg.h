#pragma once
// Durations and points in time as people type them: the config (`history.retention: 7d`), `policy plan --since 24h`
// and `topology --at -15m`. The one parser of both, so every command reads "7d" the same way.
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/result.h"

namespace hostscope {

// "30s", "90m", "24h", "7d" -> nanoseconds; nullopt for anything else (zero, a sign, a fraction, no unit, overflow).
std::optional<uint64_t> parse_duration_ns(std::string_view s);

// A point in time (ns since the epoch, UTC): "now", a duration back from now ("-15m", "-2h", "-7d"), a time of day
// in UTC: the latest one not after now ("03:12"), today's or yesterday's ("today 03:12", "yesterday 03:12:30") or an RFC 3339 UTC time ("2024-05-01T03:12:00Z",
// fraction optional). `now_ns` is passed in so tests pin the clock.
Result<uint64_t> parse_time_arg(std::string_view s, uint64_t now_ns);

}  // namespace hostscope
