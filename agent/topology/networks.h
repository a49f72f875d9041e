#pragma once
// Named networks from the agent config (`networks: {cluster-pods: [10.244.0.0/16, fd00::/8]}`): a remote
// address is named after the network with the longest matching prefix.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "common/result.h"

namespace hostscope::topology {

// How a remote end inside a named network is keyed (agent config `topology.network_ends`, docs/topology.md "Naming
// the remote end"): one node per network, or one per (network, address) so the address the edge used is exact.
enum class NetworkEnds : uint8_t { Network, Address };
inline constexpr const char* kNetworkEndsNames = "network, address";
std::optional<NetworkEnds> parse_network_ends(std::string_view s);

class NetworkMap {
 public:
  static constexpr size_t kMaxCidrs = 4096;  // config is untrusted input: keep lookups bounded

  // Errors name the network and the CIDR: "network cluster-pods: CIDR 10.244.0.0/33: prefix out of range".
  static Result<NetworkMap> build(const std::map<std::string, std::vector<std::string>>& networks);

  // Name of the most specific network containing `a`, if any.
  std::optional<std::string_view> lookup(const IpAddr& a) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Cidr cidr;
    std::string name;
  };
  std::vector<Entry> entries_;  // longest prefix first, so the first match wins
};

}  // namespace hostscope::topology
