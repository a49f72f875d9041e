#pragma once
// Observed traffic judged by a policy generation: the verdict of one topology edge (what `top`/`topology` mark) and
// `policy plan --impact`, which replays every observed edge through the generation in force and the one a plan would
// apply and lists the edges whose verdict changes. Edge ends become reference-evaluator endpoints through the node's
// service catalogue (a local service's cgroups, at the address the edge observed) or their observed addresses; an
// edge with DNAT backends is judged at the backends, as the filter table sees it after DNAT.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/topology_model.h"
#include "policy/analysis.h"
#include "policy/context.h"
#include "policy/evaluator.h"
#include "policy/ir.h"

namespace hostscope::policy {

// The evaluator endpoints one edge end stands for (empty: not judgeable, e.g. no address and no catalogued service).
std::vector<Endpoint> edge_endpoints(const topology::EdgeEnd& end, const Context& ctx);

struct EdgeJudgement {
  Verdict verdict = Verdict::Allow;
  const IrRule* decided = nullptr;  // the rule behind a Deny or AuditWouldDeny (points into the Ir)
  bool judged = false;              // false: no endpoint pair to evaluate; the verdict is Allow by default
};
// Deny when any endpoint pair is denied, AuditWouldDeny when one would be, else Allow.
EdgeJudgement judge_edge(const Ir& ir, const Context& ctx, const topology::EdgeSnapshot& e);
// For marks: "denied", "would-deny" or "".
std::string edge_verdict(const Ir& ir, const Context& ctx, const topology::EdgeSnapshot& e);

// One side of the comparison. `ir` null: no generation applied (everything allowed). `set` (optional) names the
// deciding rule with its file:line; without it the rule is named by policy and description only.
struct ImpactSide {
  const Ir* ir = nullptr;
  const PolicySet* set = nullptr;
  std::string label;  // "generation 3", "no policy applied", "policy directory ./policies"
};

struct ImpactChange {
  topology::EdgeSnapshot edge;
  Verdict before = Verdict::Allow, after = Verdict::Allow;
  std::string decided_before, decided_after;  // "policy web: egress default deny at web.yaml:6:3", or ""
  std::string denied_by;  // the policy whose rule decides `after` ("" when hostscope's own rules or nothing decide)
  bool newly_denied() const { return before != Verdict::Deny && after == Verdict::Deny; }
};

struct ImpactReport {
  std::string before_label, after_label;
  std::vector<ImpactChange> changes;  // newly denied first, then by connections (most first), then edge order
  size_t edges = 0;                   // edges in the window that were judged
  size_t unjudged = 0;                // edges with no endpoint to evaluate (counted, listed nowhere)
  size_t outside_window = 0;          // edges last seen before `since`
  uint64_t since_ns = 0;              // 0: every edge the source holds
  uint64_t newly_denied_connections = 0;
  bool newly_denied() const;
};

// Every edge of `observed` last seen at or after `since_ns`, judged by both sides.
ImpactReport observed_impact(const ImpactSide& before, const ImpactSide& after, const Context& ctx,
                             const topology::TopologySnapshot& observed, uint64_t since_ns = 0);

// One observed edge as impact and diff reports name it: "service:shop/web (10.0.0.1) -> service:shop/api port 80/tcp",
// its counts "12 connection(s), 1 failed, last seen <time>", and its JSON fields (client, client_address, server,
// server_address, port, protocol, actual, connections, failed, last_seen).
std::string observed_edge_text(const topology::EdgeSnapshot& e);
std::string observed_counts_text(const topology::EdgeSnapshot& e);
nlohmann::json observed_edge_json(const topology::EdgeSnapshot& e);

std::string impact_text(const ImpactReport& r);
// One line for logs and refusals: "2 observed edge(s) (45 connections) would be newly denied: <edge> (<n> connections;
// <rule>); ..." naming at most `max_edges` edges.
std::string impact_summary(const ImpactReport& r, size_t max_edges);
nlohmann::json impact_json(const ImpactReport& r);

}  // namespace hostscope::policy
