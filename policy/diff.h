#pragma once
// Semantic diff of two policy sets (`hostscope policy diff A B`): which classes of new connections
// (subject, peer, protocol, port range, direction) get a different verdict, computed on the rules' own atoms rather
// than by replaying traffic. For each subject of either set, the peers and ports its rules (and hostscope's failsafe
// and neighbour-discovery rules) name are cut into elementary pieces: every CIDR's first address and the address
// after its last, every port range's first port and the port after its last, plus one address outside every rule
// (192.0.2.1, 2001:db8::1) and port 1. Within one piece every rule of the subject matches all or nothing, so one
// representative per piece, evaluated by the reference evaluator against both generations, stands for the piece.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "policy/analysis.h"
#include "policy/evaluator.h"
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
  Protocol protocol = Protocol::Tcp;
  PortRange ports;
  Verdict before = Verdict::Allow, after = Verdict::Allow;
  std::string decided_before, decided_after;  // "policy web: egress rule 2 (deny) at web.yaml:12:5", or ""
  bool newly_denied() const { return before != Verdict::Deny && after == Verdict::Deny; }
};

struct DiffResult {
  std::vector<VerdictChange> changes;  // sorted: newly denied first, then by subject, direction, peer, port
  size_t classes = 0;                  // classes evaluated (each against both sides)
  bool truncated = false;              // stopped at the bound on classes: the diff is incomplete
  bool newly_denied() const;
};

DiffResult semantic_diff(const DiffSide& before, const DiffSide& after, const Context& ctx);

std::string diff_text(const DiffResult& d);
nlohmann::json diff_json(const DiffResult& d);

// "policy web: egress rule 2 (deny) at web.yaml:12:5" for the rule that decided, found in `set` by owner and
// description; hostscope's own rules ("hs.failsafe", ...) are named as such.
std::string describe_rule(const IrRule* r, const PolicySet& set);

}  // namespace hostscope::policy
