#include "policy/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

namespace hostscope::policy {

std::optional<IpAddr> parse_ip(std::string_view s) {
  if (s.empty() || s.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN] = {};
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

std::string to_string(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(a.family == Family::V4 ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
  return buf;
}

std::string to_string(Family f) { return f == Family::V4 ? "ipv4" : "ipv6"; }

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

CidrParse parse_cidr(std::string_view s) {
  CidrParse out;
  auto slash = s.find('/');
  auto ip = parse_ip(s.substr(0, slash));
  if (!ip) {
    out.error = fmt::format("'{}' is not an IPv4 or IPv6 address", s.substr(0, slash));
    return out;
  }
  int prefix = max_prefix(ip->family);
  if (slash != std::string_view::npos) {
    auto p = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || prefix < 0 ||
        prefix > max_prefix(ip->family)) {
      out.error = fmt::format("prefix length '/{}' must be 0-{} for {}", p, max_prefix(ip->family),
                              to_string(ip->family));
      return out;
    }
  }
  Cidr c;
  c.prefix = prefix;
  c.addr.family = ip->family;
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(prefix - i * 8, 0, 8);
    c.addr.bytes[i] = ip->bytes[i] & static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
  }
  out.host_bits_set = !(c.addr == *ip);
  out.cidr = c;
  return out;
}

std::string Cidr::to_string() const { return fmt::format("{}/{}", policy::to_string(addr), prefix); }

bool Cidr::contains(const IpAddr& a) const { return prefix_equal(addr, a, prefix); }

bool Cidr::contains(const Cidr& c) const {
  return c.addr.family == addr.family && c.prefix >= prefix && prefix_equal(addr, c.addr, prefix);
}

SockAddr sock_addr(std::string_view addr, uint16_t port) {
  SockAddr out;
  auto a = parse_ip(addr);
  if (!a) return out;
  if (a->family == Family::V4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    std::memcpy(&in->sin_addr, a->bytes.data(), 4);
    out.len = sizeof *in;
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    std::memcpy(&in6->sin6_addr, a->bytes.data(), 16);
    out.len = sizeof *in6;
  }
  return out;
}

const char* to_string(Protocol p) {
  switch (p) {
    case Protocol::Tcp: return "tcp";
    case Protocol::Udp: return "udp";
    case Protocol::Icmpv6: return "ipv6-icmp";
    case Protocol::Any: break;
  }
  return "any";
}

std::string PortRange::to_string(char sep) const {
  if (first == last) return std::to_string(first);
  return fmt::format("{}{}{}", first, sep, last);
}

}  // namespace hostscope::policy
