#include "policy/generate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "common/api_client.h"
#include "common/json_nesting.h"
#include "common/topology_json.h"
#include "policy/analysis.h"
#include "policy/hash.h"
#include "policy/model.h"

namespace hostscope::policy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The topology's name for a service whose identity the resolver did not find: not selectable.
constexpr const char* kUnknownService = "unknown";

// ---- YAML text ---------------------------------------------------------------------------------
// Names come from processes and pods and may contain anything; every string we did not make
// ourselves is emitted double-quoted with YAML escapes, invalid UTF-8 as U+FFFD.

size_t utf8_sequence(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else if (size_t n = utf8_sequence(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\uFFFD";
      ++i;
    }
  }
  return out + "\"";
}

// Comments cannot be escaped; they show names the same way but without the surrounding quotes
// when the name is plain.
std::string shown(std::string_view s) {
  auto q = yaml_quoted(s);
  bool plain = !s.empty() && q.size() == s.size() + 2 && s.find(' ') == std::string_view::npos;
  return plain ? std::string(s) : q;
}

// ---- topology input ----------------------------------------------------------------------------

struct End {
  std::string kind, service, ns, address;
  bool local_service() const { return kind == "service" && !service.empty() && service != kUnknownService; }
  std::string display() const {
    if (kind == "service" && service == kUnknownService && !address.empty()) return fmt::format("unidentified process at {}", shown(address));
    if (kind == "service") return ns.empty() ? shown(service) : shown(ns) + "/" + shown(service);
    if (kind == "network") return "network:" + shown(service);
    return "external:" + shown(address.empty() ? "*" : address);
  }
};

struct Edge {
  End client, server;
  uint16_t port = 0;
  Protocol proto = Protocol::Tcp;
  uint64_t connections = 0, failed = 0;
  std::string dialed;
  std::vector<std::pair<std::string, uint16_t>> actual;  // DNAT backends (address, port)
};

struct Topology {
  std::string taken_at;
  std::vector<Edge> edges;
};


uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

End end_of(const topology::EdgeEnd& e) { return End{std::string(topology::to_string(e.kind)), e.service, e.ns, e.address}; }

// The topology's one JSON reader (common/topology_json.h) in its lenient form: generate needs only the fields it
// uses, and a hand-written or older document may leave the rest out.
Result<Topology> read_topology(const json& j) {
  auto snap = topology::from_json(j, {.lenient = true});
  if (!snap) return snap.error();
  Topology t;
  if (snap->taken_ns) t.taken_at = topology::format_time(snap->taken_ns);
  t.edges.reserve(snap->edges.size());
  for (const auto& e : snap->edges) {
    Edge edge;
    edge.client = end_of(e.client);
    edge.server = end_of(e.server);
    edge.port = e.port;
    edge.proto = e.protocol == topology::Protocol::Udp ? Protocol::Udp : Protocol::Tcp;
    edge.connections = e.connections;
    for (const auto& [_, n] : e.failed) edge.failed = sat_add(edge.failed, n);
    edge.dialed = e.dialed;
    for (const auto& a : e.actual)
      if (auto hp = topology::parse_addr_port(a)) edge.actual.emplace_back(hp->first.str(), hp->second);  // checked by the reader
    t.edges.push_back(std::move(edge));
  }
  return t;
}

// ---- naming ------------------------------------------------------------------------------------

using SubjectKey = std::pair<std::string, std::string>;  // namespace, service

bool is_name(const std::string& s) {
  return !s.empty() && s.size() <= 63 && s.front() != '-' && s.back() != '-' &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

std::string sanitize(const std::string& s) {
  std::string out;
  for (char ch : s) {
    char c = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) out += c;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

// Policy names (metadata.name) per subject: the sanitized "namespace-service", or with a hash of
// the exact key appended when sanitizing lost information that another subject needs to differ
// by, or the name is too long.
std::map<SubjectKey, std::string> policy_names(const std::set<SubjectKey>& keys) {
  std::map<std::string, std::vector<SubjectKey>> by_base;
  for (const auto& k : keys) {
    auto base = sanitize(k.first.empty() ? k.second : k.first + "-" + k.second);
    by_base[base.empty() ? "service" : base].push_back(k);
  }
  std::map<SubjectKey, std::string> out;
  for (const auto& [base, ks] : by_base)
    for (const auto& k : ks) {
      if (ks.size() == 1 && is_name(base)) {
        out[k] = base;
        continue;
      }
      std::string head = base.substr(0, 48);
      while (!head.empty() && head.back() == '-') head.pop_back();
      out[k] = head + "-" + Hasher().add(k.first).add(k.second).hex(12);
    }
  return out;
}

// ---- peers ---------------------------------------------------------------------------------------

// Note kinds (Note::kind): fixed phrases, one per reason, so notes group by them.
constexpr const char* kNoteLeftOut = "edge left out";
constexpr const char* kNoteDnat = "DNAT: the backends conntrack reported are allowed, not the dialled address";
constexpr const char* kNoteUnknownNetwork = "network not in the agent config: only the observed address is allowed";
constexpr const char* kNoteLocalService =
    "local service allowed by its observed address (its catalogued listening ports or cgroups do not match the connection)";
constexpr const char* kNoteUncovered = "service without a catalogued address covering the observed one: the observed address is allowed";
constexpr const char* kNoteAnyPeer = "no address observed: any peer is allowed on the port";
constexpr const char* kNoteGrouped = "observed addresses inside one catalogued network or service: the name is allowed";

struct PeerChoice {
  enum class Kind { Service, Network, Cidr, Any } kind = Kind::Any;
  std::string value;
  // How a PolicyTest names this end ("" = no endpoint the evaluator can use).
  std::string test_endpoint;
  bool local = false;  // `service:` standing for the local processes of a service (by cgroup or listening port)
  std::string note;  // why the peer is less precise than the observation, if it is
  const char* note_kind = "";
  bool operator<(const PeerChoice& o) const { return std::tie(kind, value) < std::tie(o.kind, o.value); }
};

bool covered(const std::vector<Cidr>& cidrs, const IpAddr& a) {
  return std::any_of(cidrs.begin(), cidrs.end(), [&](const Cidr& c) { return c.contains(a); });
}

std::vector<Cidr> network_cidrs(const Context& ctx, const std::string& name) {
  std::vector<Cidr> out;
  if (auto it = ctx.networks.find(name); it != ctx.networks.end())
    for (const auto& c : it->second)
      if (auto p = parse_cidr(c); p.cidr) out.push_back(*p.cidr);
  return out;
}

// Whether a `service:` peer naming `s` matches its local processes for this edge: as a client (ingress) by their
// cgroups, as a server (egress) on the ports they listen on (docs/policy.md, "Local services as peers").
bool names_local_processes(const ServiceInfo& s, bool as_server, uint16_t port) {
  if (s.cgroups.empty()) return false;
  if (!as_server) return std::any_of(s.cgroups.begin(), s.cgroups.end(), safe_cgroup_path);
  return std::find(s.ports.begin(), s.ports.end(), port) != s.ports.end();
}

// How the edge end `e`, seen at `address`, is named as a peer: as the server of the edge (egress of the client, on
// `port`) or as its client (ingress of the server).
PeerChoice choose_peer(const End& e, const std::string& address, const Context& ctx, bool as_server, uint16_t port) {
  PeerChoice p;
  auto ip = IpAddr::parse(address);
  if (e.local_service()) {
    if (const auto* s = ctx.find_service(e.service)) {
      auto cidrs = service_addresses(*s);
      // By name when the catalogue's addresses cover what was observed (a pod), or when the name stands for the
      // service's local processes: never by a loopback or node address, which every local process shares.
      bool by_address = !cidrs.empty() && (!ip || covered(cidrs, *ip));
      if (by_address || names_local_processes(*s, as_server, port)) {
        p.kind = PeerChoice::Kind::Service;
        p.value = e.service;
        p.local = !by_address;
        // A PolicyTest names the service: its local processes are endpoints the evaluator knows (by cgroup, no
        // address), and so are its catalogued addresses.
        p.test_endpoint = !by_address || s->cgroups.empty() ? e.service : ip ? ip->str() : cidrs.front().addr.str();
        return p;
      }
    }
  } else if (e.kind == "network" && ctx.networks.count(e.service)) {
    p.kind = PeerChoice::Kind::Network;
    p.value = e.service;
    if (ip && covered(network_cidrs(ctx, e.service), *ip)) p.test_endpoint = ip->str();
    return p;
  }
  if (ip) {
    p.kind = PeerChoice::Kind::Cidr;
    p.value = ip->str();
    p.test_endpoint = p.value;
    if (e.kind == "network") {
      p.note = fmt::format("network {} is not in the agent config; only the last observed address {} is allowed", shown(e.service), p.value);
      p.note_kind = kNoteUnknownNetwork;
    } else if (const auto* s = e.local_service() ? ctx.find_service(e.service) : nullptr; s && !s->cgroups.empty()) {
      // Egress to a local server is matched by its listening ports; without the observed one in the catalogue,
      // `service:` would not match this connection (docs/policy.md, "Generate").
      p.note = as_server ? fmt::format("local service {} is allowed as its observed address {}: port {} is not among its catalogued "
                                       "listening ports, so `service: {}` would not match it",
                                       e.display(), p.value, port, shown(e.service))
                         : fmt::format("local service {} is allowed as its observed address {}: none of its catalogued cgroup paths "
                                       "is usable, so `service: {}` would not match it",
                                       e.display(), p.value, shown(e.service));
      p.note_kind = kNoteLocalService;
    } else if (e.local_service()) {
      p.note = fmt::format("service {} has no catalogued address covering {}; the observed address is allowed", e.display(), p.value);
      p.note_kind = kNoteUncovered;
    }
    return p;
  }
  p.note = fmt::format("no address was observed for {}; any peer is allowed on this port", e.display());
  p.note_kind = kNoteAnyPeer;
  return p;
}

// ---- assembling policies -------------------------------------------------------------------------

struct PeerObs {
  PeerChoice choice;
  std::set<std::string> seen, notes;  // node displays that mapped to this peer, and why it is imprecise
  uint64_t connections = 0, failed = 0;
};

struct PortGroup {
  std::map<std::pair<PeerChoice::Kind, std::string>, PeerObs> peers;
  uint64_t connections = 0;
  bool any_peer() const {
    return std::any_of(peers.begin(), peers.end(), [](const auto& kv) { return kv.second.choice.kind == PeerChoice::Kind::Any; });
  }
};

struct Case {
  std::string from, to;
  uint16_t port = 0;
  Protocol proto = Protocol::Tcp;
  uint64_t connections = 0;
  std::string skipped;  // why the evaluator cannot decide it; written as a comment
  bool operator<(const Case& o) const { return std::tie(from, to, port, proto) < std::tie(o.from, o.to, o.port, o.proto); }
};

struct Subject {
  SubjectKey key;
  std::string name;
  std::map<std::pair<Protocol, uint16_t>, PortGroup> egress, ingress;
  std::map<Case, Case> cases;  // dedup by endpoints
  std::vector<std::string> comments;  // edges left out, with why
};


std::string counts(uint64_t connections, uint64_t failed) {
  std::string s = fmt::format("{} connection{}", connections, connections == 1 ? "" : "s");
  if (failed) s += fmt::format(", {} failed", failed);
  return s;
}

const char* kind_key(PeerChoice::Kind k) {
  switch (k) {
    case PeerChoice::Kind::Service: return "service";
    case PeerChoice::Kind::Network: return "network";
    case PeerChoice::Kind::Cidr: return "cidr";
    case PeerChoice::Kind::Any: return "any";
  }
  return "?";
}

void add_peer(PortGroup& g, const PeerChoice& c, const End& node, const Edge& e) {
  auto& o = g.peers[{c.kind, c.value}];
  if (o.seen.empty()) o.choice = c;
  o.seen.insert(node.display());
  if (!c.note.empty()) o.notes.insert(c.note);
  o.connections = sat_add(o.connections, e.connections);
  o.failed = sat_add(o.failed, e.failed);
  g.connections = sat_add(g.connections, e.connections);
}

void merge_into(PeerObs& into, const PeerObs& from) {
  if (into.seen.empty()) into.choice = from.choice;
  into.seen.insert(from.seen.begin(), from.seen.end());
  into.notes.insert(from.notes.begin(), from.notes.end());
  into.connections = sat_add(into.connections, from.connections);
  into.failed = sat_add(into.failed, from.failed);
}

// A name the catalogue defines and the addresses it stands for.
struct NamedCidrs {
  PeerChoice::Kind kind;
  std::string name;
  std::vector<Cidr> cidrs;
};

std::vector<NamedCidrs> catalogued_names(const Context& ctx) {
  std::vector<NamedCidrs> out;
  out.reserve(ctx.networks.size() + ctx.services.size());
  for (const auto& [name, _] : ctx.networks) out.push_back({PeerChoice::Kind::Network, name, network_cidrs(ctx, name)});
  for (const auto& s : ctx.services)
    if (auto a = service_addresses(s); !a.empty()) out.push_back({PeerChoice::Kind::Service, s.name, std::move(a)});
  return out;
}

// Peer grouping (least privilege): on one port, at least kGroupPeersMin observed addresses that one catalogued
// network or service covers become that name. Nothing is ever widened to a prefix (/24, /64) the catalogue does not
// name, and a single address stays an address. When several names cover the addresses, the one with the fewest
// addresses wins (ties: networks first, then by name), so the widening is the smallest the catalogue allows.
constexpr size_t kGroupPeersMin = 2;

uint64_t breadth(const std::vector<Cidr>& cidrs) {
  uint64_t n = 0;
  for (const auto& c : cidrs) {
    int host_bits = (c.addr.is_v4() ? 32 : 128) - c.prefix;
    n = sat_add(n, host_bits >= 63 ? UINT64_MAX / 2 : uint64_t{1} << host_bits);
  }
  return n;
}

void group_peers(std::map<std::pair<Protocol, uint16_t>, PortGroup>& groups, const std::vector<NamedCidrs>& names,
                 const std::string& policy, const char* dir, std::vector<Note>& notes) {
  std::vector<const NamedCidrs*> by_breadth;
  by_breadth.reserve(names.size());
  for (const auto& n : names) by_breadth.push_back(&n);
  std::stable_sort(by_breadth.begin(), by_breadth.end(), [](const NamedCidrs* a, const NamedCidrs* b) { return breadth(a->cidrs) < breadth(b->cidrs); });
  for (auto& [pp, g] : groups) {
    if (g.any_peer()) continue;
    std::map<const NamedCidrs*, std::vector<std::pair<PeerChoice::Kind, std::string>>> inside;
    for (const auto& [key, o] : g.peers) {
      if (key.first != PeerChoice::Kind::Cidr) continue;
      auto ip = IpAddr::parse(key.second);
      if (!ip) continue;
      for (const auto* n : by_breadth)
        if (covered(n->cidrs, *ip)) {
          inside[n].push_back(key);
          break;
        }
    }
    for (const auto& [n, keys] : inside) {
      if (keys.size() < kGroupPeersMin) continue;
      PeerObs named;
      named.choice.kind = n->kind;
      named.choice.value = n->name;
      for (const auto& k : keys) {
        auto& o = g.peers.at(k);
        o.choice = named.choice;
        merge_into(named, o);
        g.peers.erase(k);
      }
      auto text = fmt::format("{} observed addresses inside {} {} are allowed as `{}: {}`", keys.size(), kind_key(n->kind), shown(n->name),
                              kind_key(n->kind), shown(n->name));
      named.notes.insert(text);
      notes.push_back({kNoteGrouped, fmt::format("{} of {} port {}/{}: {}", dir, policy, pp.second, to_string(pp.first), text)});
      auto& slot = g.peers[{n->kind, n->name}];
      merge_into(slot, named);
    }
  }
}

// One rule per protocol and peer set, listing its ports: every (protocol, port) is in exactly one rule, so rules
// never shadow each other, and a node with thousands of ports gets one rule per distinct peer set.
struct RuleGroup {
  Protocol proto = Protocol::Tcp;
  std::vector<uint16_t> ports;  // ascending
  std::map<std::pair<PeerChoice::Kind, std::string>, PeerObs> peers;
  bool any = false;
  uint64_t connections = 0;
};

std::vector<RuleGroup> group_ports(const std::map<std::pair<Protocol, uint16_t>, PortGroup>& groups) {
  using PeerSet = std::vector<std::pair<PeerChoice::Kind, std::string>>;  // empty = any peer
  std::map<std::pair<Protocol, PeerSet>, RuleGroup> by_set;
  for (const auto& [pp, g] : groups) {  // ascending (protocol, port)
    PeerSet key;
    bool any = g.any_peer();
    if (!any)
      for (const auto& [k, _] : g.peers) key.push_back(k);
    auto& r = by_set[{pp.first, std::move(key)}];
    r.proto = pp.first;
    r.any = any;
    r.ports.push_back(pp.second);
    r.connections = sat_add(r.connections, g.connections);
    for (const auto& [k, o] : g.peers) merge_into(r.peers[k], o);
  }
  std::vector<RuleGroup> out;
  out.reserve(by_set.size());
  for (auto& [_, r] : by_set) out.push_back(std::move(r));
  std::sort(out.begin(), out.end(), [](const RuleGroup& a, const RuleGroup& b) { return std::tie(a.proto, a.ports.front()) < std::tie(b.proto, b.ports.front()); });
  return out;
}

// Runs of at least kMinRange consecutive ports are written as "first-last" ranges; shorter runs as numbers.
constexpr size_t kMinRange = 3;

std::string port_list(const std::vector<uint16_t>& ports) {
  std::vector<std::string> items;
  for (size_t i = 0; i < ports.size();) {
    size_t j = i;
    while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1) ++j;
    if (j - i + 1 >= kMinRange) {
      items.push_back(fmt::format("\"{}-{}\"", ports[i], ports[j]));
    } else {
      for (size_t k = i; k <= j; ++k) items.push_back(std::to_string(ports[k]));
    }
    i = j + 1;
  }
  return fmt::format("[{}]", fmt::join(items, ", "));
}

void render_rules(std::string& y, const char* dir, const std::map<std::pair<Protocol, uint16_t>, PortGroup>& groups) {
  if (groups.empty()) return;
  y += fmt::format("{}:\n", dir);
  for (const auto& r : group_ports(groups)) {
    for (const auto& [_, o] : r.peers) {
      std::vector<std::string> seen(o.seen.begin(), o.seen.end());
      y += fmt::format("  # {} {}: {}\n", std::string(dir) == "egress" ? "to" : "from", fmt::join(seen, ", "), counts(o.connections, o.failed));
      for (const auto& n : o.notes) y += fmt::format("  #   note: {}\n", n);
    }
    y += "  - action: allow\n";
    y += fmt::format("    protocol: {}\n", to_string(r.proto));
    y += fmt::format("    ports: {}\n", port_list(r.ports));
    if (!r.any) {
      y += "    peers:\n";
      for (const auto& [_, o] : r.peers) y += fmt::format("      - {}: {}\n", kind_key(o.choice.kind), yaml_quoted(o.choice.value));
    }
    y += fmt::format("    comment: {}\n", yaml_quoted(fmt::format("observed {}", counts(r.connections, 0))));
  }
}

std::string render_policy(const Subject& s, const Context& ctx, const std::string& taken_at) {
  const auto& [ns, svc] = s.key;
  std::string y;
  y += "# Generated by `hostscope policy generate`";
  y += taken_at.empty() ? ".\n" : fmt::format(" from the topology taken at {}.\n", shown(taken_at));
  y += "# Allows exactly the observed connections; everything else is denied. Review, then set `mode: enforce`.\n";
  for (const auto& c : s.comments) y += "# " + c + "\n";
  y += fmt::format("apiVersion: {}\nkind: NetworkPolicy\nmetadata:\n  name: {}\n", kApiVersion, s.name);
  y += fmt::format("subject:\n  service: {}\n", yaml_quoted(svc));
  if (!ns.empty()) y += fmt::format("  namespace: {}\n", yaml_quoted(ns));
  y += "mode: audit\ndefault:\n  egress: deny\n";
  // A service made only of local processes that listen on nothing has no ingress to restrict
  // (the cgroup match only sees what they send); saying `deny` would only earn a lint warning.
  const auto* info = ctx.find_service(svc);
  bool no_ingress_target = info && s.ingress.empty() && !info->cgroups.empty() && info->ports.empty() && service_addresses(*info).empty();
  if (no_ingress_target) y += "  # ingress: not restricted; no listening ports or addresses are known for this service\n";
  else y += "  ingress: deny\n";
  render_rules(y, "egress", s.egress);
  render_rules(y, "ingress", s.ingress);
  return y;
}

std::string render_test(const Subject& s) {
  std::string y;
  y += fmt::format("# Generated by `hostscope policy generate`: every connection observed for policy {} stays allowed.\n", s.name);
  y += "# `mode: audit` never blocks, so these cases matter once the policy is enforced.\n";
  y += fmt::format("apiVersion: {}\nkind: PolicyTest\nmetadata:\n  name: {}\ncases:\n", kApiVersion, s.name);
  for (const auto& [_, c] : s.cases) {
    std::string line = fmt::format("{{from: {}, to: {}, port: {}, protocol: {}, expect: allow}}", yaml_quoted(c.from), yaml_quoted(c.to), c.port,
                                   to_string(c.proto));
    if (!c.skipped.empty()) {
      y += fmt::format("  # not checked: {}\n  # - {}\n", c.skipped, line);
      continue;
    }
    y += fmt::format("  # observed {}\n  - {}\n", counts(c.connections, 0), line);
  }
  return y;
}

}  // namespace

std::string Generated::stream() const {
  std::string out;
  for (size_t i = 0; i < files.size(); ++i) {
    if (i) out += "---\n";
    out += fmt::format("# file: {}\n", files[i].name) + files[i].text;
  }
  return out;
}

Result<json> parse_topology_text(std::string_view text) {
  if (text.size() > kMaxTopologyBytes)
    return Error{fmt::format("topology JSON is {} bytes; the limit is {}", text.size(), kMaxTopologyBytes)};
  // nlohmann parses recursively: refuse deep nesting before it can exhaust the stack.
  if (!json_nesting_within(text, kMaxTopologyDepth))
    return Error{fmt::format("topology JSON is nested deeper than {} levels", kMaxTopologyDepth)};
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return Error{fmt::format("topology JSON parse failed: {}", e.what())};
  }
}

Result<Generated> generate(const json& topology, const Context& ctx) {
  auto t = read_topology(topology);
  if (!t) return t.error();
  Generated out;

  std::set<SubjectKey> keys;
  for (const auto& e : t->edges)
    for (const End* end : {&e.client, &e.server})
      if (end->local_service()) keys.insert({end->ns, end->service});
  auto names = policy_names(keys);
  std::map<SubjectKey, Subject> subjects;
  for (const auto& k : keys) subjects[k] = Subject{k, names[k], {}, {}, {}, {}};

  auto has_cgroups = [&](const End& e) {
    const auto* s = e.local_service() ? ctx.find_service(e.service) : nullptr;
    return s && !s->cgroups.empty();
  };
  // An address some generated policy dispatches on (pods): its chain is walked for every packet
  // from or to it, and it matches the other end by address.
  std::vector<Cidr> subject_addresses;
  for (const auto& k : keys)
    if (const auto* s = ctx.find_service(k.second)) {
      auto a = service_addresses(*s);
      subject_addresses.insert(subject_addresses.end(), a.begin(), a.end());
    }
  auto policed_address = [&](const std::string& endpoint, const End& node) {
    if (auto ip = IpAddr::parse(endpoint)) return covered(subject_addresses, *ip);
    if (!node.local_service()) return false;
    const auto* s = ctx.find_service(node.service);
    return s && !service_addresses(*s).empty();
  };

  // Whether the other side's policy names this end's local processes. When it does not, it matches them by an
  // address, which their cgroup endpoints lack in the evaluator: a case between them cannot be decided, whether the
  // other side is evaluated at its addresses (policed_address) or, named as a service, at its own cgroups.
  auto named_locally = [&](const End& e, bool as_server, uint16_t port) {
    return choose_peer(e, e.address, ctx, as_server, port).local;
  };
  auto not_catalogued = [](const End& e) {
    return fmt::format("service {} is not in the service catalogue, so the evaluator has nothing to test it with", shown(e.service));
  };

  for (const auto& e : t->edges) {
    std::string what = fmt::format("{} -> {} port {}/{}", e.client.display(), e.server.display(), e.port, to_string(e.proto));
    bool client_local = e.client.local_service(), server_local = e.server.local_service();
    if (!client_local && !server_local) continue;  // not about a local service (e.g. an unknown process)
    std::string skip;
    if (e.port == 0) skip = "no server port was observed";
    else if (e.connections == 0) skip = fmt::format("never established ({} failed); not allowed", e.failed);
    if (!skip.empty()) {
      out.edges_skipped++;
      for (const End* end : {&e.client, &e.server})
        if (end->local_service()) subjects[{end->ns, end->service}].comments.push_back(fmt::format("left out: {}: {}", what, skip));
      out.notes.push_back({kNoteLeftOut, fmt::format("{}: {}", what, skip)});
      continue;
    }
    out.edges_used++;

    if (client_local) {
      auto& s = subjects[{e.client.ns, e.client.service}];
      // Filter rules see the destination after DNAT: allow the backends conntrack reported.
      std::vector<std::pair<std::string, uint16_t>> dests;
      if (!e.actual.empty()) dests = e.actual;
      else dests.push_back({e.server.address, e.port});
      for (const auto& [addr, port] : dests) {
        auto c = choose_peer(e.actual.empty() ? e.server : End{"external", "external", "", addr}, addr, ctx, /*as_server=*/true, port);
        if (!e.actual.empty()) {
          c.note = fmt::format("dialled {} (DNAT); backends may change", shown(e.dialed.empty() ? e.server.address : e.dialed));
          c.note_kind = kNoteDnat;
        }
        add_peer(s.egress[{e.proto, port}], c, e.actual.empty() ? e.server : End{"external", "external", "", addr}, e);
        if (!c.note.empty()) out.notes.push_back({c.note_kind, fmt::format("{} (egress of {}): {}", what, s.name, c.note)});
        Case k{e.client.service, c.test_endpoint, port, e.proto, e.connections, ""};
        if (!ctx.find_service(e.client.service)) k.skipped = not_catalogued(e.client);
        else if (c.test_endpoint.empty()) k.skipped = "no single address stands for the peer";
        else if (has_cgroups(e.client) && !named_locally(e.client, false, port) && (c.local || policed_address(c.test_endpoint, e.server)))
          k.skipped = "the client's local processes have no source address in the reference evaluator, and the server's ingress policy matches sources by address";
        auto [it, fresh] = s.cases.emplace(k, k);
        if (!fresh) it->second.connections = sat_add(it->second.connections, e.connections);
      }
    }
    if (server_local) {
      auto& s = subjects[{e.server.ns, e.server.service}];
      auto c = choose_peer(e.client, e.client.address, ctx, /*as_server=*/false, e.port);
      add_peer(s.ingress[{e.proto, e.port}], c, e.client, e);
      if (!c.note.empty()) out.notes.push_back({c.note_kind, fmt::format("{} (ingress of {}): {}", what, s.name, c.note)});
      Case k{c.test_endpoint, e.server.service, e.port, e.proto, e.connections, ""};
      if (!ctx.find_service(e.server.service)) k.skipped = not_catalogued(e.server);
      else if (c.test_endpoint.empty()) k.skipped = "no single address stands for the peer";
      else if (has_cgroups(e.server) && !named_locally(e.server, true, e.port) && (c.local || policed_address(c.test_endpoint, e.client)))
        k.skipped = "the server's local processes have no address in the reference evaluator, and the client's egress policy matches destinations by address";
      auto [it, fresh] = s.cases.emplace(k, k);
      if (!fresh) it->second.connections = sat_add(it->second.connections, e.connections);
    }
  }

  auto names_in_catalogue = catalogued_names(ctx);
  for (auto& [k, s] : subjects) {
    group_peers(s.egress, names_in_catalogue, s.name, "egress", out.notes);
    group_peers(s.ingress, names_in_catalogue, s.name, "ingress", out.notes);
    out.files.push_back({s.name + ".yaml", render_policy(s, ctx, t->taken_at)});
    out.policies++;
    size_t checked = std::count_if(s.cases.begin(), s.cases.end(), [](const auto& kv) { return kv.second.skipped.empty(); });
    out.cases += checked;
    // A PolicyTest needs at least one case; with none, the comments alone would not load.
    if (checked) out.files.push_back({s.name + ".test.yaml", render_test(s)});
  }
  std::sort(out.files.begin(), out.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::sort(out.notes.begin(), out.notes.end());
  out.notes.erase(std::unique(out.notes.begin(), out.notes.end()), out.notes.end());
  return out;
}

std::vector<std::string> note_summary(const std::vector<Note>& notes, const std::string& notes_file, size_t examples, size_t max_lines) {
  std::vector<std::string> lines;
  size_t kinds = 0, cut_notes = 0;
  for (size_t i = 0; i < notes.size();) {
    size_t j = i;
    while (j < notes.size() && notes[j].kind == notes[i].kind) ++j;
    ++kinds;
    size_t n = j - i;
    // The last line may be a kind only when it is the last kind; otherwise it says what was cut.
    if (cut_notes == 0 && (lines.size() + 1 < max_lines || (lines.size() + 1 == max_lines && j == notes.size()))) {
      std::vector<std::string> ex;
      for (size_t k = i; k < j && ex.size() < examples; ++k) ex.push_back(notes[k].text);
      std::string more = n > ex.size() ? fmt::format("; ... {} more", n - ex.size()) : "";
      lines.push_back(fmt::format("note: {} ({}): {}{}", notes[i].kind, n, fmt::join(ex, "; "), more));
    } else {
      cut_notes += n;
    }
    i = j;
  }
  if (cut_notes) {
    size_t cut_kinds = kinds - lines.size();
    lines.push_back(fmt::format("... {} more ({} notes of {} more kinds; see {})", cut_kinds, cut_notes, cut_kinds,
                                notes_file.empty() ? "--notes-file" : notes_file));
  }
  return lines;
}

std::string notes_text(const std::vector<Note>& notes) {
  std::string out;
  for (const auto& n : notes) out += n.str() + "\n";
  return out;
}

Result<json> fetch_topology(const std::string& socket_path, int timeout_ms) { return agent_request(socket_path, "topology", timeout_ms); }

Result<json> agent_request(const std::string& socket_path, const std::string& method, int timeout_ms) {
  auto reply = api::request(socket_path, method, json::object(), timeout_ms, {kMaxTopologyBytes + 1024, kMaxTopologyDepth});
  if (!reply) return reply.error();
  if (!reply->ok)
    return Error{fmt::format("agent {} request failed: {}", method, reply->error.empty() ? "no reason given" : reply->error)};
  if (reply->result.is_null()) return Error{"agent reply: missing 'result'"};
  return std::move(reply->result);
}

Status write_generated(const Generated& g, const std::string& dir, bool force) { return write_files(g.files, dir, force); }

Status write_files(const std::vector<GeneratedFile>& files, const std::string& dir, bool force) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error{fmt::format("output directory {} create failed: {}", dir, ec.message())};
  if (!force)
    for (const auto& f : files)
      if (fs::exists(fs::path(dir) / f.name, ec))
        return Error{fmt::format("{} already exists; pass --force to overwrite it", (fs::path(dir) / f.name).string())};
  for (const auto& f : files) {
    auto path = fs::path(dir) / f.name;
    auto tmp = fs::path(dir) / ("." + f.name + ".tmp");
    {
      std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
      o << f.text;
      o.close();
      if (!o) return Error{fmt::format("{} write failed", tmp.string())};
    }
    fs::rename(tmp, path, ec);
    if (ec) {
      fs::remove(tmp, ec);
      return Error{fmt::format("{} rename into place failed: {}", path.string(), ec.message())};
    }
  }
  return {};
}

}  // namespace hostscope::policy
