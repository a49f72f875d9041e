#include "agent/topology/networks.h"

#include <algorithm>


namespace hostscope::topology {

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

std::optional<NetworkEnds> parse_network_ends(std::string_view s) {
  if (s == "network") return NetworkEnds::Network;
  if (s == "address") return NetworkEnds::Address;
  return std::nullopt;
}

std::optional<std::string_view> NetworkMap::lookup(const IpAddr& a) const {
  for (const auto& e : entries_)
    if (e.cidr.contains(a)) return std::string_view(e.name);
  return std::nullopt;
}

}  // namespace hostscope::topology
