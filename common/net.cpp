#include "common/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace hostscope {

std::string to_string(Family f) { return f == Family::V4 ? "ipv4" : "ipv6"; }

size_t IpAddr::format(char* out, size_t cap) const {
  if (cap < INET6_ADDRSTRLEN) return 0;
  if (family != Family::V6) {  // dotted quad by hand: inet_ntop goes through sprintf, and this is on the per-event path
    char* p = out;
    for (int i = 0; i < 4; i++) {
      unsigned v = bytes[i];
      if (i) *p++ = '.';
      if (v >= 100) *p++ = char('0' + v / 100);
      if (v >= 10) *p++ = char('0' + v / 10 % 10);
      *p++ = char('0' + v % 10);
    }
    *p = 0;
    return size_t(p - out);
  }
  if (!inet_ntop(AF_INET6, bytes.data(), out, socklen_t(cap))) return 0;
  return std::strlen(out);
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  size_t n = format(buf, sizeof(buf));
  return std::string(buf, n);
}

std::optional<IpAddr> IpAddr::parse(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};  // inet_pton wants a NUL-terminated string; no heap allocation
  std::memcpy(buf, s.data(), s.size());
  IpAddr a;
  if (s.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = Family::V4;
  } else {
    if (inet_pton(AF_INET6, buf, a.bytes.data()) != 1) return std::nullopt;
    a.family = Family::V6;
  }
  return a;
}

static int max_prefix(Family f) { return f == Family::V4 ? 32 : 128; }

static bool prefix_equal(const IpAddr& a, const IpAddr& b, int prefix) {
  if (a.family != b.family) return false;
  int full = prefix / 8;
  if (std::memcmp(a.bytes.data(), b.bytes.data(), full) != 0) return false;
  int rem = prefix % 8;
  if (rem == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rem));
  return (a.bytes[full] & mask) == (b.bytes[full] & mask);
}

std::string Cidr::str() const { return fmt::format("{}/{}", addr.str(), prefix); }

bool Cidr::contains(const IpAddr& a) const { return prefix_equal(addr, a, prefix); }

bool Cidr::contains(const Cidr& c) const {
  return c.addr.family == addr.family && c.prefix >= prefix && prefix_equal(addr, c.addr, prefix);
}

namespace {

// One parser behind both forms; each caller words its own errors.
struct Parsed {
  std::optional<IpAddr> ip;       // unset: the address part is not an address
  std::optional<Cidr> cidr;       // unset with ip set: the prefix is bad
  std::string_view address_part, prefix_part;
  bool host_bits_set = false;
};

Parsed parse_any(std::string_view s) {
  Parsed out;
  auto slash = s.find('/');
  out.address_part = s.substr(0, slash);
  out.ip = IpAddr::parse(out.address_part);
  if (!out.ip) return out;
  int prefix = max_prefix(out.ip->family);
  if (slash != std::string_view::npos) {
    auto p = out.prefix_part = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prefix < 0 ||
        prefix > max_prefix(out.ip->family))
      return out;
  }
  Cidr c;
  c.prefix = prefix;
  c.addr.family = out.ip->family;
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(prefix - i * 8, 0, 8);
    c.addr.bytes[i] = out.ip->bytes[i] & static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
  }
  out.host_bits_set = !(c.addr == *out.ip);
  out.cidr = c;
  return out;
}

}  // namespace

Result<Cidr> Cidr::parse(std::string_view s) {
  auto p = parse_any(s);
  if (!p.ip) return errorf("CIDR {}: not an IPv4 or IPv6 address", s);
  if (!p.cidr) return errorf("CIDR {}: prefix out of range (0..{})", s, max_prefix(p.ip->family));
  if (p.host_bits_set) return errorf("CIDR {}: host bits set (did you mean {}?)", s, p.cidr->str());
  return *p.cidr;
}

CidrParse parse_cidr(std::string_view s) {
  auto p = parse_any(s);
  CidrParse out;
  if (!p.ip) {
    out.error = fmt::format("'{}' is not an IPv4 or IPv6 address", p.address_part);
  } else if (!p.cidr) {
    out.error = fmt::format("prefix length '/{}' must be 0-{} for {}", p.prefix_part, max_prefix(p.ip->family),
                            to_string(p.ip->family));
  } else {
    out.cidr = p.cidr;
    out.host_bits_set = p.host_bits_set;
  }
  return out;
}

}  // namespace hostscope
