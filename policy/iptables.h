#pragma once
// iptables backend: renders the IR into our own chains and installs them atomically with one
// `iptables-restore --noflush` per table and family. It only ever touches chains named
// HOSTSCOPE-*, the jump rules to them it installs (tagged "hostscope:jump") and ipsets named
// hs-<16 hex>.
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "policy/command.h"
#include "policy/diagnostic.h"
#include "common/result.h"
#include "policy/ir.h"
#include "policy/state_file.h"

namespace hostscope::policy {

struct RenderOptions {
  int log_nflog_group = 100;    // `action: log`
  int audit_nflog_group = -1;   // audit would-deny rules also NFLOG here when >= 0 (counters always)
  // At least this many consecutive rules that differ only in one peer address and one tcp or udp port (same chain,
  // policy, mode, verdict, protocol, peer side) are installed as one rule matching an ipset `hash:net,port`; 0 = never.
  size_t fold_min = 8;
};

// What `status` shows for a rendered rule that no IR rule carries the tag of: a run of rules installed as one.
struct FoldedRule {
  std::string tag, chain, owner, what, target, mode, loc;
};
// The policy rules a rule of ours stands for, from its `what`: n for a folded run ("...: n rules in one ipset"), else 1.
size_t rules_stood_for(std::string_view what);

// Our part of one family's filter table, as rule lines "-A CHAIN ...".
struct RenderedTable {
  Family family = Family::V4;
  std::vector<std::string> chains;  // every chain we own, hook chains first
  std::vector<std::string> rules;
  std::string ipsets;               // `ipset restore` input (create + swap), may be empty
  std::vector<std::string> set_names;
  std::vector<FoldedRule> folded;  // not stored with a generation: the rule index records them
  // The hash:net,port sets of folded runs: name -> hash of its members. Stored with a generation (FoldSlots).
  std::map<std::string, std::string> fold_sets;
};

// A folded run's set keeps its name from one generation to the next while the run keeps its place (chain, policy,
// mode, verdict, protocol, peer side, and which such run of the chain it is): the name is that place's hash and a slot
// letter, a or b. With the sets of the generation in force, a set whose members change takes the other slot, so the
// rules in force keep matching the old members until the new rules replace them in one iptables-restore; with
// `in_place`, it keeps its slot and name, for a change of members alone that the backend makes on the live set
// (IptablesBackend::install_family).
struct FoldSlots {
  std::map<std::string, std::string> in_force;  // fold_sets of the generation in force
  bool in_place = false;
};
RenderedTable render(const IrTable& t, const RenderOptions& o = {}, const FoldSlots* slots = nullptr);
std::string render_rule(const std::string& chain, const IrRule& r, Family f, const RenderOptions& o);

// Parsed `iptables-save -c -t filter` output.
struct SavedRule {
  std::string chain;
  std::string line;  // "-A CHAIN ..." without counters
  uint64_t packets = 0, bytes = 0;
  std::string tag;   // "hostscope:<owner>:<hash>" when present
};
struct SavedTable {
  std::vector<std::string> chains;  // all chains declared, in order
  std::vector<SavedRule> rules;
  bool is_ours(const std::string& chain) const;
  std::vector<std::string> our_chains() const;
  std::vector<std::string> our_lines() const;     // rules of our chains, in order
  std::vector<SavedRule> jumps_to_us() const;     // rules in other chains jumping into ours
};
SavedTable parse_save(const std::string& text);

// What apply would change, per chain, keyed by the rule tags (the hash covers the rule's content).
struct ChainDiff {
  Family family = Family::V4;
  std::string chain;
  enum class State { Changed, Created, Deleted } state = State::Changed;
  std::vector<std::string> added, removed;
};
struct Plan {
  std::vector<ChainDiff> chains;
  std::vector<std::string> jumps_to_add;  // "ipv4 INPUT -> HOSTSCOPE-INPUT"
  std::vector<std::string> sets_changed;  // "ipv4 hs-... : +1 -1 members" (a change of members made on the live set)
  std::map<std::string, size_t> rules_per_tag;  // a folded rule's tag (in force or planned) -> rules_stood_for()
  bool empty() const { return chains.empty() && jumps_to_add.empty() && sets_changed.empty(); }
  std::string text() const;
};
Plan make_plan(const SavedTable& installed, const RenderedTable& next);

// "" unless the plan removes more than half of the `installed` rules in force while some policies select nothing
// (counted as policy rules: a folded rule as the rules it stands for, and net of the rules the plan adds)
// on this node (`unselected`: CompileResult::unselected; `prefix` is put before their file names). Then a message
// naming those policies with file:line: far more often a catalogue that lacks their services (no policy.context, a
// service not started) than the intent. The reconciler refuses such a set at step `select`, `policy apply` unless
// --allow-mass-removal; `policy plan` warns.
struct BackendStatus;
// Rules in force that policies own (hostscope's own failsafe, neighbour-discovery and dispatch rules not counted).
size_t policy_rules_in_force(const BackendStatus& st);
std::string mass_removal(const Plan& plan, size_t installed, const std::vector<std::pair<std::string, SourceLoc>>& unselected,
                         size_t policies, const std::string& prefix = "");

struct IptablesOptions {
  std::string variant = "iptables";  // "iptables" (system default), "nft" or "legacy"
  std::vector<std::string> command_prefix;  // e.g. {"ip", "netns", "exec", "hs-t-1"}
  std::string state_dir = "/var/lib/hostscope/policy";
  int keep_generations = 5;
  bool ipv6 = true;
  RenderOptions render;
  // Tests only: the process kills itself with SIGKILL at this step of a switch between generations ("intent",
  // "ipv4", "ipv6", "stored", "current"); the CLI takes it from HOSTSCOPE_TEST_POLICY_CRASH_AT.
  std::string crash_at;
};

struct RuleCounter {
  Family family = Family::V4;
  std::string chain, tag, owner, what;
  std::string target;  // RETURN, DROP, REJECT, LOG, AUDIT, JUMP
  std::string mode;    // enforce | audit
  std::string loc;     // "web.yaml:12:5" for a policy's rule or default (generations applied before it existed: "")
  uint64_t packets = 0, bytes = 0;
};

struct BackendStatus {
  int generation = 0;  // 0 = nothing applied (or flushed)
  std::string source_hash;
  std::map<std::string, std::string> modes;  // policy -> enforce | audit
  std::vector<RuleCounter> counters;
  bool drift = false;
  std::vector<std::string> drift_details;
  // Sum of packets counted by audit rules (traffic that enforce mode would have dropped).
  uint64_t audit_would_deny_packets = 0;
  // Per policy and rule, with file:line, counters summed over families and chains; hostscope's own rules in one
  // line. `only_policy`: that policy alone ("" = all).
  std::string text(const std::string& only_policy = "") const;
  // Every iptables rule hostscope owns with its counters (`policy status --raw`).
  std::string raw_text() const;
  // The per-policy view as JSON: [{name, mode, packets, would_deny_packets, rules: [{rule, loc, target, packets, bytes}]}].
  nlohmann::json policies_json(const std::string& only_policy = "") const;
};

struct ApplyReport {
  int generation = 0;
  size_t rules = 0;
  Plan plan;  // what changed
  // apply() of what is already in force: no new generation, `generation` is the current one.
  bool unchanged = false;
  bool drift_repaired = false;  // ... and the kernel differed from it, so it was installed again
};

// Every operation that changes rules or state holds <state_dir>/lock and goes through a journal: an interrupted
// switch (the process died) is finished or undone by the next operation, so the kernel holds exactly one
// generation in every family and `current` names it (docs/policy.md, "After a crash").
class IptablesBackend {
 public:
  explicit IptablesBackend(IptablesOptions o, std::shared_ptr<CommandRunner> runner = nullptr);

  Result<Plan> plan(const Ir& ir);
  // Atomic per table: on any failure the previous generation stays (or is put back) in force.
  // When the rules, modes and rule index equal the current generation's, nothing is installed and no generation is
  // made (report.unchanged); drift is still repaired by installing the current generation again.
  Result<ApplyReport> apply(const Ir& ir);
  Result<ApplyReport> rollback();
  // Installs stored generation `n` again and makes it current (drift repair; rollback uses it too).
  Result<ApplyReport> reinstall(int n);
  Result<BackendStatus> status();
  // Removes our jump rules, our chains and our ipsets; nothing else.
  Status flush();
  // Finishes or undoes a switch a dead process left half done; "" when there was none, else what was done.
  // plan, apply, rollback, reinstall, status and flush call it first.
  Result<std::string> recover();

  const IptablesOptions& options() const { return o_; }

 private:
  struct Generation;
  struct Pending;
  struct FileSig;
  struct GenerationCache;
  std::vector<Family> families() const;
  std::vector<std::string> cmd(Family f, const char* tool) const;
  // `counters`: with packet and byte counters (iptables-save -c; status), which installing does not need.
  Result<SavedTable> save(Family f, bool counters = false);
  Result<ApplyReport> keep_current(Generation& in_force, const Ir& ir);
  // g.v4/g.v6 from `ir`, folded sets in their slots against `in_force` (FoldSlots): kept when only the members of one
  // set per family change (install_family makes that on the live set), else a changed set takes its other slot.
  void render_tables(Generation& g, const Ir& ir, const Generation* in_force) const;
  Result<ApplyReport> reinstall_locked(int n);
  // Puts every family on `g` (nullptr: no rules of ours) and records what each reads back in g->observed. When one
  // fails, the families already switched go back to generation `back` (0: none; -1: leave them); `reverted` says
  // whether that worked. `in_force`: the generation the kernel holds (when known), so chains it left as they were are
  // edited in place instead of declared again.
  Status switch_families(Generation* g, const Generation* in_force, int back, Plan* plan, bool* reverted);
  // Sends only the chains that differ from what the kernel holds; `full`: declares every chain again.
  Status install_family(Generation& g, Family f, Plan* plan, const Generation* in_force, bool full = false);
  Status flush_family(Family f);
  // Journalled switch from `current` (`in_force`, when loaded) to `g` (nullptr: none). `ir`: g is a new generation,
  // stored with it first.
  Result<Plan> transition(Generation* g, const Ir* ir, const Generation* in_force = nullptr);
  Status settle(int n);  // recovery: installs n (0: none) everywhere and makes it current, no journal
  Result<std::string> recover_locked();
  Result<StateLock> lock_and_recover();
  std::optional<Pending> read_pending() const;
  void crash_point(const std::string& step) const;
  void forget(int n) const;  // removes the files of generation n
  Result<Generation> load_generation(int n) const;  // from memory while its files are unchanged
  // <state_dir>/gen-<N>.index (the rule index), gen-<N>.json (tables, modes) and, with `ir`, gen-<N>.ir.json, to be
  // written together (write_files_atomic); then stored(g).
  std::vector<std::pair<std::filesystem::path, std::string>> generation_texts(const Generation& g, const Ir* ir) const;
  void stored(const Generation& g) const;
  // <state_dir>/gen-<N>.observed: the rules read back, ipv6_installed.
  Status store_observed(const Generation& g, bool sync_dir = true) const;
  void load_observed(Generation& g) const;
  std::array<FileSig, 3> generation_files(int n) const;
  void remember(const Generation& g, const std::array<FileSig, 3>& files) const;
  std::vector<int> generations() const;
  int current() const;
  Status set_current(int n) const;
  void prune(int cur, int parent) const;
  void destroy_stale_sets(const std::vector<std::string>& keep);

  IptablesOptions o_;
  std::shared_ptr<CommandRunner> run_;
  std::shared_ptr<GenerationCache> cache_;  // generations recently read or stored (copies of a backend share it)
};

}  // namespace hostscope::policy
