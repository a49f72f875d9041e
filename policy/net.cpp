#include "policy/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include <fmt/format.h>

namespace hostscope::policy {

SockAddr sock_addr(std::string_view addr, uint16_t port) {
  SockAddr out;
  auto a = IpAddr::parse(addr);
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

bool is_loopback(const IpAddr& a) {
  static const auto v4 = parse_cidr("127.0.0.0/8").cidr, v6 = parse_cidr("::1/128").cidr;
  return v4->contains(a) || v6->contains(a);
}

}  // namespace hostscope::policy
