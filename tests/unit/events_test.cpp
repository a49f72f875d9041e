// Decoding, filtering and formatting of TCP lifecycle events (no root, no BPF).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "agent/events/connection.h"
#include "agent/events/filter.h"
#include "agent/events/format.h"
#include "tcp_lifecycle.h"

using namespace hostscope::events;
using hostscope::Family;
using hostscope::IpAddr;

namespace {

hs_tcp_event raw_v4_close() {
  hs_tcp_event r{};
  r.ts_ns = 5'000'000'000;
  r.sock_id = 42;
  r.open_ts_ns = 1'000'000'000;
  r.established_ts_ns = 1'000'250'000;
  r.cgroup_id = 7;
  r.bytes_sent = 100;
  r.bytes_received = 2000;
  r.pid = 1234;
  r.tid = 1235;
  r.netns = 4026531840u;
  r.srtt_us = 55;
  r.retransmits = 3;
  r.family = 2;  // AF_INET
  r.sport = 40000;
  r.dport = 443;
  r.kind = HS_EV_CLOSE;
  r.role = HS_ROLE_ACTIVE;
  r.outcome = HS_OUT_CLOSED;
  r.flags = HS_F_OWNER | HS_F_OPEN_SEEN | HS_F_ESTABLISHED;
  inet_pton(AF_INET, "10.1.2.3", r.saddr);
  inet_pton(AF_INET, "93.184.216.34", r.daddr);
  std::strcpy(r.comm, "curl");
  return r;
}

TEST(Decode, ActiveCloseCarriesEveryField) {
  auto e = decode(raw_v4_close(), 1'000'000'000'000);
  EXPECT_EQ(e.ts_ns, 1'005'000'000'000u);
  EXPECT_EQ(e.kind, Kind::Close);
  EXPECT_EQ(e.role, Role::Active);
  EXPECT_EQ(e.outcome, Outcome::Closed);
  EXPECT_EQ(e.pid, 1234u);
  EXPECT_EQ(e.tid, 1235u);
  EXPECT_EQ(e.comm_view(), "curl");
  EXPECT_EQ(e.cgroup_id, 7u);
  EXPECT_EQ(e.saddr.str(), "10.1.2.3");
  EXPECT_EQ(e.daddr.str(), "93.184.216.34");
  EXPECT_EQ(int(e.saddr.family), 4);
  EXPECT_EQ(*e.duration_ns, 4'000'000'000u);
  EXPECT_EQ(*e.connect_latency_ns, 250'000u);
  EXPECT_EQ(e.bytes_sent, 100u);
  EXPECT_EQ(e.bytes_received, 2000u);
  EXPECT_FALSE(e.goid.has_value());
}

TEST(Decode, UnknownOwnerNeverShowsAPid) {
  auto r = raw_v4_close();
  r.flags = HS_F_ESTABLISHED;  // opened before hostscope started; pid fields are not trustworthy
  auto e = decode(r, 0);
  EXPECT_EQ(e.pid, 0u);
  EXPECT_EQ(e.comm_view(), "");
  EXPECT_FALSE(e.duration_ns.has_value());
  EXPECT_FALSE(e.connect_latency_ns.has_value());
}

TEST(Decode, V4MappedIpv6BecomesIpv4AndRealIpv6Stays) {
  auto r = raw_v4_close();
  r.family = 10;  // AF_INET6
  std::memset(r.saddr, 0, 16);
  std::memset(r.daddr, 0, 16);
  inet_pton(AF_INET6, "::ffff:127.0.0.1", r.saddr);
  inet_pton(AF_INET6, "::ffff:10.0.0.9", r.daddr);
  auto e = decode(r, 0);
  EXPECT_EQ(int(e.saddr.family), 4);
  EXPECT_EQ(e.saddr.str(), "127.0.0.1");
  EXPECT_EQ(e.daddr.str(), "10.0.0.9");

  inet_pton(AF_INET6, "fd00::1", r.saddr);
  inet_pton(AF_INET6, "2001:db8::2", r.daddr);
  e = decode(r, 0);
  EXPECT_EQ(int(e.saddr.family), 6);
  EXPECT_EQ(e.daddr.str(), "2001:db8::2");
}

TEST(Decode, GoroutineAndPassiveLatency) {
  auto r = raw_v4_close();
  r.role = HS_ROLE_PASSIVE;
  r.flags |= HS_F_GOID;
  r.goid = 77;
  auto e = decode(r, 0);
  EXPECT_EQ(e.role, Role::Passive);
  EXPECT_FALSE(e.connect_latency_ns.has_value());  // only the side that called connect() has one
  EXPECT_EQ(*e.goid, 77u);
}

TEST(Decode, PeerPidOnlyWithItsFlag) {
  auto r = raw_v4_close();
  r.peer_pid = 4321;
  EXPECT_FALSE(decode(r, 0).peer_pid.has_value());  // no HS_F_PEER: the field means nothing
  r.flags |= HS_F_PEER;
  EXPECT_EQ(decode(r, 0).peer_pid, 4321u);
  r.peer_pid = 0;
  EXPECT_FALSE(decode(r, 0).peer_pid.has_value());  // pid 0 is never a peer
}

TEST(Decode, OutOfRangeEnumsAreSafe) {
  auto r = raw_v4_close();
  r.role = 9;
  r.outcome = 200;
  auto e = decode(r, 0);
  EXPECT_EQ(e.role, Role::Unknown);
  EXPECT_EQ(e.outcome, Outcome::Failed);
}

TEST(Format, JsonLineHasTheDocumentedFieldsAndValues) {
  auto e = decode(raw_v4_close(), 0);
  fmt::memory_buffer b;
  append_json(b, e);
  std::string line(b.data(), b.size());
  ASSERT_EQ(line.back(), '\n');
  auto j = nlohmann::json::parse(line);
  for (auto k : {"ts", "event", "role", "pid", "tid", "comm", "cgroup_id", "netns", "family", "saddr", "sport", "daddr",
                 "dport", "duration_ms", "connect_latency_us", "bytes_sent", "bytes_received", "srtt_us", "retransmits",
                 "outcome"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["ts"], "1970-01-01T00:00:05.000000000Z");
  EXPECT_EQ(j["event"], "close");
  EXPECT_EQ(j["role"], "active");
  EXPECT_EQ(j["pid"], 1234);
  EXPECT_EQ(j["comm"], "curl");
  EXPECT_EQ(j["family"], 4);
  EXPECT_EQ(j["saddr"], "10.1.2.3");
  EXPECT_EQ(j["sport"], 40000);
  EXPECT_EQ(j["daddr"], "93.184.216.34");
  EXPECT_EQ(j["dport"], 443);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 4000.0);
  EXPECT_EQ(j["connect_latency_us"], 250);
  EXPECT_EQ(j["bytes_sent"], 100);
  EXPECT_EQ(j["bytes_received"], 2000);
  EXPECT_EQ(j["srtt_us"], 55);
  EXPECT_EQ(j["retransmits"], 3);
  EXPECT_EQ(j["outcome"], "closed");
  EXPECT_FALSE(j.contains("goid"));
  EXPECT_FALSE(j.contains("service"));
}

TEST(Format, JsonOpenHasNullOutcomeAndIdentityFields) {
  auto r = raw_v4_close();
  r.kind = HS_EV_OPEN;
  r.flags |= HS_F_GOID;
  r.goid = 9;
  auto e = decode(r, 0);
  EventIdentity id{"checkout", 4321u, "payments"};
  fmt::memory_buffer b;
  append_json(b, e, &id);
  auto j = nlohmann::json::parse(std::string(b.data(), b.size()));
  EXPECT_EQ(j["event"], "open");
  EXPECT_TRUE(j["outcome"].is_null());
  EXPECT_TRUE(j["duration_ms"].is_null());
  EXPECT_EQ(j["goid"], 9);
  EXPECT_EQ(j["service"], "checkout");
  EXPECT_EQ(j["peer_pid"], 4321);
  EXPECT_EQ(j["peer_service"], "payments");
}

TEST(Format, HostileCommStaysValidJson) {
  auto r = raw_v4_close();
  const char evil[16] = {'"', '\\', '\n', '\x01', '\xff', '}', 'x', 0};
  std::memcpy(r.comm, evil, sizeof(evil));
  auto e = decode(r, 0);
  fmt::memory_buffer b;
  append_json(b, e);
  auto j = nlohmann::json::parse(std::string(b.data(), b.size()));
  EXPECT_EQ(j["comm"].get<std::string>(), std::string("\"\\\n\x01\xc3\xbf}x"));
}

// The bytes of a line are an interface (log shippers parse them): every field at its extremes, pinned. The lines were
// written by the fmt-based formatter this one replaced.
TEST(Format, JsonLineBytesArePinned) {
  ConnectionEvent e;
  e.ts_ns = 1798761599'123456789ull;
  e.kind = Kind::Close;
  e.role = Role::Passive;
  e.outcome = Outcome::ResetReceived;
  e.pid = 4294967295u;
  const char evil[16] = {'"', '\\', '\n', '\x01', '\xff', '}', 'x', 'y', 'z', '1', '2', '3', '4', '5', '6', 0};
  std::memcpy(e.comm.data(), evil, 16);
  e.cgroup_id = UINT64_MAX;
  e.netns = 4026531840u;
  e.saddr = *IpAddr::parse("fd00::1");
  e.daddr = *IpAddr::parse("2001:db8::ffff:1");
  e.sport = 65535;
  e.duration_ns = (uint64_t(1) << 43) + 500;
  e.connect_latency_ns = 999;
  e.bytes_sent = UINT64_MAX;
  e.srtt_us = 4294967295u;
  e.retransmits = 10;
  e.goid = UINT64_MAX;
  EventIdentity id{"svc \"a\"\x07\xc3\xa9", 1u, "p\\q"};
  fmt::memory_buffer b;
  append_json(b, e, &id);
  EXPECT_EQ(std::string(b.data(), b.size()),
            "{\"ts\":\"2026-12-31T23:59:59.123456789Z\",\"event\":\"close\",\"role\":\"passive\",\"pid\":4294967295,\"tid\":0,\"comm\":\"\\\"\\\\\\u000a\\u0001\\u00ff}xyz123456\",\"cgroup_id\":18446744073709551615,\"netns\":4026531840,\"family\":6,\"saddr\":\"fd00::1\",\"sport\":65535,\"daddr\":\"2001:db8::ffff:1\",\"dport\":0,\"duration_ms\":8796093.023,\"connect_latency_us\":0,\"bytes_sent\":18446744073709551615,\"bytes_received\":0,\"srtt_us\":4294967295,\"retransmits\":10,\"outcome\":\"reset_received\",\"goid\":18446744073709551615,\"service\":\"svc \\\"a\\\"\\u0007\\u00c3\\u00a9\",\"peer_pid\":1,\"peer_service\":\"p\\\\q\"}\n");
  e.kind = Kind::Open;
  e.role = Role::Unknown;
  e.duration_ns.reset();
  e.connect_latency_ns.reset();
  e.goid.reset();
  e.saddr = *IpAddr::parse("0.0.0.0");
  e.daddr = *IpAddr::parse("255.255.255.255");
  e.ts_ns = 0;
  e.comm.fill(0);
  b.clear();
  append_json(b, e);
  EXPECT_EQ(std::string(b.data(), b.size()),
            "{\"ts\":\"1970-01-01T00:00:00.000000000Z\",\"event\":\"open\",\"role\":\"unknown\",\"pid\":4294967295,\"tid\":0,\"comm\":\"\",\"cgroup_id\":18446744073709551615,\"netns\":4026531840,\"family\":4,\"saddr\":\"0.0.0.0\",\"sport\":65535,\"daddr\":\"255.255.255.255\",\"dport\":0,\"duration_ms\":null,\"connect_latency_us\":null,\"bytes_sent\":18446744073709551615,\"bytes_received\":0,\"srtt_us\":4294967295,\"retransmits\":10,\"outcome\":null}\n");
}

// duration_ms is written from integers, not through a float formatter: the digits must be those of printf-style
// "%.3f" of the milliseconds as a double, at every magnitude, on exact ties (…500 ns) and past the integer path.
TEST(Format, DurationMsRoundsLikeTheFloatFormatter) {
  std::vector<uint64_t> values;
  for (uint64_t ns = 0; ns < 5000; ns++) values.push_back(ns);
  for (uint64_t k = 1; k < 1'000'000'000'000ull; k = k * 7 + 3) {
    for (uint64_t d : {499ull, 500ull, 501ull, 999ull, 1000ull}) values.push_back(k * 1000 + d);
  }
  for (int shift : {43, 53, 63})
    for (int64_t d = -1001; d <= 1001; d++) values.push_back(uint64_t((__int128(1) << shift) + d));
  values.push_back(UINT64_MAX);
  uint64_t x = 0x9e3779b97f4a7c15ull;  // fixed-seed xorshift: the same values every run
  for (int i = 0; i < 200'000; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    values.push_back(x >> (x % 50));
  }
  auto e = decode(raw_v4_close(), 0);
  fmt::memory_buffer b;
  int wrong = 0;
  for (uint64_t ns : values) {
    e.duration_ns = ns;
    b.clear();
    append_json(b, e);
    std::string_view line(b.data(), b.size());
    auto at = line.find("\"duration_ms\":") + 14;
    auto got = line.substr(at, line.find(',', at) - at);
    auto want = fmt::format("{:.3f}", double(ns) / 1e6);
    if (got != want && wrong++ < 10) ADD_FAILURE() << ns << " ns: got " << got << ", want " << want;
  }
  EXPECT_EQ(wrong, 0);
}

TEST(Format, TableRowShowsOutcomeAndBracketsIpv6) {
  auto r = raw_v4_close();
  r.family = 10;
  inet_pton(AF_INET6, "fd00::1", r.saddr);
  inet_pton(AF_INET6, "fd00::2", r.daddr);
  r.outcome = HS_OUT_REFUSED;
  auto e = decode(r, 0);
  fmt::memory_buffer b;
  append_table_header(b);
  append_table_row(b, e);
  std::string s(b.data(), b.size());
  EXPECT_NE(s.find("[fd00::1]:40000"), std::string::npos) << s;
  EXPECT_NE(s.find("[fd00::2]:443"), std::string::npos);
  EXPECT_NE(s.find("refused"), std::string::npos);
  EXPECT_NE(s.find("OUTCOME"), std::string::npos);
}

// One row formatter for both `connections` paths: the row from the agent's JSON line equals the row from the event,
// the time is UTC whatever TZ says, and a hostile comm reaches the terminal as '?' (no control characters).
TEST(Format, TableRowIsUtcSanitisedAndTheSameFromJson) {
  auto r = raw_v4_close();
  const char evil[16] = {'e', 'v', '\x1b', '[', '2', 'J', '\n', '\xff', 'x', 0};
  std::memcpy(r.comm, evil, sizeof(evil));
  auto e = decode(r, 1'700'000'000'000'000'000);  // 2023-11-14T22:13:25Z
  const char* tz = std::getenv("TZ");
  std::string old_tz = tz ? tz : "";
  setenv("TZ", "Asia/Kolkata", 1);  // UTC+05:30
  tzset();
  EventIdentity id;
  id.service = "svc\x07";
  fmt::memory_buffer row, line, from_json;
  append_table_row(row, e, &id);
  append_json(line, e, &id);
  append_table_row(from_json, table_row_from_json(nlohmann::json::parse(std::string(line.data(), line.size()))));
  if (tz) setenv("TZ", old_tz.c_str(), 1);
  else unsetenv("TZ");
  tzset();
  std::string s(row.data(), row.size());
  EXPECT_EQ(s.rfind("22:13:25 ", 0), 0u) << s;
  EXPECT_NE(s.find(" ev?[2J??x "), std::string::npos) << s;
  EXPECT_NE(s.find(" svc?\n"), std::string::npos) << s;
  for (char c : s.substr(0, s.size() - 1)) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << s;
  EXPECT_EQ(std::string(from_json.data(), from_json.size()), s);
}

TEST(Filter, MatchesPidCommPortAndFailures) {
  auto e = decode(raw_v4_close(), 0);
  ConnectionFilter f;
  EXPECT_TRUE(f.match(e));
  f.pids = {1};
  EXPECT_FALSE(f.match(e));
  f.pids = {1, 1234};
  EXPECT_TRUE(f.match(e));
  f.comm = "wget";
  EXPECT_FALSE(f.match(e));
  f.comm = "curl";
  f.ports = {443};
  EXPECT_TRUE(f.match(e));
  f.ports = {80};
  EXPECT_FALSE(f.match(e));
  f.ports = {40000};  // local port matches too
  EXPECT_TRUE(f.match(e));
  f.failed_only = true;
  EXPECT_FALSE(f.match(e));
  e.outcome = Outcome::TimedOut;
  EXPECT_TRUE(f.match(e));
}

TEST(Filter, OpensOnlyWithTheFlag) {
  auto r = raw_v4_close();
  r.kind = HS_EV_OPEN;
  auto e = decode(r, 0);
  ConnectionFilter f;
  EXPECT_FALSE(f.match(e));
  f.opens = true;
  EXPECT_TRUE(f.match(e));
}

TEST(IpAddr, ParseRoundTrip) {
  EXPECT_EQ(IpAddr::parse("192.168.1.1")->str(), "192.168.1.1");
  EXPECT_EQ(IpAddr::parse("2001:db8::1")->str(), "2001:db8::1");
  EXPECT_FALSE(IpAddr::parse("300.1.1.1").has_value());
  EXPECT_FALSE(IpAddr::parse("").has_value());
}

}  // namespace

// IPv4 addresses are formatted by hand on the per-event path: they must read exactly as inet_ntop writes them.
TEST(IpAddr, Ipv4FormatMatchesInetNtop) {
  IpAddr a;
  a.family = Family::V4;
  char want[INET_ADDRSTRLEN];
  for (unsigned v : {0u, 1u, 9u, 10u, 11u, 99u, 100u, 101u, 109u, 110u, 199u, 200u, 250u, 255u})
    for (int pos = 0; pos < 4; pos++) {
      a.bytes = {};
      a.bytes[0] = 10;
      a.bytes[pos] = uint8_t(v);
      a.bytes[3 - pos] = uint8_t(255 - v);
      ASSERT_NE(inet_ntop(AF_INET, a.bytes.data(), want, sizeof(want)), nullptr);
      EXPECT_EQ(a.str(), want);
    }
}

// The date part of a timestamp is cached per second: crossing seconds, days and years, and going back in time,
// must still give gmtime's answer.
TEST(Format, Rfc3339AcrossSecondsDaysAndYears) {
  auto expect = [](uint64_t ns) {
    time_t secs = time_t(ns / 1'000'000'000ull);
    struct tm tm{};
    gmtime_r(&secs, &tm);
    char want[64];
    snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%09lluZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned long long)(ns % 1'000'000'000ull));
    return std::string(want);
  };
  const uint64_t new_year = 1798761599ull * 1'000'000'000ull;  // 2026-12-31T23:59:59Z
  const uint64_t day = 86'400'000'000'000ull;
  for (uint64_t ns : std::vector<uint64_t>{new_year, new_year + 999'999'999, new_year + 1'000'000'000,
                                           new_year + 1'000'000'001, new_year + day, new_year - 1, 5, new_year}) {
    fmt::memory_buffer b;
    append_rfc3339(b, ns);
    EXPECT_EQ(std::string(b.data(), b.size()), expect(ns)) << ns;
  }
}
