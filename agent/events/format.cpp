#include "agent/events/format.h"

#include <fmt/compile.h>
#include <time.h>

#include <nlohmann/json.hpp>

namespace hostscope::events {

// The JSON line is on the per-event path (connections -o json, the agent's event sink): format strings are
// compiled (FMT_COMPILE) and written straight into the buffer (fmt::appender), the date part of the timestamp
// is computed once per second, and IPv4 addresses are written without inet_ntop.

void append_rfc3339(fmt::memory_buffer& out, uint64_t ts_ns) {
  // "YYYY-MM-DDTHH:MM:SS." of the last second seen by this thread.
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
  out.append(prefix, prefix + prefix_len);
  char frac[10];
  uint64_t ns = ts_ns % 1'000'000'000ull;
  for (int i = 8; i >= 0; i--, ns /= 10) frac[i] = char('0' + ns % 10);
  frac[9] = 'Z';
  out.append(frac, frac + 10);
}

void append_json_escaped(fmt::memory_buffer& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(char(c));
    } else if (c < 0x20 || c >= 0x7f) {
      // comm and paths are bytes, not UTF-8: escape everything outside printable ASCII so the line stays valid JSON.
      const char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      out.append(esc, esc + 6);
    } else {
      out.push_back(char(c));
    }
  }
}

static void append_addr(fmt::memory_buffer& out, const IpAddr& a) {
  char buf[64];
  size_t n = a.format(buf, sizeof(buf));
  out.append(buf, buf + n);
}

void append_json(fmt::memory_buffer& out, const ConnectionEvent& e, const EventIdentity* id) {
  auto it = fmt::appender(out);
  out.append(std::string_view(R"({"ts":")"));
  append_rfc3339(out, e.ts_ns);
  fmt::format_to(it, FMT_COMPILE(R"(","event":"{}","role":"{}","pid":{},"tid":{},"comm":")"), to_string(e.kind), to_string(e.role),
                 e.pid, e.tid);
  append_json_escaped(out, e.comm_view());
  fmt::format_to(it, FMT_COMPILE(R"(","cgroup_id":{},"netns":{},"family":{},"saddr":")"), e.cgroup_id, e.netns,
                 e.saddr.family == Family::V6 ? 6 : 4);
  append_addr(out, e.saddr);
  fmt::format_to(it, FMT_COMPILE(R"(","sport":{},"daddr":")"), e.sport);
  append_addr(out, e.daddr);
  fmt::format_to(it, FMT_COMPILE(R"(","dport":{},"duration_ms":)"), e.dport);
  if (e.duration_ns)
    fmt::format_to(it, FMT_COMPILE("{:.3f}"), double(*e.duration_ns) / 1e6);
  else
    out.append(std::string_view("null"));
  out.append(std::string_view(",\"connect_latency_us\":"));
  if (e.connect_latency_ns)
    fmt::format_to(it, FMT_COMPILE("{}"), *e.connect_latency_ns / 1000);
  else
    out.append(std::string_view("null"));
  fmt::format_to(it, FMT_COMPILE(R"(,"bytes_sent":{},"bytes_received":{},"srtt_us":{},"retransmits":{},"outcome":)"), e.bytes_sent,
                 e.bytes_received, e.srtt_us, e.retransmits);
  if (e.kind == Kind::Close)
    fmt::format_to(it, FMT_COMPILE(R"("{}")"), to_string(e.outcome));
  else
    out.append(std::string_view("null"));
  if (e.goid) fmt::format_to(it, FMT_COMPILE(R"(,"goid":{})"), *e.goid);
  if (id) {
    if (!id->service.empty()) {
      out.append(std::string_view(R"(,"service":")"));
      append_json_escaped(out, id->service);
      out.push_back('"');
    }
    if (id->peer_pid) fmt::format_to(it, FMT_COMPILE(R"(,"peer_pid":{})"), *id->peer_pid);
    if (!id->peer_service.empty()) {
      out.append(std::string_view(R"(,"peer_service":")"));
      append_json_escaped(out, id->peer_service);
      out.push_back('"');
    }
  }
  out.append(std::string_view("}\n"));
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
