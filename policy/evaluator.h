#pragma once
// Reference evaluator: walks the IR the way netfilter walks the rendered chains. It is the truth
// the backends are tested against and what `policy test` runs PolicyTest cases on.
#include <optional>
#include <string>
#include <vector>

#include "policy/analysis.h"
#include "policy/context.h"
#include "policy/ir.h"

namespace hostscope::policy {

enum class Verdict { Allow, Deny, AuditWouldDeny };
const char* to_string(Verdict v);

struct Packet {
  std::optional<IpAddr> src, dst;  // an unknown address matches only rules without an address match
  Protocol proto = Protocol::Tcp;
  uint16_t dport = 0;
  uint8_t icmpv6_type = 0;  // when proto is Icmpv6
  std::string cgroup;  // cgroup v2 path of the sending local process ("" = not local)
  // The source / destination is an address of this node (a local process, or loopback): addrtype LOCAL.
  bool src_local = false, dst_local = false;
  bool in_loopback = false;  // arrived on the loopback device (INPUT of a locally sent packet)
  bool established = false;
};

struct Trace {
  std::vector<std::string> steps;  // "HOSTSCOPE-OUTPUT #2 hostscope:web:abc -> JUMP", ...
  bool record_steps = true;         // false: only `decided` is kept (no formatting on the hot path)
  // The last rule that decided (Return, Drop, Reject or Audit), or null when the packet fell off the hook chains.
  // Points into the evaluated Ir.
  const IrRule* decided = nullptr;
};

Verdict evaluate_hook(const IrTable& table, Hook hook, const Packet& p, Trace* trace = nullptr);

// One end of a connection. Local endpoints are processes on this node (in `cgroup` when they
// send); others are routed through it.
struct Endpoint {
  std::optional<IpAddr> address;
  std::string cgroup;
  bool local = false;
};

// A new connection from -> to: OUTPUT when the sender is local, INPUT when the receiver is local,
// FORWARD when neither. Deny if any hook denies; AuditWouldDeny if an audit rule matched.
Verdict evaluate_connection(const Ir& ir, const Endpoint& from, const Endpoint& to, Protocol proto, uint16_t port,
                            Trace* trace = nullptr);

// Endpoints a PolicyTest name stands for: every cgroup (as a local sender/receiver) and every
// address of a service, or the address itself.
std::vector<Endpoint> endpoints_for(const std::string& name, const Context& ctx);

struct TestOutcome {
  std::string test, case_name;
  SourceLoc loc;
  bool passed = false;
  std::string detail;  // what was observed, for failures
};
std::vector<TestOutcome> run_policy_tests(const PolicySet& set, const Ir& ir, const Context& ctx);

}  // namespace hostscope::policy
