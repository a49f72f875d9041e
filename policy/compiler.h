#pragma once
// Validated policy set -> IR. The compiler refuses any set that has a lint error, so nothing is
// ever enforced from a set that does not fully validate.
#include <string>

#include "policy/context.h"
#include "policy/ir.h"
#include "policy/loader.h"

namespace hostscope::policy {

// Calico's failsafe ports (never blocked unless a policy says `failsafe: false`).
struct FailsafePort {
  Protocol proto;
  uint16_t port;
};
const std::vector<FailsafePort>& failsafe_ports(Direction d);

// ICMPv6 types accepted first in every IPv6 hook chain: MLD (130-132) and neighbour discovery
// (133-136), as Calico does.
struct NeighbourDiscoveryType {
  uint8_t type;
  const char* name;
};
const std::vector<NeighbourDiscoveryType>& neighbour_discovery_types();

struct CompileOptions {
  // Rules whose peer list (in one family) is longer than this use an ipset instead.
  size_t ipset_threshold = 8;
};

struct CompileResult {
  std::optional<Ir> ir;       // set only when the set validated
  Diagnostics diagnostics;    // everything lint found
  // Policies whose subject selects nothing with this catalogue (name, subject location), in set order.
  std::vector<std::pair<std::string, SourceLoc>> unselected;
  bool ok() const { return ir.has_value(); }
};

CompileResult compile(const LoadResult& loaded, const Context& ctx, const CompileOptions& opts = {});

}  // namespace hostscope::policy
