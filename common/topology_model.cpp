#include "common/topology_model.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

namespace hostscope::topology {

std::string_view to_string(NodeKind k) {
  switch (k) {
    case NodeKind::Network: return "network";
    case NodeKind::External: return "external";
    default: return "service";
  }
}

std::optional<NodeKind> node_kind_from_string(std::string_view s) {
  for (auto k : {NodeKind::Service, NodeKind::Network, NodeKind::External})
    if (to_string(k) == s) return k;
  return std::nullopt;
}

std::string_view to_string(Protocol p) { return p == Protocol::Udp ? "udp" : "tcp"; }

std::optional<Protocol> protocol_from_string(std::string_view s) {
  if (s == "tcp") return Protocol::Tcp;
  if (s == "udp") return Protocol::Udp;
  return std::nullopt;
}

std::string_view outcome_name(events::Outcome o) {
  auto n = events::to_string(o);
  return n.empty() ? std::string_view("none") : n;
}

bool is_connect_failure(events::Outcome o) {
  return o == events::Outcome::Refused || o == events::Outcome::TimedOut || o == events::Outcome::Failed;
}

bool is_reset(events::Outcome o) { return o == events::Outcome::ResetSent || o == events::Outcome::ResetReceived; }

std::string format_addr(const IpAddr& a) { return a.family == Family::V4 || a.family == Family::V6 ? a.str() : std::string(); }

std::string format_addr_port(const IpAddr& a, uint16_t port) {
  if (a.family == Family::V6) return "[" + format_addr(a) + "]:" + std::to_string(port);
  return format_addr(a) + ":" + std::to_string(port);
}

std::optional<std::pair<IpAddr, uint16_t>> parse_addr_port(std::string_view s) {
  std::string_view host, port;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos || s.find(':') != colon) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  auto ip = IpAddr::parse(host);
  if (!ip || port.empty() || port.size() > 5) return std::nullopt;
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    p = p * 10 + uint32_t(c - '0');
  }
  if (p == 0 || p > 65535) return std::nullopt;
  return std::make_pair(*ip, uint16_t(p));
}

bool is_loopback(const IpAddr& a) {
  if (a.family == Family::V4) return a.bytes[0] == 127;
  if (a.family == Family::V6) {
    static constexpr uint8_t lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(a.bytes.data(), lo, 16) == 0;
  }
  return false;
}

std::string NodeKey::id() const {
  switch (kind) {
    case NodeKind::Network: return address.empty() ? "network:" + name : "network:" + name + "@" + address;
    case NodeKind::External: return "external:" + address;
    default: return "service:" + ns + "/" + name;
  }
}

std::string node_id(const EdgeEnd& e) {
  NodeKey k{e.kind, e.service, e.kind == NodeKind::Service ? e.ns : "",
            e.kind == NodeKind::External || e.exact_address ? e.address : ""};
  return k.id();
}

static inline void hash_mix(size_t& h, size_t v) { h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2); }

size_t NodeKeyHash::operator()(const NodeKey& k) const noexcept {
  size_t h = size_t(k.kind);
  hash_mix(h, std::hash<std::string>{}(k.name));
  hash_mix(h, std::hash<std::string>{}(k.ns));
  hash_mix(h, std::hash<std::string>{}(k.address));
  return h;
}

size_t EdgeKeyHash::operator()(const EdgeKey& k) const noexcept {
  NodeKeyHash nh;
  size_t h = nh(k.client);
  hash_mix(h, nh(k.server));
  hash_mix(h, (size_t(k.port) << 8) | size_t(k.protocol));
  return h;
}

uint64_t EdgeSnapshot::failed_total() const {
  uint64_t n = 0;
  for (auto& [_, c] : failed) n += c;
  return n;
}

bool matches(const EdgeSnapshot& e, const SnapshotFilter& f) {
  if (f.since_ns && e.last_seen_ns < f.since_ns) return false;
  if (!f.service.empty() && e.client.service != f.service && e.server.service != f.service) return false;
  if (!f.ns.empty() && e.client.ns != f.ns && e.server.ns != f.ns) return false;
  if (f.port && e.port != *f.port) return false;
  return true;
}

void canonicalize(TopologySnapshot& s) {
  // The node ids are built once per edge, not once per comparison: a sort of 10k edges compares ~140k times.
  struct Key {
    std::string client, server;
    uint16_t port;
    Protocol protocol;
    size_t index;
  };
  std::vector<Key> keys;
  keys.reserve(s.edges.size());
  for (size_t i = 0; i < s.edges.size(); ++i) {
    const auto& e = s.edges[i];
    keys.push_back({node_id(e.client), node_id(e.server), e.port, e.protocol, i});
  }
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    return std::tie(a.client, a.server, a.port, a.protocol) < std::tie(b.client, b.server, b.port, b.protocol);
  });
  // Put the edges in that order in place (cycles of swaps; nothing moves when they already are, as from the store).
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].index == i) continue;
    size_t cur = i;
    for (size_t next = keys[cur].index; next != i; next = keys[cur].index) {
      std::swap(s.edges[cur], s.edges[next]);
      keys[cur].index = cur;
      cur = next;
    }
    keys[cur].index = cur;
  }
  std::map<std::string, NodeSnapshot> nodes;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& k = keys[i];
    const auto& e = s.edges[i];
    for (auto [end, id] : {std::pair{&e.client, &k.client}, std::pair{&e.server, &k.server}}) {
      auto [it, fresh] = nodes.try_emplace(*id);
      if (fresh) {
        it->second.id = std::move(*id);
        it->second.kind = end->kind;
        it->second.service = end->service;
        it->second.ns = end->kind == NodeKind::Service ? end->ns : "";
        it->second.address = end->kind == NodeKind::External || end->exact_address ? end->address : "";
      }
    }
  }
  s.nodes.clear();
  s.nodes.reserve(nodes.size());
  for (auto& [_, n] : nodes) s.nodes.push_back(std::move(n));
}

TopologySnapshot filter(const TopologySnapshot& s, const SnapshotFilter& f) {
  TopologySnapshot out;
  out.taken_ns = s.taken_ns;
  out.counters = s.counters;
  for (const auto& e : s.edges)
    if (matches(e, f)) out.edges.push_back(e);
  canonicalize(out);
  return out;
}

TopologySnapshot filter(TopologySnapshot&& s, const SnapshotFilter& f) {
  if (f.empty()) return std::move(s);  // already canonical: nothing to drop, nothing to reorder
  std::erase_if(s.edges, [&f](const EdgeSnapshot& e) { return !matches(e, f); });
  canonicalize(s);
  return std::move(s);
}

}  // namespace hostscope::topology
