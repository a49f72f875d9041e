#include "agent/topology/networks.h"

#include <algorithm>
#include <charconv>

#include "agent/topology/model.h"

namespace hostscope::topology {

static bool prefix_match(const events::IpAddr& a, const events::IpAddr& net, int prefix) {
  int full = prefix / 8, rest = prefix % 8;
  for (int i = 0; i < full; ++i)
    if (a.bytes[i] != net.bytes[i]) return false;
  if (rest == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (net.bytes[full] & mask);
}

bool Cidr::contains(const events::IpAddr& a) const { return a.family == addr.family && prefix_match(a, addr, prefix); }

std::string Cidr::str() const { return format_addr(addr) + "/" + std::to_string(prefix); }

Result<Cidr> Cidr::parse(std::string_view s) {
  auto slash = s.find('/');
  auto ip = parse_addr(s.substr(0, slash));
  if (!ip) return errorf("CIDR {}: not an IPv4 or IPv6 address", s);
  Cidr c;
  c.addr = *ip;
  int max = ip->family == 4 ? 32 : 128;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    auto p = s.substr(slash + 1);
    int v = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v < 0 || v > max)
      return errorf("CIDR {}: prefix out of range (0..{})", s, max);
    c.prefix = v;
  }
  events::IpAddr masked;
  masked.family = c.addr.family;
  for (int i = 0; i < 16; ++i) {
    int bits = std::clamp(c.prefix - i * 8, 0, 8);
    masked.bytes[i] = uint8_t(c.addr.bytes[i] & uint8_t(0xff << (8 - bits)));
  }
  if (!(masked == c.addr)) return errorf("CIDR {}: host bits set (did you mean {}/{}?)", s, format_addr(masked), c.prefix);
  return c;
}

Result<NetworkMap> NetworkMap::build(const std::map<std::string, std::vector<std::string>>& networks) {
  NetworkMap m;
  for (const auto& [name, cidrs] : networks) {
    if (name.empty()) return errorf("networks: empty network name");
    for (const auto& text : cidrs) {
      if (m.entries_.size() >= kMaxCidrs) return errorf("networks: more than {} CIDRs", kMaxCidrs);
      auto c = Cidr::parse(text);
      if (!c) return errorf("network {}: {}", name, c.error().message);
      m.entries_.push_back({*c, name});
    }
  }
  // Longest prefix first; ties keep config (name) order so the result is deterministic.
  std::stable_sort(m.entries_.begin(), m.entries_.end(),
                   [](const Entry& a, const Entry& b) { return a.cidr.prefix > b.cidr.prefix; });
  return m;
}

std::optional<std::string_view> NetworkMap::lookup(const events::IpAddr& a) const {
  for (const auto& e : entries_)
    if (e.cidr.contains(a)) return std::string_view(e.name);
  return std::nullopt;
}

}  // namespace hostscope::topology
