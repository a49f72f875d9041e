#pragma once
// Semantic diff of two policy sets (`hostscope policy diff A B`): which classes of new connections
// (subject, peer, protocol, port range, direction) get a different verdict, computed on the rules' own atoms rather
// than by replaying traffic. For each subject of either set, the peers and ports its rules (and hostscope's failsafe
// and neighbour-discovery rules) name are cut into elementary pieces: every CIDR's first address and the address
// after its last, every port range's first port and the port after its last, plus one address outside every rule
// (192.0.2.1, 2001:db8::1) and port 1. Within one piece every rule of the subject matches all or nothing, so one
// representative per piece, evaluated by the reference evaluator against both generations, stands for the piece.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "policy/analysis.h"
#include "policy/evaluator.h"
#include "policy/impact.h"
#include "policy/ir.h"

namespace hostscope::policy {

// One compiled side of the diff. The set and its analysis must outlive the diff (rules are referred to).
struct DiffSide {
  const PolicySet* set = nullptr;
  const Analysis* analysis = nullptr;
  const Ir* ir = nullptr;
};

struct VerdictChange {
  std::string subject;  // policy name whose subject the class starts or ends at
  Direction direction = Direction::Egress;
  std::string endpoint;  // the subject end: "cgroup /a", "address 10.0.0.5", "local port 80"
  std::string peer;      // "10.0.0.0/8", "service db (10.0.0.5/32)", or "any other address"
  std::string peer_address;  // the representative evaluated
  // A class of local processes as the peer (at a loopback address, as the kernel sees a local peer): for egress any
  // local process, for ingress the local processes of one cgroup the rules name (peer_cgroup), or of none of them.
  bool peer_local = false;
  std::string peer_cgroup;
  Protocol protocol = Protocol::Tcp;
  PortRange ports;
  Verdict before = Verdict::Allow, after = Verdict::Allow;
  std::string decided_before, decided_after;  // "policy web: egress rule 2 (deny) at web.yaml:12:5", or ""
  // Every peer CIDR the subject's rules name in this direction: an address is in this class's piece when exactly the
  // same of them contain it as contain peer_address (shared by the changes of one subject and direction).
  std::shared_ptr<const std::vector<Cidr>> atoms;
  bool newly_denied() const { return before != Verdict::Deny && after == Verdict::Deny; }
  // Whether a connection to (egress) or from (ingress) `peer` on `port` falls in this class's piece and ports. A local
  // class covers loopback peers (their cgroup is not known here: the caller matches verdicts and deciding rules).
  bool covers(const IpAddr& peer, Protocol proto, uint16_t port) const;
};

struct DiffResult {
  std::vector<VerdictChange> changes;  // sorted: newly denied first, then by subject, direction, peer, port
  size_t classes = 0;                  // classes evaluated (each against both sides)
  bool truncated = false;              // stopped at the bound on classes: the diff is incomplete
  bool newly_denied() const;
};

DiffResult semantic_diff(const DiffSide& before, const DiffSide& after, const Context& ctx);

// `policy diff --impact`: the observed edges behind each class. `report` is observed_impact() with the same two
// sets (A as before, B as after); an edge whose verdict changes is put under every class it falls in: same verdicts
// and deciding rules on both sides, same protocol, its port in the class's ports, its peer address (the server's, or
// a DNAT backend's, for egress; the client's for ingress) in the class's piece. An edge that changes verdict but
// falls in no listed class (possible only when the diff was truncated) is listed apart.
struct DiffImpact {
  const ImpactReport* report = nullptr;
  std::vector<std::vector<size_t>> per_change;  // per DiffResult::changes entry: indices into report->changes
  std::vector<size_t> outside;                  // changed edges in no class
};
DiffImpact attach_impact(const DiffResult& d, const ImpactReport& report);

// With `impact`, each class lists up to `kObservedShown` of its observed edges (most connections first).
inline constexpr size_t kObservedShown = 5;
std::string diff_text(const DiffResult& d, const DiffImpact* impact = nullptr);
nlohmann::json diff_json(const DiffResult& d, const DiffImpact* impact = nullptr);

// "policy web: egress rule 2 (deny) at web.yaml:12:5" for the rule that decided, found in `set` by owner and
// description; hostscope's own rules ("hs.failsafe", ...) are named as such.
std::string describe_rule(const IrRule* r, const PolicySet& set);

}  // namespace hostscope::policy
