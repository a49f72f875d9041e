#include "policy/cli.h"

#include <array>
#include <chrono>
#include <optional>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/time_arg.h"
#include "common/topology_json.h"
#include "policy/analysis.h"
#include "policy/compiler.h"
#include "policy/diff.h"
#include "policy/impact.h"
#include "policy/ir_json.h"
#include "policy/evaluator.h"
#include "policy/export.h"
#include "policy/generate.h"
#include "policy/git_source.h"
#include "policy/iptables.h"
#include "policy/live_check.h"
#include "policy/loader.h"
#include "policy/reconciler.h"
#include "policy/state_file.h"

namespace hostscope::policy {
namespace {

struct Options {
  std::string dir, context_file, from_file, socket = kDefaultAgentSocket, out_dir, notes_file;
  bool force = false;
  std::string state_dir = "/var/lib/hostscope/policy", variant = "iptables", netns;
  bool no_ipv6 = false, json = false, live = false, allow_mass_removal = false, impact = false;
  int live_timeout_ms = 1000;
  int keep = 5;
  size_t ipset_threshold = 8;
  int audit_nflog = -1, log_nflog = 100;
  std::function<Context()> provider;
  HistoryReader history;
  std::string history_file, since;  // --history FILE, --since D
  ClusterReader cluster;
  bool from_cluster = false;                              // generate --cluster
  std::string prometheus, cluster_window = "1h", context_out;  // --prometheus URL, --window W, --context-out FILE
};

[[noreturn]] void fail(int code, const std::string& msg) {
  if (!msg.empty()) std::cerr << msg << "\n";
  throw CLI::RuntimeError(code);
}

Context context(const Options& o) {
  if (!o.context_file.empty()) {
    auto c = load_context_file(o.context_file);
    if (!c) fail(2, c.error().str());
    return std::move(*c);
  }
  return o.provider ? o.provider() : Context{};
}

LoadResult load(const Options& o) {
  std::error_code ec;
  if (!std::filesystem::is_directory(o.dir, ec)) fail(2, fmt::format("policy directory {} does not exist", o.dir));
  return load_dir(o.dir);
}

void print_diagnostics(const Diagnostics& d, std::ostream& out = std::cout) {
  size_t errors = 0, warnings = 0;
  for (const auto& x : d) {
    out << x.str() << "\n";
    (x.severity == Severity::Error ? errors : warnings)++;
  }
  out << fmt::format("{} error(s), {} warning(s)\n", errors, warnings);
}

// `keep`: the loaded set, for callers that name rules by file:line; `ctx`: the catalogue to compile with (default:
// context(o)).
CompileResult compiled_set(const Options& o, LoadResult* keep = nullptr, const Context* ctx = nullptr) {
  auto loaded = load(o);
  CompileOptions co;
  co.ipset_threshold = o.ipset_threshold;
  auto c = ctx ? compile(loaded, *ctx, co) : compile(loaded, context(o), co);
  if (keep) *keep = std::move(loaded);
  if (!c.ok()) {
    print_diagnostics(c.diagnostics);
    fail(1, "policy set does not validate; nothing was changed");
  }
  for (const auto& d : c.diagnostics) std::cerr << d.str() << "\n";
  return c;
}

// The observed topology: `--from FILE` (bounded read) or the running agent's reply.
nlohmann::json observed_topology(const Options& o) {
  if (!o.from_file.empty()) {
    std::ifstream f(o.from_file, std::ios::binary);
    if (!f) fail(2, fmt::format("topology file {} open failed", o.from_file));
    // Read at most one byte past the limit so an oversized file is refused without loading it.
    std::string text(kMaxTopologyBytes + 1, '\0');
    f.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(f.gcount()));
    auto topo = parse_topology_text(text);
    if (!topo) fail(1, fmt::format("topology file {}: {}", o.from_file, topo.error().str()));
    return std::move(*topo);
  }
  auto topo = fetch_topology(o.socket);
  if (!topo) fail(1, fmt::format("{} (is the agent running? or pass --from topology.json)", topo.error().str()));
  return std::move(*topo);
}

// `--since D`: the earliest time kept (0: no window); a malformed D is a usage error.
uint64_t since_ns(const std::string& since) {
  if (since.empty()) return 0;
  auto d = parse_duration_ns(since);
  if (!d) fail(2, fmt::format("--since {}: expected a duration like 30m, 24h or 7d", since));
  uint64_t now = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  return now > *d ? now - *d : 1;
}

// The observed edges of `--impact` and `generate`. With `--since D` (and no --from) they come from the node's
// topology history over [now - D, now); when there is none, from the agent's live edges last seen within D (said on
// stderr; an explicit --history that cannot be read is an error). Otherwise the agent's or --from's edges, read
// leniently like `generate --from`, and `--since` keeps those last seen within D.
topology::TopologySnapshot observed_edges(const Options& o) {
  const uint64_t since = since_ns(o.since);
  if (since && o.from_file.empty()) {
    if (!o.history && !o.history_file.empty()) fail(2, "--history: this build reads no topology history");
    if (o.history) {
      uint64_t now = uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
      auto h = o.history(o.history_file, since, now);
      if (h) return std::move(*h);
      if (!o.history_file.empty()) fail(1, h.error().str());
      std::cerr << fmt::format("no topology history ({}); using the agent's live edges last seen within {}\n",
                               h.error().str(), o.since);
    }
  }
  auto observed = topology::from_json(observed_topology(o), {.lenient = true});
  if (!observed) fail(1, observed.error().str());
  if (since) {
    topology::SnapshotFilter f;
    f.since_ns = since;
    *observed = topology::filter(std::move(*observed), f);
  }
  return std::move(*observed);
}

// mass_removal() for the CLI: the rules in force come from the backend's status ("" when it cannot be read: plan and
// apply report that themselves).
std::string mass_removal_of(IptablesBackend& b, const Plan& p, const CompileResult& c) {
  auto st = b.status();
  return st ? mass_removal(p, policy_rules_in_force(*st), c.unselected, c.ir->policy_modes.size()) : "";
}

IptablesBackend backend(const Options& o) {
  IptablesOptions io;
  io.variant = o.variant;
  io.state_dir = o.state_dir;
  io.keep_generations = o.keep;
  io.ipv6 = !o.no_ipv6;
  io.render.audit_nflog_group = o.audit_nflog;
  io.render.log_nflog_group = o.log_nflog;
  if (!o.netns.empty()) io.command_prefix = {"ip", "netns", "exec", o.netns};
  if (const char* step = std::getenv("HOSTSCOPE_TEST_POLICY_CRASH_AT")) io.crash_at = step;  // crash tests only
  return IptablesBackend(io);
}


// The reconciler's record: from the running agent when it answers, else <state_dir>/reconcile.json.
std::optional<ReconcileStatus> reconcile_status(const Options& o) {
  std::error_code ec;
  if (std::filesystem::exists(o.socket, ec))
    if (auto r = agent_request(o.socket, "policy.status"); r && r->contains("reconcile"))
      return ReconcileStatus::from_json((*r)["reconcile"]);
  std::ifstream f(Reconciler::status_path(o.state_dir));
  if (!f) return std::nullopt;
  try {
    return ReconcileStatus::from_json(nlohmann::json::parse(f));
  } catch (const nlohmann::json::exception& e) {
    fail(1, fmt::format("{} parse failed: {}", Reconciler::status_path(o.state_dir), e.what()));
  }
}

std::string unix_time(int64_t t) {
  if (t == 0) return "-";
  char buf[64];
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string reconcile_text(const ReconcileStatus& r) {
  std::string s = fmt::format("policy source: {}\n", r.source.empty() ? "(none)" : r.source);
  s += fmt::format("  applied commit: {} (generation {}, committed {}, applied {})\n", r.applied_commit.empty() ? "-" : r.applied_commit,
                   r.generation, unix_time(r.applied_commit_unix), unix_time(r.applied_unix));
  s += fmt::format("  last attempt: {} at {}: {}{}\n", r.last_attempt_commit.empty() ? "-" : r.last_attempt_commit, unix_time(r.last_attempt_unix),
                   r.last_result.empty() ? "(none)" : r.last_result, r.last_step.empty() ? "" : " at step " + r.last_step);
  if (!r.last_error.empty()) s += fmt::format("  last error: {}\n", r.last_error);
  if (!r.last_warning.empty()) s += fmt::format("  last warning: {}\n", r.last_warning);
  s += fmt::format("  drift repairs: {} (last {}), passes: {}\n", r.drift_repairs, unix_time(r.last_drift_unix), r.passes);
  return s;
}

}  // namespace

void register_policy_command(CLI::App& app) { register_policy_command(app, {}); }

void register_policy_command(CLI::App& app, std::function<Context()> provider, HistoryReader history,
                             ClusterReader cluster) {
  auto o = std::make_shared<Options>();
  o->provider = std::move(provider);
  o->history = std::move(history);
  o->cluster = std::move(cluster);
  auto add_since = [o](CLI::App* c, const std::string& with) {
    c->add_option("--since", o->since,
                  with + "the edges observed within this window (30m, 24h, 7d): from the node's topology history when "
                         "there is one, else the agent's edges last seen within it");
    c->add_option("--history", o->history_file, "With --since: topology history file (default: history.path of the agent config)");
  };
  auto* policy = app.add_subcommand("policy", "Policy as code: lint, test, plan, apply, rollback, status, flush, generate, export");
  policy->require_subcommand(1);
  auto common = [o](CLI::App* c, bool needs_dir, bool backend_opts) {
    if (needs_dir) c->add_option("DIR", o->dir, "Directory of *.yaml policy files")->required();
    c->add_option("--context", o->context_file, "JSON file with the service catalogue and named networks");
    if (!backend_opts) return;
    c->add_option("--state-dir", o->state_dir, "Where applied generations are kept")->capture_default_str();
    c->add_option("--iptables", o->variant, "iptables flavour: iptables (system default), nft or legacy")
        ->check(CLI::IsMember({"iptables", "nft", "legacy"}))
        ->capture_default_str();
    c->add_option("--netns", o->netns, "Run the iptables tools inside this network namespace");
    c->add_flag("--no-ipv6", o->no_ipv6, "Leave ip6tables alone");
    c->add_option("--keep", o->keep, "Generations kept for rollback")->capture_default_str();
    c->add_option("--ipset-threshold", o->ipset_threshold, "Peer lists longer than this become ipsets")->capture_default_str();
    c->add_option("--audit-nflog-group", o->audit_nflog, "Also NFLOG audit would-deny packets to this group");
    c->add_option("--log-nflog-group", o->log_nflog, "NFLOG group for `action: log`")->capture_default_str();
  };

  auto* lint_cmd = policy->add_subcommand("lint", "Check a policy directory; exit 1 on errors");
  common(lint_cmd, true, false);
  lint_cmd->callback([o] {
    auto report = lint(load(*o), context(*o));
    print_diagnostics(report.diagnostics);
    if (!report.ok()) fail(1, "");
  });

  auto* test_cmd = policy->add_subcommand("test", "Run PolicyTest cases against the reference evaluator");
  common(test_cmd, true, false);
  test_cmd->add_flag("--live", o->live, "Also check every case for real in scratch network namespaces (root)");
  test_cmd->add_option("--iptables", o->variant, "With --live: iptables flavour: iptables (system default), nft or legacy")
      ->check(CLI::IsMember({"iptables", "nft", "legacy"}))
      ->capture_default_str();
  test_cmd->add_option("--timeout-ms", o->live_timeout_ms, "With --live: wait this long for a connection before it counts as dropped")
      ->check(CLI::Range(50, 60000))
      ->capture_default_str();
  test_cmd->callback([o] {
    auto loaded = load(*o);
    auto ctx = context(*o);
    auto c = compile(loaded, ctx);
    if (!c.ok()) {
      print_diagnostics(c.diagnostics);
      fail(1, "policy set does not validate");
    }
    if (o->live) {
      auto live = run_live_tests(loaded, ctx, LiveOptions{o->variant, o->live_timeout_ms});
      if (!live) fail(2, live.error().str());
      if (!print_live_results(*live, std::cout)) fail(1, "");
      return;
    }
    size_t failed = 0;
    auto results = run_policy_tests(loaded.set, *c.ir, ctx);
    for (const auto& r : results) {
      std::cout << fmt::format("{} {}: {}{}\n", r.passed ? "PASS" : "FAIL", r.loc.str(), r.case_name,
                               r.passed ? "" : " — " + r.detail);
      failed += r.passed ? 0 : 1;
    }
    std::cout << fmt::format("{} passed, {} failed\n", results.size() - failed, failed);
    if (failed) fail(1, "");
  });

  auto* plan_cmd = policy->add_subcommand("plan", "Show what apply would change");
  common(plan_cmd, true, true);
  plan_cmd->add_flag("--impact", o->impact,
                     "Instead of the rule changes: the observed edges whose verdict would change (exit 3 when one would be newly denied)");
  auto* plan_from = plan_cmd->add_option("--from", o->from_file, "With --impact: topology JSON file instead of asking the agent");
  plan_cmd->add_option("--socket", o->socket, "With --impact: agent API socket")->capture_default_str()->excludes(plan_from);
  add_since(plan_cmd, "With --impact: ");
  plan_cmd->add_flag("--json", o->json, "With --impact: machine-readable output");
  plan_cmd->callback([o] {
    if (o->impact) {
      (void)since_ns(o->since);  // usage errors before any work
      auto observed = observed_edges(*o);
      Context ctx = context(*o);
      LoadResult next_set;
      auto next = compiled_set(*o, &next_set, &ctx);
      std::optional<Ir> current;
      ImpactSide before{nullptr, nullptr, "no policy applied"};
      if (int gen = current_generation(o->state_dir); gen > 0) {
        auto ir = load_ir(o->state_dir, gen);
        if (!ir) fail(1, fmt::format("generation {} in force: {}", gen, ir.error().str()));
        current = std::move(*ir);
        before = {&*current, nullptr, fmt::format("generation {} in force", gen)};
      }
      ImpactSide after{&*next.ir, &next_set.set, fmt::format("policy directory {}", o->dir)};
      auto r = observed_impact(before, after, ctx, observed, 0);  // observed_edges() applied --since
      if (o->json) std::cout << impact_json(r).dump(2) << "\n";
      else std::cout << impact_text(r);
      if (r.newly_denied()) fail(3, "");
      return;
    }
    auto c = compiled_set(*o);
    auto b = backend(*o);
    auto p = b.plan(*c.ir);
    if (!p) fail(1, p.error().str());
    std::cout << p->text();
    if (auto m = mass_removal_of(b, *p, c); !m.empty()) std::cerr << "WARNING: " << m << "; `policy apply` refuses this without --allow-mass-removal\n";
  });

  // Semantic diff: both sides compiled with the same catalogue; exit 0 when no class changes verdict, 3 when one
  // becomes denied (so CI can gate on it, as `plan --impact` will), 4 when verdicts change but none is newly denied.
  auto diff_opts = std::make_shared<std::array<std::string, 4>>();  // A, B, --git repository, --path in it
  auto* diff_cmd = policy->add_subcommand("diff", "Which connection classes two policy sets judge differently");
  diff_cmd->add_option("A", (*diff_opts)[0], "Policy directory, or a revision with --git")->required();
  diff_cmd->add_option("B", (*diff_opts)[1], "Policy directory, or a revision with --git")->required();
  diff_cmd->add_option("--git", (*diff_opts)[2], "A and B are revisions of this Git repository");
  diff_cmd->add_option("--path", (*diff_opts)[3], "With --git: the policy directory inside the repository");
  diff_cmd->add_option("--context", o->context_file, "JSON file with the service catalogue and named networks");
  diff_cmd->add_flag("--json", o->json, "Machine-readable output");
  diff_cmd->add_flag("--impact", o->impact, "Also list the observed edges behind each class (from the agent or --from)");
  auto* diff_from = diff_cmd->add_option("--from", o->from_file, "With --impact: topology JSON file instead of asking the agent");
  diff_cmd->add_option("--socket", o->socket, "With --impact: agent API socket")->capture_default_str()->excludes(diff_from);
  add_since(diff_cmd, "With --impact: ");
  diff_cmd->callback([o, diff_opts] {
    (void)since_ns(o->since);  // usage errors before any work
    const auto& [a_arg, b_arg, repo, sub] = *diff_opts;
    std::string tmp;
    if (!repo.empty()) {
      char tmpl[] = "/tmp/hostscope-diff-XXXXXX";
      if (!mkdtemp(tmpl)) fail(2, fmt::format("temporary directory create failed: {}", std::strerror(errno)));
      tmp = tmpl;
    }
    struct Cleanup {
      std::string dir;
      ~Cleanup() {
        std::error_code ec;
        if (!dir.empty()) std::filesystem::remove_all(dir, ec);
      }
    } cleanup{tmp};
    auto side_dir = [&](const std::string& arg, const char* which) {
      if (repo.empty()) return arg;
      std::string dest = tmp + "/" + which;
      if (auto st = export_revision(repo, arg, sub, dest); !st) fail(2, st.error().str());
      return dest;
    };
    const std::string da = side_dir(a_arg, "a"), db = side_dir(b_arg, "b");
    auto ctx = context(*o);
    std::error_code ec;
    for (const auto& d : {da, db})
      if (!std::filesystem::is_directory(d, ec)) fail(2, fmt::format("policy directory {} does not exist", d));
    auto la = load_dir(da), lb = load_dir(db);
    auto ca = compile(la, ctx), cb = compile(lb, ctx);
    for (auto [c, arg] : {std::pair<const CompileResult*, const std::string*>{&ca, &a_arg}, {&cb, &b_arg}})
      if (!c->ok()) {
        print_diagnostics(c->diagnostics);
        fail(1, fmt::format("policy set {} does not validate", *arg));
      }
    auto aa = analyze(la.set, ctx), ab = analyze(lb.set, ctx);
    auto d = semantic_diff({&la.set, &aa, &*ca.ir}, {&lb.set, &ab, &*cb.ir}, ctx);
    std::optional<ImpactReport> report;
    std::optional<DiffImpact> impact;
    if (o->impact) {
      auto observed = observed_edges(*o);
      report = observed_impact({&*ca.ir, &la.set, a_arg}, {&*cb.ir, &lb.set, b_arg}, ctx, observed, 0);
      impact = attach_impact(d, *report);
    }
    const DiffImpact* ip = impact ? &*impact : nullptr;
    if (o->json)
      std::cout << diff_json(d, ip).dump(2) << "\n";
    else
      std::cout << diff_text(d, ip);
    if (d.newly_denied()) fail(3, "");
    if (!d.changes.empty()) fail(4, "");
  });

  auto* apply_cmd = policy->add_subcommand("apply", "Compile and install atomically");
  common(apply_cmd, true, true);
  apply_cmd->add_flag("--allow-mass-removal", o->allow_mass_removal,
                      "Apply even when the plan removes most rules in force while some policies select nothing here");
  apply_cmd->callback([o] {
    auto c = compiled_set(*o);
    auto b = backend(*o);
    if (!o->allow_mass_removal) {
      auto p = b.plan(*c.ir);
      if (!p) fail(1, "policy apply failed; the previous generation stays in force: " + p.error().str());
      if (auto m = mass_removal_of(b, *p, c); !m.empty())
        fail(1, "policy apply refused; nothing was changed: " + m + "; pass --allow-mass-removal to apply anyway");
    }
    auto ir = std::move(*c.ir);
    auto r = b.apply(ir);
    if (!r) fail(1, "policy apply failed; the previous generation stays in force: " + r.error().str());
    if (r->drift_repaired) std::cout << r->plan.text() << fmt::format("drift repaired: generation {} installed again\n", r->generation);
    if (r->unchanged) std::cout << fmt::format("no change: generation {} ({} iptables rules) stays in force\n", r->generation, r->rules);
    else std::cout << r->plan.text() << fmt::format("applied generation {} ({} iptables rules)\n", r->generation, r->rules);
  });

  auto* rollback_cmd = policy->add_subcommand("rollback", "Re-apply the previous generation");
  common(rollback_cmd, false, true);
  rollback_cmd->callback([o] {
    auto r = backend(*o).rollback();
    if (!r) fail(1, r.error().str());
    std::cout << r->plan.text() << fmt::format("rolled back to generation {}\n", r->generation);
  });

  auto* status_cmd = policy->add_subcommand("status", "Applied generation, per-policy and per-rule counters, drift, reconciler");
  common(status_cmd, false, true);
  auto status_policy = std::make_shared<std::string>();
  auto status_raw = std::make_shared<bool>(false);
  status_cmd->add_flag("--json", o->json, "Machine-readable output");
  status_cmd->add_option("--policy", *status_policy, "Only this policy");
  status_cmd->add_flag("--raw", *status_raw, "Every iptables rule hostscope owns with its counters, chain by chain");
  status_cmd->add_option("--socket", o->socket, "Agent API socket asked for the reconcile status")->capture_default_str();
  status_cmd->callback([o, status_policy, status_raw] {
    auto s = backend(*o).status();
    if (!s) fail(1, s.error().str());
    if (!status_policy->empty() && !s->modes.count(*status_policy))
      fail(1, fmt::format("policy {} is not in the applied generation{}", *status_policy, s->generation ? "" : " (none applied)"));
    auto rec = reconcile_status(*o);
    if (!o->json) {
      std::cout << (*status_raw ? s->raw_text() : s->text(*status_policy));
      if (rec && status_policy->empty()) std::cout << reconcile_text(*rec);
      return;
    }
    nlohmann::json j = {{"generation", s->generation}, {"source_hash", s->source_hash}, {"modes", s->modes},
                        {"drift", s->drift}, {"drift_details", s->drift_details},
                        {"audit_would_deny_packets", s->audit_would_deny_packets}, {"rules", nlohmann::json::array()}};
    j["reconcile"] = rec ? rec->to_json() : nlohmann::json(nullptr);
    j["policies"] = s->policies_json(*status_policy);
    for (const auto& c : s->counters)
      j["rules"].push_back({{"family", to_string(c.family)}, {"chain", c.chain}, {"tag", c.tag}, {"owner", c.owner},
                            {"what", c.what}, {"loc", c.loc}, {"target", c.target}, {"mode", c.mode}, {"packets", c.packets}, {"bytes", c.bytes}});
    std::cout << j.dump(2) << "\n";
  });

  auto* sync_cmd = policy->add_subcommand("sync", "Ask the running agent for a reconcile pass now; exit 1 when refused, 2 when no agent");
  sync_cmd->add_option("--socket", o->socket, "Agent API socket")->capture_default_str();
  sync_cmd->callback([o] {
    auto r = agent_request(o->socket, "policy.sync", 600000);
    if (!r) fail(2, r.error().message.find("connect failed") != std::string::npos || r.error().message.find("unknown method") != std::string::npos
                        ? r.error().str() + " (policy sync needs a running agent with a policy source)"
                        : r.error().str());
    auto pass = r->value("pass", nlohmann::json::object());
    std::string result = pass.value("result", ""), commit = pass.value("commit", ""), step = pass.value("step", "");
    std::string msg = pass.value("message", "");
    if (pass.value("drift_repaired", false)) std::cout << "drift repaired: the applied generation was re-installed\n";
    if (result == "applied") std::cout << fmt::format("applied commit {} ({})\n", commit, msg);
    else if (result == "unchanged" && step.empty()) std::cout << fmt::format("commit {} is already applied\n", commit);
    else if (result == "unchanged") std::cout << fmt::format("commit {} was refused at {}: {}\n", commit, step, msg);
    else std::cout << fmt::format("commit {} {} at {}: {}\n", commit.empty() ? "(none)" : commit, result, step, msg);
    if (result == "refused" || result == "error" || (result == "unchanged" && !step.empty())) fail(1, "");
  });

  auto* gen_cmd = policy->add_subcommand("generate", "Least-privilege policies (audit mode) and tests from the observed topology");
  common(gen_cmd, false, false);
  auto* from_opt = gen_cmd->add_option("--from", o->from_file, "Topology JSON file (hostscope.topology/v1) instead of asking the agent");
  gen_cmd->add_option("--socket", o->socket, "Agent API socket to fetch the topology from")->capture_default_str()->excludes(from_opt);
  gen_cmd->add_option("-o,--output", o->out_dir, "Write one file per policy and per test here (default: one YAML stream on stdout)");
  gen_cmd->add_flag("--force", o->force, "Overwrite existing files in the output directory");
  add_since(gen_cmd, "");
  gen_cmd->add_option("--notes-file", o->notes_file, "Write every note in full here (stderr gets one line per kind, at most 200 lines)");
  auto* cluster_flag = gen_cmd->add_flag(
      "--cluster", o->from_cluster,
      "From the whole cluster's observed traffic, read from a Prometheus scraping every node's agent (--prometheus); "
      "peers on other nodes are named by their endpoint info");
  cluster_flag->excludes(from_opt);
  gen_cmd->add_option("--prometheus", o->prometheus, "With --cluster: the Prometheus URL, http://host:port[/path]");
  gen_cmd->add_option("--window", o->cluster_window, "With --cluster: the traffic of this window (15m, 1h, 1d)")
      ->capture_default_str();
  gen_cmd->add_option("--context-out", o->context_out,
                      "With --cluster: write the other nodes' services the policies name (context JSON) here, for "
                      "the nodes' policy.context");
  gen_cmd->callback([o] {
    nlohmann::json topo;
    Context ctx;
    if (o->from_cluster) {
      if (!o->since.empty()) fail(2, "--cluster reads its window from Prometheus (--window); it does not go with --since");
      if (o->prometheus.empty()) fail(2, "--cluster needs --prometheus URL (the Prometheus scraping the agents)");
      if (!o->cluster) fail(2, "--cluster: this build has no cluster view");
      auto view = o->cluster(o->prometheus, o->cluster_window);
      if (!view) fail(1, view.error().str());
      topo = topology::to_json(view->topology);
      ctx = merge_context(context(*o), Context{view->services, {}});
      if (!o->context_out.empty()) {
        if (auto w = write_file_atomic(o->context_out, context_to_json(Context{view->services, {}}).dump(2) + "\n"); !w)
          fail(1, fmt::format("--context-out {}: {}", o->context_out, w.error().str()));
      }
      std::cerr << fmt::format("{} services named by the cluster's endpoint info{}\n", view->services.size(),
                               o->context_out.empty()
                                   ? ": the nodes that apply these policies need the other nodes' ones in their "
                                     "catalogue (policy.context; --context-out FILE writes them)"
                                   : ", written to " + o->context_out + " (the nodes' policy.context)");
    } else {
      if (!o->prometheus.empty()) fail(2, "--prometheus is read only with --cluster");
      topo = o->since.empty() ? observed_topology(*o) : topology::to_json(observed_edges(*o));
      ctx = context(*o);
    }
    auto g = generate(topo, ctx);
    if (!g) fail(1, g.error().str());
    if (!o->notes_file.empty()) {
      std::ofstream f(o->notes_file, std::ios::binary | std::ios::trunc);
      f << notes_text(g->notes);
      f.close();
      if (!f) fail(1, fmt::format("notes file {} write failed", o->notes_file));
    }
    for (const auto& line : note_summary(g->notes, o->notes_file)) std::cerr << line << "\n";
    if (o->out_dir.empty()) {
      std::cout << g->stream();
      return;
    }
    if (auto w = write_generated(*g, o->out_dir, o->force); !w) fail(1, w.error().str());
    std::cout << fmt::format("wrote {} files to {}: {} policies (mode: audit), {} test cases; {} edges used, {} left out\n",
                             g->files.size(), o->out_dir, g->policies, g->cases, g->edges_used, g->edges_skipped);
  });

  // Export: stdout carries only YAML (or the summary with -o); diagnostics and notes go to stderr.
  auto export_opts = std::make_shared<ExportOptions>();
  auto export_format = std::make_shared<std::string>();
  auto* export_cmd = policy->add_subcommand(
      "export", "The set as Kubernetes NetworkPolicy or CiliumNetworkPolicy YAML; exit 3 when something could not be exported exactly");
  common(export_cmd, true, false);
  export_cmd->add_option("--format", *export_format, "kubernetes (networking.k8s.io/v1) or cilium (cilium.io/v2)")
      ->required()
      ->check(CLI::IsMember({"kubernetes", "cilium"}));
  export_cmd->add_option("--label-key", export_opts->label_key, "Pod label that `service:` and `workload:` selectors become")->capture_default_str();
  export_cmd->add_option("-o,--output", o->out_dir, "Write one file per object here (default: one YAML stream on stdout)");
  export_cmd->add_flag("--force", o->force, "Overwrite existing files in the output directory");
  export_cmd->callback([o, export_opts, export_format] {
    export_opts->format = *export_format == "cilium" ? ExportFormat::Cilium : ExportFormat::Kubernetes;
    if (!valid_label_key(export_opts->label_key)) fail(2, fmt::format("--label-key {}: not a valid Kubernetes label key", export_opts->label_key));
    auto loaded = load(*o);
    auto ctx = context(*o);
    auto report = lint(loaded, ctx);
    if (!report.ok()) {
      print_diagnostics(report.diagnostics, std::cerr);
      fail(1, "policy set does not validate; nothing was exported");
    }
    for (const auto& d : report.diagnostics) std::cerr << d.str() << "\n";
    auto r = export_policies(loaded.set, ctx, *export_opts);
    for (const auto& n : r.notes) std::cerr << n.str() << "\n";
    if (o->out_dir.empty()) {
      std::cout << r.stream();
    } else {
      std::vector<GeneratedFile> files;
      files.reserve(r.objects.size());
      for (const auto& obj : r.objects) files.push_back({obj.name + ".yaml", obj.yaml});
      if (auto w = write_files(files, o->out_dir, o->force); !w) fail(1, w.error().str());
      std::cout << fmt::format("wrote {} files to {}\n", files.size(), o->out_dir);
    }
    if (!r.exact())
      fail(3, fmt::format("{} policies exported, {} not exported, {} note(s): not everything could be expressed exactly", r.objects.size(),
                          r.skipped, r.notes.size()));
  });

  auto* flush_cmd = policy->add_subcommand("flush", "Remove everything hostscope installed, nothing else");
  common(flush_cmd, false, true);
  flush_cmd->callback([o] {
    auto r = backend(*o).flush();
    if (!r) fail(1, r.error().str());
    std::cout << "removed hostscope chains, jump rules and ipsets\n";
  });
}

}  // namespace hostscope::policy
