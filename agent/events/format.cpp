#include "agent/events/format.h"

#include <arpa/inet.h>
#include <fmt/compile.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/json_escape.h"

namespace hostscope::events {

// RFC 3339 UTC with nanoseconds (30 bytes until the year 9999). The "YYYY-MM-DDTHH:MM:SS." part is computed once
// per second per thread.
static constexpr size_t kRfc3339Max = 32 + 10;

static char* put_rfc3339(char* p, uint64_t ts_ns) {
  thread_local time_t cached_secs = -1;
  thread_local char prefix[32];
  thread_local size_t prefix_len = 0;
  time_t secs = time_t(ts_ns / 1'000'000'000ull);
  if (secs != cached_secs) {
    struct tm tm{};
    gmtime_r(&secs, &tm);
    auto r = fmt::format_to_n(prefix, sizeof(prefix), FMT_COMPILE("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}."),
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    prefix_len = std::min(r.size, sizeof(prefix));
    cached_secs = secs;
  }
  std::memcpy(p, prefix, prefix_len);
  p += prefix_len;
  uint64_t ns = ts_ns % 1'000'000'000ull;
  for (int i = 8; i >= 0; i--, ns /= 10) p[i] = char('0' + ns % 10);
  p[9] = 'Z';
  return p + 10;
}

void append_rfc3339(fmt::memory_buffer& out, uint64_t ts_ns) {
  char buf[kRfc3339Max];
  out.append(buf, put_rfc3339(buf, ts_ns));
}

// ---- the per-event JSON line ----
//
// The line is on the per-event path (connections -o json, the agent's event sink), so it is written without a
// formatting library: the buffer is grown once for the fixed fields and every field is copied or converted
// straight into it. Profiled with callgrind, fmt's compiled format strings spent most of an event's instructions
// in per-call buffer appends and in the float formatting of duration_ms; the bytes written are the same
// (tests/unit/events_test.cpp pins them, and duration_ms against fmt's "{:.3f}" over ties and large values).

namespace {

constexpr char kDigits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

char* put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

unsigned decimal_digits(uint64_t v) {
  unsigned n = 1;
  for (; v >= 10000; v /= 10000) n += 4;
  return v >= 1000 ? n + 3 : v >= 100 ? n + 2 : v >= 10 ? n + 1 : n;
}

// Decimal digits of v (at most 20), without leading zeros, written from the last digit back.
char* put_uint(char* p, uint64_t v) {
  char* const end = p + decimal_digits(v);
  char* t = end;
  while (v >= 100) {
    unsigned i = unsigned(v % 100) * 2;
    v /= 100;
    *--t = kDigits2[i + 1];
    *--t = kDigits2[i];
  }
  if (v >= 10) {
    unsigned i = unsigned(v) * 2;
    *--t = kDigits2[i + 1];
    *--t = kDigits2[i];
  } else {
    *--t = char('0' + v);
  }
  return end;
}

// Worst case of an escaped byte (json_text::Bytes::Ascii: comm and paths are bytes, not UTF-8).
constexpr size_t kEscapedMax = json_text::kMaxPerByte;

char* put_escaped(char* p, std::string_view s) { return json_text::put_escaped(p, s, json_text::Bytes::Ascii); }

// duration_ms with three decimals, the bytes of fmt's "{:.3f}" of double(ns) / 1e6. Below 2^43 ns (~2.4 h) the
// double quotient is within 1e-9 ms of the exact one, so rounding the integer microseconds gives the same digits
// except on an exact tie (…500 ns), where the double's binary value decides: ties and longer durations go through
// fmt.
constexpr size_t kDurationMax = 40;

char* put_duration_ms(char* p, uint64_t ns) {
  uint64_t us = ns / 1000, rest = ns % 1000;
  if (ns < (uint64_t(1) << 43) && rest != 500) {
    if (rest > 500) us++;
    p = put_uint(p, us / 1000);
    unsigned frac = unsigned(us % 1000);
    *p++ = '.';
    *p++ = char('0' + frac / 100);
    *p++ = char('0' + frac / 10 % 10);
    *p++ = char('0' + frac % 10);
    return p;
  }
  char buf[kDurationMax];
  auto r = fmt::format_to_n(buf, sizeof(buf), FMT_COMPILE("{:.3f}"), double(ns) / 1e6);
  return put(p, std::string_view(buf, std::min(r.size, sizeof(buf))));
}

// Room for everything of a line except the identity strings: field names and punctuation (< 400 bytes), numbers
// (<= 20 digits each), the timestamp, two addresses, the three enum names and comm escaped.
constexpr size_t kFixedMax = 512 + kRfc3339Max + 2 * INET6_ADDRSTRLEN + kDurationMax + 20 * 16 + kEscapedMax * 16;

}  // namespace

void append_json_escaped(fmt::memory_buffer& out, std::string_view s) {
  const size_t start = out.size();
  out.reserve(start + kEscapedMax * s.size());
  char* p = put_escaped(out.data() + start, s);
  out.resize(size_t(p - out.data()));
}

void append_json(fmt::memory_buffer& out, const ConnectionEvent& e, const EventIdentity* id) {
  const std::string_view comm = e.comm_view(), kind = to_string(e.kind), role = to_string(e.role);
  const std::string_view outcome = e.kind == Kind::Close ? to_string(e.outcome) : std::string_view();
  size_t need = kFixedMax + kind.size() + role.size() + outcome.size();
  if (id) need += kEscapedMax * (id->service.size() + id->peer_service.size());
  const size_t start = out.size();
  out.reserve(start + need);
  char* const begin = out.data() + start;
  char* p = begin;

  p = put(p, R"({"ts":")");
  p = put_rfc3339(p, e.ts_ns);
  p = put(p, R"(","event":")");
  p = put(p, kind);
  p = put(p, R"(","role":")");
  p = put(p, role);
  p = put(p, R"(","pid":)");
  p = put_uint(p, e.pid);
  p = put(p, R"(,"tid":)");
  p = put_uint(p, e.tid);
  p = put(p, R"(,"comm":")");
  p = put_escaped(p, comm);
  p = put(p, R"(","cgroup_id":)");
  p = put_uint(p, e.cgroup_id);
  p = put(p, R"(,"netns":)");
  p = put_uint(p, e.netns);
  p = put(p, e.saddr.family == Family::V6 ? std::string_view(R"(,"family":6,"saddr":")")
                                          : std::string_view(R"(,"family":4,"saddr":")"));
  p += e.saddr.format(p, INET6_ADDRSTRLEN);
  p = put(p, R"(","sport":)");
  p = put_uint(p, e.sport);
  p = put(p, R"(,"daddr":")");
  p += e.daddr.format(p, INET6_ADDRSTRLEN);
  p = put(p, R"(","dport":)");
  p = put_uint(p, e.dport);
  p = put(p, R"(,"duration_ms":)");
  p = e.duration_ns ? put_duration_ms(p, *e.duration_ns) : put(p, "null");
  p = put(p, R"(,"connect_latency_us":)");
  p = e.connect_latency_ns ? put_uint(p, *e.connect_latency_ns / 1000) : put(p, "null");
  p = put(p, R"(,"bytes_sent":)");
  p = put_uint(p, e.bytes_sent);
  p = put(p, R"(,"bytes_received":)");
  p = put_uint(p, e.bytes_received);
  p = put(p, R"(,"srtt_us":)");
  p = put_uint(p, e.srtt_us);
  p = put(p, R"(,"retransmits":)");
  p = put_uint(p, e.retransmits);
  p = put(p, R"(,"outcome":)");
  if (e.kind == Kind::Close) {
    *p++ = '"';
    p = put(p, outcome);
    *p++ = '"';
  } else {
    p = put(p, "null");
  }
  if (e.goid) {
    p = put(p, R"(,"goid":)");
    p = put_uint(p, *e.goid);
  }
  if (id) {
    if (!id->service.empty()) {
      p = put(p, R"(,"service":")");
      p = put_escaped(p, id->service);
      *p++ = '"';
    }
    if (id->peer_pid) {
      p = put(p, R"(,"peer_pid":)");
      p = put_uint(p, *id->peer_pid);
    }
    if (!id->peer_service.empty()) {
      p = put(p, R"(,"peer_service":")");
      p = put_escaped(p, id->peer_service);
      *p++ = '"';
    }
  }
  p = put(p, "}\n");
  out.resize(start + size_t(p - begin));
}

void append_table_header(fmt::memory_buffer& out) {
  fmt::format_to(std::back_inserter(out), "{:<8} {:>7} {:<15} {:<7} {:<22} {:<22} {:>9} {:>9} {:>9} {:>8} {}\n",
                 "TIME", "PID", "COMM", "ROLE", "LOCAL", "REMOTE", "TX_B", "RX_B", "MS", "LAT_US", "OUTCOME");
}

namespace {

std::string endpoint(std::string_view addr, uint16_t port) {
  return addr.find(':') != std::string_view::npos ? fmt::format("[{}]:{}", addr, port) : fmt::format("{}:{}", addr, port);
}

std::string printable(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return out;
}

// JSON strings of an event line hold bytes, each byte >= 0x7f escaped as the code point U+00XX
// (append_json_escaped): back to those bytes, so a row from the agent's line equals the row from the event.
std::string line_bytes(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); i++) {
    auto c = static_cast<unsigned char>(utf8[i]);
    if ((c == 0xc2 || c == 0xc3) && i + 1 < utf8.size()) out.push_back(char(((c & 0x03) << 6) | (utf8[++i] & 0x3f)));
    else out.push_back(char(c));
  }
  return out;
}

}  // namespace

TableRow table_row(const ConnectionEvent& e, const EventIdentity* id) {
  TableRow r;
  time_t secs = time_t(e.ts_ns / 1'000'000'000ull);
  struct tm tm{};
  gmtime_r(&secs, &tm);
  r.time = fmt::format("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
  r.pid = e.pid;
  r.comm = e.comm_view();
  r.role = to_string(e.role);
  r.local = endpoint(e.saddr.str(), e.sport);
  r.remote = endpoint(e.daddr.str(), e.dport);
  r.bytes_sent = e.bytes_sent;
  r.bytes_received = e.bytes_received;
  if (e.duration_ns) r.ms = fmt::format("{:.3f}", double(*e.duration_ns) / 1e6);
  if (e.connect_latency_ns) r.latency_us = fmt::format("{}", *e.connect_latency_ns / 1000);
  r.outcome = e.kind == Kind::Open ? std::string_view("open") : to_string(e.outcome);
  if (id) r.service = id->service;
  return r;
}

TableRow table_row_from_json(const nlohmann::json& j) {
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? line_bytes(j[k].get<std::string>()) : std::string(); };
  auto num = [&](const char* k) { return j.contains(k) && j[k].is_number_unsigned() ? j[k].get<uint64_t>() : uint64_t(0); };
  TableRow r;
  std::string ts = str("ts");  // RFC 3339, UTC
  r.time = ts.size() >= 19 ? ts.substr(11, 8) : ts;
  r.pid = uint32_t(num("pid"));
  r.comm = str("comm");
  r.role = str("role");
  r.local = endpoint(j.contains("saddr") && j["saddr"].is_string() ? str("saddr") : "?", uint16_t(num("sport")));
  r.remote = endpoint(j.contains("daddr") && j["daddr"].is_string() ? str("daddr") : "?", uint16_t(num("dport")));
  r.bytes_sent = num("bytes_sent");
  r.bytes_received = num("bytes_received");
  if (j.contains("duration_ms") && j["duration_ms"].is_number()) r.ms = fmt::format("{:.3f}", j["duration_ms"].get<double>());
  if (j.contains("connect_latency_us") && j["connect_latency_us"].is_number()) r.latency_us = j["connect_latency_us"].dump();
  r.outcome = j.contains("outcome") && j["outcome"].is_string() ? str("outcome") : "open";
  r.service = str("service");
  return r;
}

void append_table_row(fmt::memory_buffer& out, const TableRow& r) {
  fmt::format_to(std::back_inserter(out), "{:<8} {:>7} {:<15} {:<7} {:<22} {:<22} {:>9} {:>9} {:>9} {:>8} {}", r.time,
                 r.pid, printable(r.comm), printable(r.role), printable(r.local), printable(r.remote), r.bytes_sent,
                 r.bytes_received, r.ms, r.latency_us, printable(r.outcome));
  if (!r.service.empty()) fmt::format_to(std::back_inserter(out), " {}", printable(r.service));
  out.push_back('\n');
}

}  // namespace hostscope::events
