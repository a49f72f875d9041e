#pragma once
// Semantic analysis shared by lint and the compiler: resolves subjects and peers against the
// service catalogue and named networks, and reports cross-document problems (duplicate names,
// conflicts, shadowed rules, unknown services).
#include <map>
#include <string>
#include <vector>

#include "policy/context.h"
#include "policy/diagnostic.h"
#include "policy/loader.h"
#include "policy/model.h"

namespace hostscope::policy {

// The atoms the compiler dispatches on. A packet can match several (e.g. nested cgroups); each
// selecting subject chain must then let it through.
struct Target {
  enum class Kind { Cgroup, Address, LocalPort } kind = Kind::Cgroup;
  std::string cgroup;  // Kind::Cgroup
  Cidr cidr;           // Kind::Address
  uint16_t port = 0;   // Kind::LocalPort: a port local processes of the subject listen on
  std::string str() const;  // "cgroup /a", "address 10.0.0.1/32", "local port 80"
  bool operator==(const Target& o) const { return str() == o.str(); }
  bool operator<(const Target& o) const { return str() < o.str(); }
};

struct ResolvedRule {
  const Rule* rule = nullptr;
  bool any_peer = true;
  std::vector<Cidr> peers;  // deduplicated; empty with any_peer=false means the rule matches nothing
  // Per entry of rule->peers: the families its addresses are in (bit 1 IPv4, bit 2 IPv6; 0 = none known).
  std::vector<unsigned> peer_families;
  // Local processes among the peers (a `service:` peer whose catalogue entry has cgroups), in both families. Ingress:
  // the clients' cgroups (matched on OUTPUT, where a local client's packet to a local server is judged). Egress: the
  // ports those processes listen on, at an address of this node (no hook sees the receiving socket).
  std::vector<std::string> local_cgroups;  // sorted, unique
  std::vector<uint16_t> local_ports;       // sorted, unique
  bool has_local() const { return !local_cgroups.empty() || !local_ports.empty(); }
  // The rule can match no packet: peers were given and none resolved to anything.
  bool matches_nothing() const { return !any_peer && peers.empty() && !has_local(); }
};

struct ResolvedPolicy {
  const NetworkPolicy* policy = nullptr;
  std::vector<Target> egress_targets, ingress_targets;
  std::vector<ResolvedRule> egress, ingress;
  const std::vector<Target>& targets(Direction d) const { return d == Direction::Egress ? egress_targets : ingress_targets; }
  const std::vector<ResolvedRule>& rules(Direction d) const { return d == Direction::Egress ? egress : ingress; }
};

struct Analysis {
  std::vector<ResolvedPolicy> policies;  // merge order
  Diagnostics diagnostics;
};

Analysis analyze(const PolicySet& set, const Context& ctx);

// Loader diagnostics + analysis diagnostics, sorted. Exit code for `policy lint`: 0 clean or
// warnings only, 1 when any error.
struct LintReport {
  Diagnostics diagnostics;
  bool ok() const { return !has_errors(diagnostics); }
  int exit_code() const { return ok() ? 0 : 1; }
};
LintReport lint(const LoadResult& loaded, const Context& ctx);

// Resolves an endpoint name used by PolicyTest / generate: a known service or an IP address.
std::vector<Cidr> service_addresses(const ServiceInfo& s);

}  // namespace hostscope::policy
