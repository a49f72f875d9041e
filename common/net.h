#pragma once
// IP addresses and CIDRs, one form for the whole project: the decoded kernel events, the topology's named
// networks and the policy language all use these. Plain data (17 bytes for an address), no heap allocation,
// so an address can sit in a per-event struct.
#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace hostscope {

// The enumerator values are the IP version numbers, so a family can be printed or hashed as a number.
enum class Family : uint8_t { None = 0, V4 = 4, V6 = 6 };
std::string to_string(Family f);  // "ipv4", "ipv6"

struct IpAddr {
  Family family = Family::None;     // None: no address (e.g. an end not seen yet)
  std::array<uint8_t, 16> bytes{};  // network order; v4 uses the first 4 bytes
  // Writes the textual form (NUL-terminated) to out; returns the length written, 0 when cap is too small.
  size_t format(char* out, size_t cap) const;
  std::string str() const;  // Family::None prints as 0.0.0.0
  bool is_v4() const { return family == Family::V4; }
  bool is_v6() const { return family == Family::V6; }
  bool operator==(const IpAddr&) const = default;
  // "10.1.2.3" or "fd00::1"; nothing else (no ports, no brackets, no zone).
  static std::optional<IpAddr> parse(std::string_view s);
};

struct Cidr {
  IpAddr addr;  // host bits cleared
  int prefix = 0;
  bool operator==(const Cidr&) const = default;
  auto operator<=>(const Cidr& o) const { return str() <=> o.str(); }
  std::string str() const;  // "10.0.0.0/8"
  bool contains(const IpAddr& a) const;
  bool contains(const Cidr& c) const;  // c is a subset of *this
  // Strict form for configuration: host bits set are refused ("10.0.0.1/8" is almost always a typo for a host
  // or a different network). Errors name the text: "CIDR 10.0.0.0/33: prefix out of range (0..32)".
  static Result<Cidr> parse(std::string_view s);
};

// Lenient form for the policy linter, which reports host bits as a warning rather than an error.
struct CidrParse {
  std::optional<Cidr> cidr;
  std::string error;           // empty when cidr is set
  bool host_bits_set = false;  // "10.0.0.1/8": accepted (masked) but worth a warning
};
// Accepts "a.b.c.d/n", "v6/n" and plain addresses (as /32 or /128).
CidrParse parse_cidr(std::string_view s);

}  // namespace hostscope
