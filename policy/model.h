#pragma once
// The policy language after loading: plain data with the source location of every element, so the
// linter and the compiler can point at the exact YAML that caused a finding.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/diagnostic.h"
#include "policy/net.h"

namespace hostscope::policy {

inline constexpr const char* kApiVersion = "hostscope.io/v1";

enum class Action { Allow, Deny, Reject, Log };
enum class Mode { Enforce, Audit };
enum class Direction { Ingress, Egress };
const char* to_string(Action a);
const char* to_string(Mode m);
const char* to_string(Direction d);

// Which local workloads a policy applies to. Attribute keys are ANDed and matched against the
// service catalogue; `cgroup` is a literal cgroup v2 path and stands alone.
// Cgroup paths end up quoted in iptables rules; refuse anything that could break out of quotes.
inline bool safe_cgroup_path(const std::string& p) {
  if (p.empty() || p.front() != '/' || p.size() > 4096) return false;
  for (unsigned char c : p)
    if (c <= ' ' || c == '"' || c == '\'' || c == 0x7f) return false;
  return true;
}

struct Selector {
  std::map<std::string, std::string> attrs;  // service, go_module, namespace, workload, exe
  std::optional<std::string> cgroup;
  SourceLoc loc;
};

struct Peer {
  enum class Kind { Service, Cidr, Network } kind = Kind::Cidr;
  std::string value;        // service name, CIDR text or network name
  std::optional<Cidr> cidr;  // parsed when kind == Cidr and valid
  SourceLoc loc;
};

struct Rule {
  Action action = Action::Allow;
  std::vector<Peer> peers;  // empty = any peer
  bool any_peer = true;     // false when `peers:` was given (even if every entry was invalid)
  std::vector<PortRange> ports;  // empty = any port
  Protocol protocol = Protocol::Any;
  std::string comment;
  int index = 0;  // 1-based position within its direction, for messages
  SourceLoc loc;
  SourceLoc ports_loc, protocol_loc;
};

struct NetworkPolicy {
  std::string name;
  SourceLoc loc;       // the document
  SourceLoc name_loc;  // metadata.name
  Selector subject;
  Mode mode = Mode::Enforce;
  bool failsafe = true;
  SourceLoc failsafe_loc;
  std::vector<Rule> egress, ingress;
  // The action when no rule matched; `allow` unless `default:` says otherwise.
  Action default_ingress = Action::Allow, default_egress = Action::Allow;
  SourceLoc default_loc;
  const std::vector<Rule>& rules(Direction d) const { return d == Direction::Egress ? egress : ingress; }
  Action default_action(Direction d) const { return d == Direction::Egress ? default_egress : default_ingress; }
};

struct TestCase {
  std::string name;
  std::string from, to;  // service name or IP address
  uint16_t port = 0;
  Protocol protocol = Protocol::Tcp;
  bool expect_allow = true;   // allow (also audit-would-deny: the packet passes) or deny
  bool expect_audit = false;  // `expect: audit-would-deny`: an audit policy would have denied it
  SourceLoc loc;
};

struct PolicyTest {
  std::string name;
  SourceLoc loc, name_loc;
  std::vector<TestCase> cases;
};

// One directory = one set, in merge order (file name, then document order).
struct PolicySet {
  std::vector<NetworkPolicy> policies;
  std::vector<PolicyTest> tests;
  std::vector<std::string> files;  // merge order
  std::string source_hash;         // over file names and contents
};

}  // namespace hostscope::policy
