#pragma once
// The user-space form of a TCP lifecycle event (bpf/tcp_lifecycle.h), decoded once by the reader
// (agent/events/connection.h): addresses normalised (IPv4-mapped IPv6 becomes IPv4), times converted to wall clock,
// derived durations. Plain data, no heap allocation, so decoding stays off the allocator on the per-event path.
// It lives here, without the decoder, because the topology model and the exporters name its enums and counts.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/net.h"

namespace hostscope::events {

enum class Kind : uint8_t { Open = 1, Close = 2 };
enum class Role : uint8_t { Unknown = 0, Active = 1, Passive = 2 };
enum class Outcome : uint8_t { None = 0, Closed, ResetSent, ResetReceived, Refused, TimedOut, Failed };

std::string_view to_string(Kind k);
std::string_view to_string(Role r);
std::string_view to_string(Outcome o);
std::optional<Outcome> outcome_from_string(std::string_view s);

struct ConnectionEvent {
  uint64_t ts_ns = 0;  // wall clock, ns since the epoch
  uint64_t sock_id = 0;
  Kind kind = Kind::Close;
  Role role = Role::Unknown;
  Outcome outcome = Outcome::None;
  bool owner_known = false;
  bool open_seen = false;
  bool established = false;
  uint32_t pid = 0;
  uint32_t tid = 0;
  std::array<char, 16> comm{};  // NUL-terminated
  uint64_t cgroup_id = 0;
  uint32_t netns = 0;
  IpAddr saddr, daddr;  // from common/net.h
  uint16_t sport = 0, dport = 0;
  std::optional<uint64_t> duration_ns;         // close: open..close, when the open was seen
  std::optional<uint64_t> connect_latency_ns;  // active: SYN_SENT..ESTABLISHED
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint32_t srtt_us = 0;
  uint32_t retransmits = 0;
  uint32_t sk_err = 0;
  std::optional<uint64_t> goid;
  std::optional<uint32_t> peer_pid;  // owner of the other end, when it is a socket of this node

  std::string_view comm_view() const;
};

}  // namespace hostscope::events
