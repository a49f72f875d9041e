#pragma once
// `policy test DIR --live`: every PolicyTest case is also checked for real. A scratch topology is
// built (a "node" network namespace where the compiled rules are applied with the iptables
// backend, one namespace per remote address routed through it, scratch cgroups standing for the
// services' cgroups), each connection of a case is made with real sockets and the outcome is
// compared with the expectation and with the reference evaluator. The connections run in batches
// of at most kLiveMaxAddresses remote addresses, each batch in a topology of its own. Nothing outside the scratch
// namespaces and cgroups is touched; all of it is removed afterwards, also on errors and on
// SIGINT/SIGTERM. See docs/policy.md, "Live tests", for what this does and does not verify.
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "policy/context.h"
#include "common/result.h"
#include "policy/loader.h"

namespace hostscope::policy {

struct LiveOptions {
  std::string variant = "iptables";  // iptables | nft | legacy (as IptablesOptions::variant)
  int timeout_ms = 1000;             // how long a connection attempt may take before it counts as dropped
};

// Limits that keep a large test set from creating unbounded kernel objects.
inline constexpr size_t kLiveMaxAddresses = 64;  // scratch namespaces for remote addresses at a time (per batch)
inline constexpr size_t kLiveMaxProbes = 4096;   // connection attempts (case x endpoint pairs)
inline constexpr size_t kLiveParallelProbes = 64;

// One connection of a case: one endpoint the `from` name stands for to one `to` endpoint.
struct LiveProbe {
  std::string from, to;   // "cgroup /web", "10.0.0.2", "local"
  bool evaluator_allow = false;
  std::optional<bool> live_allow;  // nullopt: this pair cannot be made for real (see skipped)
  std::string live_detail;         // "connected", "refused", "timeout", or why it was skipped
};

struct LiveCaseResult {
  std::string test, case_name;
  SourceLoc loc;
  bool expect_allow = true;
  std::vector<LiveProbe> probes;
  std::string error;  // the case cannot be evaluated at all (no endpoints, no common family)
  bool evaluator_matches() const;  // every probe's evaluator verdict is the expectation
  bool live_matches() const;       // every probe made for real came out as expected
  size_t skipped() const;
  bool passed() const { return error.empty() && evaluator_matches() && live_matches(); }
  // "allow", "deny", "mixed" over the probes (evaluator or live).
  std::string evaluator_summary() const;
  std::string live_summary() const;
  std::string explanation() const;  // empty when passed
};

// A whole live run: the cases in test order and how the remote addresses were emulated.
struct LiveRun {
  std::vector<LiveCaseResult> cases;
  size_t addresses = 0;  // distinct remote addresses over all batches
  size_t batches = 0;    // scratch environments, built one after the other
};

// What is missing for live checks on this machine ("" when they can run): root, cgroup v2,
// `ip`, the iptables flavour's tools.
std::string live_requirements(const LiveOptions& o);

// Compiles `loaded` with `ctx` (evaluator verdicts) and with the cgroups mirrored under the scratch
// parent (kernel verdicts), plans every probe, and runs them in batches (split_live_batches): each batch
// builds its own topology, runs its probes and tears everything down before the next one starts.
// The results do not depend on how the probes were batched.
// An Error means the live check could not run (setup, apply, interrupted); results otherwise.
Result<LiveRun> run_live_tests(const LoadResult& loaded, const Context& ctx, const LiveOptions& o);

// Splits probes (in plan order; each needs the remote addresses listed, at most two) into consecutive
// batches whose distinct addresses fit in `max_addresses`, greedily: a probe goes into the current batch
// unless its new addresses would not fit. Returns each batch's end index; always at least one batch (an
// empty plan, or probes that only involve the node, still get one scratch environment).
std::vector<size_t> split_live_batches(const std::vector<std::vector<std::string>>& needs, size_t max_addresses);

// One line per case ("PASS file:line:col: name — expect allow, evaluator allow, live allow"), the
// reasons under a failing case, then a summary with the batch count. True when every case passed.
bool print_live_results(const LiveRun& run, std::ostream& out);

// The scratch cgroup that stands for `cgroup` under the scratch parent `parent` ("/hostscope-live-1"):
// the same path below it, so nesting between cgroups is kept. nullopt for a path with "." or ".."
// components (it could leave the scratch parent).
std::optional<std::string> mirror_cgroup(const std::string& parent, const std::string& cgroup);

}  // namespace hostscope::policy
