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

struct PeerChoice {
  enum class Kind { Service, Network, Cidr, Any } kind = Kind::Any;
  std::string value;
  // How a PolicyTest names this end ("" = no endpoint the evaluator can use).
  std::string test_endpoint;
  std::string note;  // why the peer is less precise than the observation, if it is
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

PeerChoice choose_peer(const End& e, const std::string& address, const Context& ctx) {
  PeerChoice p;
  auto ip = IpAddr::parse(address);
  if (e.local_service()) {
    if (const auto* s = ctx.find_service(e.service)) {
      auto cidrs = service_addresses(*s);
      // By name only when the catalogue's addresses cover what was observed: a host process of
      // the service connects from the node's address, which `service:` would not allow.
      if (!cidrs.empty() && (!ip || covered(cidrs, *ip))) {
        p.kind = PeerChoice::Kind::Service;
        p.value = e.service;
        // A service with local processes stands for address-less endpoints in the evaluator too;
        // test against the observed address instead.
        p.test_endpoint = s->cgroups.empty() ? e.service : ip ? ip->str() : cidrs.front().addr.str();
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
    if (e.kind == "network")
      p.note = fmt::format("network {} is not in the agent config; only the last observed address {} is allowed", shown(e.service), p.value);
    else if (e.local_service())
      p.note = fmt::format("service {} has no catalogued address covering {}; the observed address is allowed", e.display(), p.value);
    return p;
  }
  p.note = fmt::format("no address was observed for {}; any peer is allowed on this port", e.display());
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

void render_rules(std::string& y, const char* dir, const std::map<std::pair<Protocol, uint16_t>, PortGroup>& groups) {
  if (groups.empty()) return;
  y += fmt::format("{}:\n", dir);
  for (const auto& [pp, g] : groups) {
    bool any = g.any_peer();
    for (const auto& [_, o] : g.peers) {
      std::vector<std::string> seen(o.seen.begin(), o.seen.end());
      y += fmt::format("  # {} {}: {}\n", std::string(dir) == "egress" ? "to" : "from", fmt::join(seen, ", "), counts(o.connections, o.failed));
      for (const auto& n : o.notes) y += fmt::format("  #   note: {}\n", n);
    }
    y += "  - action: allow\n";
    y += fmt::format("    protocol: {}\n", to_string(pp.first));
    y += fmt::format("    ports: [{}]\n", pp.second);
    if (!any) {
      y += "    peers:\n";
      for (const auto& [_, o] : g.peers) y += fmt::format("      - {}: {}\n", kind_key(o.choice.kind), yaml_quoted(o.choice.value));
    }
    y += fmt::format("    comment: {}\n", yaml_quoted(fmt::format("observed {}", counts(g.connections, 0))));
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
      out.notes.push_back(fmt::format("{}: {}", what, skip));
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
        auto c = choose_peer(e.actual.empty() ? e.server : End{"external", "external", "", addr}, addr, ctx);
        if (!e.actual.empty()) c.note = fmt::format("dialled {} (DNAT); backends may change", shown(e.dialed.empty() ? e.server.address : e.dialed));
        add_peer(s.egress[{e.proto, port}], c, e.actual.empty() ? e.server : End{"external", "external", "", addr}, e);
        if (!c.note.empty()) out.notes.push_back(fmt::format("{} (egress of {}): {}", what, s.name, c.note));
        Case k{e.client.service, c.test_endpoint, port, e.proto, e.connections, ""};
        if (!ctx.find_service(e.client.service)) k.skipped = not_catalogued(e.client);
        else if (c.test_endpoint.empty()) k.skipped = "no single address stands for the peer";
        else if (has_cgroups(e.client) && policed_address(c.test_endpoint, e.server))
          k.skipped = "the client's local processes have no source address in the reference evaluator, and the server's ingress policy matches sources by address";
        auto [it, fresh] = s.cases.emplace(k, k);
        if (!fresh) it->second.connections = sat_add(it->second.connections, e.connections);
      }
    }
    if (server_local) {
      auto& s = subjects[{e.server.ns, e.server.service}];
      auto c = choose_peer(e.client, e.client.address, ctx);
      add_peer(s.ingress[{e.proto, e.port}], c, e.client, e);
      if (!c.note.empty()) out.notes.push_back(fmt::format("{} (ingress of {}): {}", what, s.name, c.note));
      Case k{c.test_endpoint, e.server.service, e.port, e.proto, e.connections, ""};
      if (!ctx.find_service(e.server.service)) k.skipped = not_catalogued(e.server);
      else if (c.test_endpoint.empty()) k.skipped = "no single address stands for the peer";
      else if (has_cgroups(e.server) && policed_address(c.test_endpoint, e.client))
        k.skipped = "the server's local processes have no address in the reference evaluator, and the client's egress policy matches destinations by address";
      auto [it, fresh] = s.cases.emplace(k, k);
      if (!fresh) it->second.connections = sat_add(it->second.connections, e.connections);
    }
  }

  for (auto& [k, s] : subjects) {
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
