#pragma once
// Backend-independent intermediate representation: per address family, ordered chains of atomic
// rules (one rule = one match and one target), shaped after netfilter's chain traversal so the
// reference evaluator and every backend agree on one meaning.
//
// Traversal: each hook chain (INPUT/OUTPUT/FORWARD) is walked top to bottom; Return ends the
// current chain; Jump walks another chain and continues after it; Drop/Reject end everything;
// Log and Audit record and continue (the compiler follows an audit deny/reject rule with a Return of the
// same match, so the chain ends there as in enforce mode); falling off a hook chain means hostscope lets the
// packet pass.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/model.h"
#include "policy/net.h"

namespace hostscope::policy {

enum class Hook { Input, Output, Forward };
const char* to_string(Hook h);
// Names of our chains; per-subject chains are "HOSTSCOPE-P-<16 hex>".
const char* hook_chain(Hook h);
inline constexpr const char* kChainPrefix = "HOSTSCOPE-";

enum class IrTarget { Return, Drop, Reject, Log, Audit, Jump };
const char* to_string(IrTarget t);

struct IrMatch {
  std::optional<Cidr> src, dst;
  std::string src_set, dst_set;  // ipset names (peer sets larger than the threshold)
  Protocol proto = Protocol::Any;
  std::vector<PortRange> dports;  // empty = any; requires proto tcp or udp
  std::optional<uint8_t> icmpv6_type;  // requires proto icmpv6
  std::string cgroup;             // cgroup v2 path of the sending socket; empty = any
  // addrtype: the destination is an address of this node (`--dst-type LOCAL`), the source is (`--src-type LOCAL`).
  // A packet a local process sends to a local process takes the loopback path: OUTPUT, then INPUT on `lo`.
  bool dst_local = false;
  bool src_local = false;
  // `! -i lo`: the packet did not arrive on the loopback device, i.e. on INPUT it was not sent by this node. Not
  // `! --src-type LOCAL`: IPv6 (and IPv4 with accept_local) delivers a packet from another host whose source is
  // spoofed to one of this node's addresses, and it must not escape INPUT. Matches every packet on OUTPUT/FORWARD.
  bool in_not_loopback = false;
  bool established = false;       // conntrack ESTABLISHED,RELATED
  bool operator==(const IrMatch&) const = default;
};

struct IrRule {
  IrMatch match;
  IrTarget target = IrTarget::Return;
  std::string jump;   // chain name when target == Jump
  std::string owner;  // policy name, or "hs.nd" / "hs.conntrack" / "hs.failsafe" / "hs.dispatch"
  Mode mode = Mode::Enforce;
  std::string what;  // human description: "egress rule 2 (deny)", "default deny", ...
  std::string loc;   // where a policy's rule or default is written ("web.yaml:12:5"); "" for hostscope's own rules
  std::string hash;  // 12 hex digits, stable for identical content, unique within a table
  std::string tag() const { return "hostscope:" + owner + ":" + hash; }
};

struct IrChain {
  std::string name;
  std::vector<IrRule> rules;
};

struct IrSet {
  std::string name;  // "hs-<16 hex of family + members>"
  Family family = Family::V4;
  std::vector<Cidr> members;
};

struct IrTable {
  Family family = Family::V4;
  std::vector<IrChain> chains;  // hook chains first (INPUT, OUTPUT, FORWARD), then subject chains
  std::vector<IrSet> sets;
  const IrChain* find(const std::string& name) const;
  const IrSet* find_set(const std::string& name) const;
  size_t rule_count() const;
};

struct Ir {
  IrTable v4{Family::V4, {}, {}}, v6{Family::V6, {}, {}};
  std::string source_hash;
  std::map<std::string, Mode> policy_modes;  // policy name -> mode
  const IrTable& table(Family f) const { return f == Family::V4 ? v4 : v6; }
};

}  // namespace hostscope::policy
