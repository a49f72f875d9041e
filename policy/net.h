#pragma once
// Protocols, port ranges and socket addresses as the policy language and the reference evaluator see them;
// addresses and CIDRs are the project-wide ones in common/net.h.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "common/net.h"

namespace hostscope::policy {

// A socket address (sockaddr_in or sockaddr_in6 in `ss`) for an address text and a port; family() is
// AF_UNSPEC when the text is not an address.
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  sockaddr* ptr() { return reinterpret_cast<sockaddr*>(&ss); }
};
SockAddr sock_addr(std::string_view addr, uint16_t port);

// 127.0.0.0/8 or ::1: an address of this node that is never routed.
bool is_loopback(const IpAddr& a);

// Icmpv6 never comes from the language: the compiler uses it for the neighbour discovery rules.
enum class Protocol { Any, Tcp, Udp, Icmpv6 };
const char* to_string(Protocol p);

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool operator==(const PortRange&) const = default;
  bool contains(uint16_t p) const { return p >= first && p <= last; }
  std::string to_string(char sep = '-') const;
};

}  // namespace hostscope::policy
