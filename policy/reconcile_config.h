#pragma once
// The `policy:` section of the agent config (/etc/hostscope/config.yaml): where the policy set comes from (a Git
// repository or a plain directory) and how the agent enforces it. Parsed here so the policy library owns its keys;
// agent/daemon/config.cpp calls parse_reconcile_config and rejects the whole file on any error.
#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/result.h"
#include "policy/iptables.h"

namespace hostscope::policy {

struct GitSourceConfig {
  std::string url;                   // https://, ssh://, file:// or a local path
  std::string branch = "main";
  std::string directory;             // sub-directory of the repository holding the policy YAML ("" = root)
  std::string ssh_key_file;          // private key for ssh:// remotes (read by libgit2, never logged)
  std::string token_file;            // HTTPS token (first line of the file; never logged)
  std::string allowed_signers_file;  // when set, only commits SSH-signed by a key listed here are applied
  bool follow_force_push = false;    // apply a new tip that does not descend from the applied commit
};

struct ReconcileConfig {
  enum class Kind { None, Git, Directory };
  Kind kind = Kind::None;  // None: the agent does not manage policy
  GitSourceConfig git;
  std::string directory;   // Kind::Directory
  uint32_t poll_seconds = 60;

  std::string state_dir = "/var/lib/hostscope/policy";  // generations + reconcile.json
  std::string work_dir = "/var/lib/hostscope/policy-git";  // the Git working copy (a bare clone)
  std::string iptables = "iptables";                     // iptables | nft | legacy
  std::string netns;        // run the iptables tools inside this network namespace (tests, multi-netns setups)
  bool ipv6 = true;         // also manage ip6tables
  bool allow_failsafe_off = false;  // accept enforce-mode policies with `failsafe: false`
  // `policy.context`: a JSON context file (docs/policy.md) with services the node cannot see, merged with what the
  // agent sees (merge_context) for the reconciler and the CLI's node catalogue; read again on every pass.
  std::string context_file;
  // Apply a set whose plan removes more than half of the rules in force while some of its policies select nothing
  // on this node (see Reconciler); off: such a commit is refused at step `select`.
  bool allow_mass_removal = false;
  // `policy.impact`: what a pass does when the new set would deny a connection the agent observed and the generation
  // in force allows (policy/impact.h): warn (log it, record it in reconcile.json, apply), refuse (step `impact`),
  // audit-first (apply, with the policies that would deny it in audit mode; each later pass enforces them once no
  // observed edge would be newly denied), or off (do not look).
  enum class Impact { Off, Warn, Refuse, AuditFirst };
  Impact impact = Impact::Warn;

  bool enabled() const { return kind != Kind::None; }
  // "git <url> branch <b> dir <sub>" or "dir <path>"; never contains credentials.
  std::string describe() const;
};

// `node` is the value of the top-level `policy` key (may be null/undefined: defaults, no source). Errors are
// "file:line:column: message" lines, joined with '\n'.
Result<ReconcileConfig> parse_reconcile_config(const YAML::Node& node, const std::string& file);

// The backend options the reconciler (and the policy metrics) use: variant, state_dir, ipv6, netns prefix.
IptablesOptions iptables_options(const ReconcileConfig& c);

// A URL with any user:password@ part replaced by "***@", for logs and status.
std::string redact_url(const std::string& url);

}  // namespace hostscope::policy
