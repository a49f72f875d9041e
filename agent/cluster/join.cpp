#include "agent/cluster/join.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace hostscope::cluster {

namespace {

using topology::EdgeEnd;
using topology::NodeKind;

// An owner's identity for reuse: the pod, or the service when there is no pod (plain containers, host processes).
std::tuple<std::string, std::string, std::string> owner_id(const EndpointInfo& e) {
  return {e.node, e.ns, e.pod.empty() ? e.service : e.pod};
}

// Who an address names. Several current owners with a service on one address are host-network services on a node
// address (they share it): `shared` lists them and the join picks the one its counterpart observation names.
struct Owner {
  const EndpointInfo* info = nullptr;
  std::vector<const EndpointInfo*> shared;
  bool reused = false;
};

std::map<std::string, Owner> owners(const std::vector<EndpointInfo>& endpoints) {
  std::map<std::string, std::vector<const EndpointInfo*>> by_addr;
  for (const auto& e : endpoints) by_addr[e.address].push_back(&e);
  std::map<std::string, Owner> out;
  for (auto& [addr, list] : by_addr) {
    // Current first, then named (a node's own address has no service), then name order for a stable answer.
    std::sort(list.begin(), list.end(), [](const EndpointInfo* a, const EndpointInfo* b) {
      return std::make_tuple(!a->current, a->service.empty(), a->node, a->ns, a->pod, a->service) <
             std::make_tuple(!b->current, b->service.empty(), b->node, b->ns, b->pod, b->service);
    });
    // Only named owners count: a node lists its own addresses without a service. The address was reused when the
    // window had more named owners than hold it now (a pod deleted, its address given to another); several owners
    // holding it now share it.
    std::set<std::tuple<std::string, std::string, std::string>> window, now;
    Owner o{list.front(), {}, false};
    for (const auto* e : list) {
      if (e->service.empty()) continue;
      window.insert(owner_id(*e));
      if (e->current && now.insert(owner_id(*e)).second) o.shared.push_back(e);
    }
    o.reused = window.size() > std::max<size_t>(1, now.size());
    if (o.shared.size() < 2) o.shared.clear();
    out[addr] = std::move(o);
  }
  return out;
}

struct Resolved {
  EdgeEnd end;
  bool local = false;  // the end is on the observing node (a service end, not an address)
  bool reused = false;
  std::vector<EdgeEnd> candidates;  // a shared address: the services it may stand for (`end` is the address)
};

EdgeEnd owner_end(const EndpointInfo& o, const std::string& address) {
  return EdgeEnd{NodeKind::Service, o.service, o.ns, o.pod, address, o.workload};
}

Resolved resolve(const EndLabels& l, const std::map<std::string, Owner>& owned) {
  Resolved r;
  if (l.address.empty()) {
    if (l.service == "external") {  // the store's overflow node
      r.end = EdgeEnd{NodeKind::External, "external", "", "", "*"};
    } else {
      r.end = EdgeEnd{NodeKind::Service, l.service, l.ns, "", ""};
      r.local = true;
    }
    return r;
  }
  auto it = owned.find(l.address);
  if (it != owned.end() && !it->second.info->service.empty()) {
    r.reused = it->second.reused;
    if (it->second.shared.empty()) {
      r.end = owner_end(*it->second.info, l.address);
      return r;
    }
    for (const auto* o : it->second.shared) r.candidates.push_back(owner_end(*o, l.address));
  }
  // Nobody with a service owns it (or several share it): a network end keeps its name, anything else is the address.
  // (Only agents with `topology.network_ends: address` export a network end's address: it is that end's own.)
  if (l.service != l.address && !l.service.empty() && l.service != "external") {
    r.end = EdgeEnd{NodeKind::Network, l.service, "", "", l.address};
    r.end.exact_address = true;
  } else {
    r.end = EdgeEnd{NodeKind::External, "external", "", "", l.address};
  }
  return r;
}

uint64_t count(double v) { return v > 0 && std::isfinite(v) ? uint64_t(std::llround(v)) : 0; }

// Fields one end's observation knows and another's may not (the local side has no pod or address labels).
void fill(EdgeEnd& into, const EdgeEnd& from) {
  if (into.pod.empty()) into.pod = from.pod;
  if (into.address.empty()) into.address = from.address;
  if (into.workload.empty()) into.workload = from.workload;
}

struct Group {
  EdgeEnd client, server;
  uint16_t port = 0;
  bool reused = false;
  // (node, side) -> summed counts
  std::map<std::pair<std::string, std::string>, Counts> obs;
};

void add(Counts& into, const Counts& c) {
  into.opened += c.opened;
  into.closed += c.closed;
  into.resets += c.resets;
  into.active += c.active;
  into.sent += c.sent;
  into.received += c.received;
  into.retransmits += c.retransmits;
  for (const auto& [r, n] : c.failed) into.failed[r] += n;
  into.open_rate += c.open_rate;
  into.byte_rate += c.byte_rate;
}

double failed_total(const Counts& c) {
  double n = 0;
  for (const auto& [r, v] : c.failed) n += v;
  return n;
}

}  // namespace

ClusterTopology join(const ClusterSeries& in, uint64_t taken_ns) {
  auto owned = owners(in.endpoints);
  std::map<RateKey, Group> groups;
  auto add_series = [&](const EdgeSeries& s, const Resolved& c, const Resolved& v) {
    RateKey key{topology::node_id(c.end), topology::node_id(v.end), s.port};
    auto [it, fresh] = groups.try_emplace(key);
    Group& g = it->second;
    if (fresh) {
      g.client = c.end;
      g.server = v.end;
      g.port = s.port;
    }
    fill(g.client, c.end);
    fill(g.server, v.end);
    g.reused = g.reused || c.reused || v.reused;
    // Neither end local (e.g. two unowned addresses): counted like a client-side view, it is all there is.
    const char* side = c.local && v.local ? "both" : v.local && !c.local ? "server" : "client";
    add(g.obs[{s.node, side}], s.counts);
  };
  // Series with an end at a shared address go last: each takes the candidate whose edge the other node's
  // observation made (10.213.7.1 -> api on the server's node joins web -> api from the client's node when web is
  // one of the services sharing 10.213.7.1); with none, the end stays the address.
  std::vector<std::pair<const EdgeSeries*, std::pair<Resolved, Resolved>>> later;
  for (const auto& s : in.edges) {
    Resolved c = resolve(s.src, owned), v = resolve(s.dst, owned);
    if (c.candidates.empty() && v.candidates.empty()) add_series(s, c, v);
    else later.push_back({&s, {std::move(c), std::move(v)}});
  }
  for (auto& [s, ends] : later) {
    auto& [c, v] = ends;
    auto options = [](const Resolved& r) { return r.candidates.empty() ? std::vector<EdgeEnd>{r.end} : r.candidates; };
    bool done = false;
    for (const auto& cc : options(c))
      for (const auto& vc : options(v))
        if (!done && groups.count({topology::node_id(cc), topology::node_id(vc), s->port})) {
          Resolved c2 = c, v2 = v;
          c2.end = cc;
          v2.end = vc;
          add_series(*s, c2, v2);
          done = true;
        }
    if (!done) add_series(*s, c, v);
  }
  ClusterTopology out;
  out.snapshot.taken_ns = taken_ns;
  for (auto& [key, g] : groups) {
    bool client_side = false;
    for (const auto& [ns, c] : g.obs) client_side = client_side || ns.second != "server";
    topology::EdgeSnapshot e;
    e.client = g.client;
    e.server = g.server;
    e.port = g.port;
    e.address_reused = g.reused;
    e.first_seen_ns = e.last_seen_ns = taken_ns;
    Counts total;
    for (const auto& [ns, c] : g.obs) {
      const bool counted = (ns.second != "server") == client_side;
      if (counted) add(total, c);
      e.observed_by.push_back({ns.first, ns.second, counted, count(c.opened), count(failed_total(c)), count(c.resets),
                               count(c.active), count(c.sent), count(c.received)});
    }
    e.connections = count(total.opened);
    e.closed = count(total.closed);
    e.resets = count(total.resets);
    e.active = count(total.active);
    e.bytes_sent = count(total.sent);
    e.bytes_received = count(total.received);
    e.retransmits = count(total.retransmits);
    for (const auto& [r, n] : total.failed)
      if (count(n)) e.failed[r] = count(n);
    out.rates[key] = EdgeRates{total.open_rate, total.byte_rate};
    out.snapshot.edges.push_back(std::move(e));
  }
  topology::canonicalize(out.snapshot);
  return out;
}

}  // namespace hostscope::cluster
