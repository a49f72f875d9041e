#pragma once
// Addresses, CIDRs and port ranges as the policy language and the reference evaluator see them.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <sys/socket.h>

namespace hostscope::policy {

enum class Family { V4, V6 };

struct IpAddr {
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4 bytes
  bool operator==(const IpAddr&) const = default;
};

struct Cidr {
  IpAddr addr;  // stored with host bits cleared
  int prefix = 0;
  bool operator==(const Cidr&) const = default;
  auto operator<=>(const Cidr& o) const { return to_string() <=> o.to_string(); }
  std::string to_string() const;
  bool contains(const IpAddr& a) const;
  bool contains(const Cidr& c) const;  // c is a subset of *this
};

std::optional<IpAddr> parse_ip(std::string_view s);

// A socket address (sockaddr_in or sockaddr_in6 in `ss`) for an address text and a port; family() is
// AF_UNSPEC when the text is not an address.
struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  sockaddr* ptr() { return reinterpret_cast<sockaddr*>(&ss); }
};
SockAddr sock_addr(std::string_view addr, uint16_t port);
std::string to_string(const IpAddr& a);
std::string to_string(Family f);

// Why parsing failed, for lint messages; host_bits_set is reported separately so lint can warn.
struct CidrParse {
  std::optional<Cidr> cidr;
  std::string error;           // empty when cidr is set
  bool host_bits_set = false;  // "10.0.0.1/8": accepted (masked) but worth a warning
};
// Accepts "a.b.c.d/n", "v6/n" and plain addresses (as /32 or /128).
CidrParse parse_cidr(std::string_view s);

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
