#include "agent/events/connection.h"

#include <arpa/inet.h>
#include <linux/types.h>

#include <algorithm>
#include <cstring>

#include "tcp_lifecycle.h"

namespace hostscope::events {

static_assert(sizeof(hs_tcp_event) == 152, "hs_tcp_event layout changed: update decode() and docs/events.md");
static_assert(offsetof(hs_tcp_event, saddr) == 100);
// The user-space enums are decoded by a plain cast from the kernel's bytes: they must keep the kernel's values.
static_assert(uint8_t(Kind::Open) == HS_EV_OPEN && uint8_t(Kind::Close) == HS_EV_CLOSE);
static_assert(uint8_t(Role::Unknown) == HS_ROLE_UNKNOWN && uint8_t(Role::Active) == HS_ROLE_ACTIVE &&
              uint8_t(Role::Passive) == HS_ROLE_PASSIVE);
static_assert(uint8_t(Outcome::None) == HS_OUT_NONE && uint8_t(Outcome::Closed) == HS_OUT_CLOSED &&
              uint8_t(Outcome::ResetSent) == HS_OUT_RESET_SENT &&
              uint8_t(Outcome::ResetReceived) == HS_OUT_RESET_RECEIVED &&
              uint8_t(Outcome::Refused) == HS_OUT_REFUSED && uint8_t(Outcome::TimedOut) == HS_OUT_TIMED_OUT &&
              uint8_t(Outcome::Failed) == HS_OUT_FAILED);

// ::ffff:a.b.c.d
static bool is_v4_mapped(const uint8_t* a) {
  static constexpr uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(a, prefix, sizeof(prefix)) == 0;
}

static IpAddr make_addr(uint16_t family, const uint8_t* raw, bool as_v4) {
  IpAddr a;
  if (family == AF_INET6 && !as_v4) {
    a.family = Family::V6;
    std::memcpy(a.bytes.data(), raw, 16);
  } else {
    a.family = Family::V4;
    std::memcpy(a.bytes.data(), family == AF_INET6 ? raw + 12 : raw, 4);
  }
  return a;
}

ConnectionEvent decode(const hs_tcp_event& r, int64_t realtime_offset_ns) {
  ConnectionEvent e;
  e.ts_ns = uint64_t(int64_t(r.ts_ns) + realtime_offset_ns);
  e.sock_id = r.sock_id;
  e.kind = r.kind == HS_EV_OPEN ? Kind::Open : Kind::Close;
  e.role = r.role <= HS_ROLE_PASSIVE ? Role(r.role) : Role::Unknown;
  e.outcome = r.outcome <= HS_OUT_FAILED ? Outcome(r.outcome) : Outcome::Failed;
  if (e.kind == Kind::Open) e.outcome = Outcome::None;
  e.owner_known = r.flags & HS_F_OWNER;
  e.open_seen = r.flags & HS_F_OPEN_SEEN;
  e.established = r.flags & HS_F_ESTABLISHED;
  if (e.owner_known) {
    e.pid = r.pid;
    e.tid = r.tid;
    std::memcpy(e.comm.data(), r.comm, sizeof(r.comm));
    e.comm.back() = 0;
    e.cgroup_id = r.cgroup_id;
  }
  e.netns = r.netns;
  // A v6 socket talking to a v4 peer carries both ends as v4-mapped; show it as the IPv4 connection it is.
  bool v4 = r.family == AF_INET6 && is_v4_mapped(r.daddr) && (is_v4_mapped(r.saddr) || std::all_of(r.saddr, r.saddr + 16, [](uint8_t b) { return b == 0; }));
  e.saddr = make_addr(r.family, r.saddr, v4);
  e.daddr = make_addr(r.family, r.daddr, v4);
  e.sport = r.sport;
  e.dport = r.dport;
  if (e.kind == Kind::Close && e.open_seen && r.open_ts_ns && r.ts_ns >= r.open_ts_ns) e.duration_ns = r.ts_ns - r.open_ts_ns;
  if (e.role == Role::Active && e.open_seen && r.established_ts_ns >= r.open_ts_ns && r.established_ts_ns)
    e.connect_latency_ns = r.established_ts_ns - r.open_ts_ns;
  e.bytes_sent = r.bytes_sent;
  e.bytes_received = r.bytes_received;
  e.srtt_us = r.srtt_us;
  e.retransmits = r.retransmits;
  e.sk_err = r.sk_err;
  if (r.flags & HS_F_GOID) e.goid = r.goid;
  if ((r.flags & HS_F_PEER) && r.peer_pid) e.peer_pid = r.peer_pid;
  return e;
}

}  // namespace hostscope::events
