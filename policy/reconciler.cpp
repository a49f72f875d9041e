#include "policy/reconciler.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "policy/analysis.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/hash.h"
#include "policy/impact.h"
#include "policy/ir_json.h"
#include "policy/loader.h"
#include "policy/state_file.h"

namespace hostscope::policy {
namespace fs = std::filesystem;
namespace {

int64_t now() { return static_cast<int64_t>(std::time(nullptr)); }

std::string short_id(const std::string& c) { return c.size() > 12 ? c.substr(0, 12) : c; }

// Copies the policy files of a plain directory into `dest` and returns the content hash standing in for a commit.
// An entry named like a policy file that cannot be read whole (dangling symlink, FIFO, directory, ...) fails the
// stage: the set is never applied without it.
Result<std::string> stage_directory(const std::string& src, const std::string& dest) {
  std::error_code ec;
  if (!fs::is_directory(src, ec)) return Error{fmt::format("policy directory {} does not exist", src)};
  std::vector<fs::path> files;
  for (fs::directory_iterator it(src, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (is_policy_file_name(it->path().filename().string())) files.push_back(it->path());
  if (ec) return Error{fmt::format("policy directory {} read failed: {}", src, ec.message())};
  if (files.size() > kMaxFiles) return Error{fmt::format("policy directory {} has more than {} files", src, kMaxFiles)};
  std::sort(files.begin(), files.end());
  if (!fs::create_directories(dest, ec) || ec) return Error{fmt::format("staging directory {} create failed: {}", dest, ec ? ec.message() : "exists")};
  Hasher h;
  for (const auto& f : files) {
    auto text = read_policy_file(f.string());
    if (!text) return Error{fmt::format("policy file {}: {}", f.string(), text.error().str())};
    if (text->size() > kMaxFileBytes) return Error{fmt::format("policy file {} is larger than {} bytes", f.string(), kMaxFileBytes)};
    h.add(f.filename().string()).add(*text);
    std::ofstream out(fs::path(dest) / f.filename(), std::ios::binary);
    out << *text;
    out.flush();
    if (!out) return Error{fmt::format("staging file {} write failed", (fs::path(dest) / f.filename()).string())};
  }
  return h.hex(16);
}

// Up to five diagnostics (errors first), with file names as they are in the repository.
std::string summarize(Diagnostics d, const std::string& prefix, Severity only) {
  std::vector<std::string> lines;
  size_t total = 0;
  for (auto& x : d) {
    if (x.severity != only) continue;
    ++total;
    if (lines.size() < 5) {
      if (!prefix.empty()) x.loc.file = prefix + "/" + x.loc.file;
      lines.push_back(x.str());
    }
  }
  std::string s;
  for (const auto& l : lines) s += (s.empty() ? "" : "; ") + l;
  if (total > lines.size()) s += fmt::format("; and {} more", total - lines.size());
  return s;
}

// Enforce-mode policies that switch failsafe off and deny something in that direction would drop failsafe ports.
std::string failsafe_violation(const PolicySet& set, const std::string& prefix) {
  for (const auto& p : set.policies) {
    if (p.failsafe || p.mode != Mode::Enforce) continue;
    for (auto dir : {Direction::Ingress, Direction::Egress}) {
      bool denies = p.default_action(dir) == Action::Deny || p.default_action(dir) == Action::Reject;
      for (const auto& r : p.rules(dir)) denies |= r.action == Action::Deny || r.action == Action::Reject;
      if (!denies) continue;
      std::string ports;
      for (const auto& fp : failsafe_ports(dir)) ports += fmt::format("{}{}/{}", ports.empty() ? "" : " ", to_string(fp.proto), fp.port);
      auto loc = p.failsafe_loc;
      if (!prefix.empty()) loc.file = prefix + "/" + loc.file;
      return fmt::format("{}: policy '{}' sets failsafe: false in enforce mode and denies {} traffic: it would drop failsafe ports "
                         "({}); set policy.allow_failsafe_off in the agent config to allow this",
                         loc.str(), p.name, to_string(dir), ports);
    }
  }
  return "";
}

}  // namespace

nlohmann::json PassResult::to_json() const {
  return {{"result", result}, {"commit", commit}, {"step", step}, {"message", message}, {"drift_repaired", drift_repaired}};
}

std::string Reconciler::status_path(const std::string& state_dir) { return (fs::path(state_dir) / "reconcile.json").string(); }

IptablesOptions iptables_options(const ReconcileConfig& c) {
  IptablesOptions o;
  o.variant = c.iptables;
  o.state_dir = c.state_dir;
  o.ipv6 = c.ipv6;
  if (!c.netns.empty()) o.command_prefix = {"ip", "netns", "exec", c.netns};
  return o;
}

Reconciler::Reconciler(ReconcileConfig cfg, std::function<Context()> context, std::shared_ptr<CommandRunner> runner)
    : cfg_(std::move(cfg)),
      context_(std::move(context)),
      run_(runner ? std::move(runner) : make_process_runner()),
      backend_(iptables_options(cfg_), run_) {
  if (cfg_.kind == ReconcileConfig::Kind::Git) git_ = std::make_unique<GitSource>(cfg_.git, cfg_.work_dir, &stopping_, run_);
  std::ifstream f(status_path(cfg_.state_dir));
  if (f) {
    try {
      st_ = ReconcileStatus::from_json(nlohmann::json::parse(f));
    } catch (const nlohmann::json::exception& e) {
      spdlog::warn("policy: {} unreadable ({}); starting without a record of the applied commit", status_path(cfg_.state_dir), e.what());
      st_ = {};
    }
  }
  st_.attempts.clear();  // counters are per agent run
  st_.passes = 0;
  if (!st_.source.empty() && st_.source != cfg_.describe()) {
    // Another source: its commits are not comparable with the recorded one. The rules in force stay until the
    // new source's first good commit replaces them.
    spdlog::info("policy: source changed from '{}' to '{}'", st_.source, cfg_.describe());
    st_.applied_commit.clear();
    st_.applied_commit_unix = 0;
    st_.last_attempt_commit.clear();
    st_.last_result.clear();
  }
  st_.source = cfg_.describe();
}

Reconciler::~Reconciler() { stop(); }

ReconcileStatus Reconciler::status() const {
  std::lock_guard l(st_mu_);
  return st_;
}

std::string Reconciler::staging_dir() const { return (fs::path(cfg_.state_dir) / "staging").string(); }

void Reconciler::persist() {
  nlohmann::json j;
  {
    std::lock_guard l(st_mu_);
    j = st_.to_json();
  }
  std::error_code ec;
  fs::create_directories(cfg_.state_dir, ec);
  if (auto r = write_file_atomic(status_path(cfg_.state_dir), j.dump(1) + "\n"); !r)
    spdlog::warn("policy: {}; the status on disk is stale", r.error().str());
}

bool Reconciler::repair_drift() {
  int gen;
  {
    std::lock_guard l(st_mu_);
    gen = st_.generation;
  }
  if (gen == 0) return false;  // nothing applied by us yet
  auto s = backend_.status();
  if (!s) {
    spdlog::warn("policy: drift check failed: {}", s.error().str());
    return false;
  }
  if (s->generation == gen && !s->drift) return false;
  std::string details;
  for (const auto& d : s->drift_details) details += (details.empty() ? "" : "; ") + d;
  if (s->generation != gen) details = fmt::format("generation {} in force instead of {}{}{}", s->generation, gen, details.empty() ? "" : "; ", details);
  auto r = backend_.reinstall(gen);
  if (!r) {
    spdlog::warn("policy: drift detected ({}) but re-installing generation {} failed: {}", details, gen, r.error().str());
    return false;
  }
  spdlog::warn("policy: drift repaired: re-installed generation {} ({})", gen, details);
  std::lock_guard l(st_mu_);
  st_.drift_repairs++;
  st_.last_drift_unix = now();
  return true;
}

PassResult Reconciler::refuse(const std::string& commit, const std::string& step, const std::string& message, bool error) {
  PassResult r{error ? "error" : "refused", commit, step, message, false};
  if (error) spdlog::warn("policy: commit {} not applied: {} failed: {}", commit.empty() ? "(none)" : short_id(commit), step, message);
  else spdlog::warn("policy: commit {} refused at {}: {}", short_id(commit), step, message);
  std::lock_guard l(st_mu_);
  if (!error) {
    catalogue_retries_ = commit == refused_ ? catalogue_retries_ + 1 : 0;
    refused_ = commit;
    refused_catalogue_ = pass_catalogue_;
    refused_needs_catalogue_ = step == "lint" || step == "test" || step == "select";
    retry_at_ = clock_() + std::min(kRetryMax, kRetryMin * (int64_t{1} << std::min(catalogue_retries_, 16)));
  }
  if (!commit.empty()) st_.last_attempt_commit = commit;
  st_.last_attempt_unix = now();
  st_.last_result = r.result;
  st_.last_step = step;
  st_.last_error = message;
  st_.last_warning.clear();
  return r;
}

PassResult Reconciler::attempt() {
  std::error_code ec;
  auto staging = staging_dir();
  fs::remove_all(staging, ec);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code e;
      fs::remove_all(dir, e);
    }
  } cleanup{staging};
  fs::create_directories(cfg_.state_dir, ec);

  std::string commit;
  int64_t commit_time = 0;
  std::string applied;
  // The catalogue of this pass, read once: what a refusal is recorded with and what lint and test use. A context
  // file that cannot be read stops the pass (rules stay): without it most subjects would select nothing.
  Context ctx = context_ ? context_() : Context{};
  if (!cfg_.context_file.empty()) {
    auto file = load_context_file(cfg_.context_file);
    if (!file) return refuse("", "context", file.error().str(), true);
    ctx = merge_context(std::move(ctx), *file);
  }
  pass_catalogue_ = context_hash(ctx);
  if (git_) {
    auto tip = git_->fetch();
    if (!tip) {
      if (stopping_) return {"unchanged", "", "fetch", "stopping", false};
      return refuse("", "fetch", tip.error().str(), true);
    }
    if (git_->recloned_last_fetch()) spdlog::warn("policy: git working copy {} was unusable and has been cloned again", cfg_.work_dir);
    commit = tip->id;
    commit_time = tip->time;
  } else {
    auto h = stage_directory(cfg_.directory, staging);
    if (!h) return refuse("", "stage", h.error().str(), true);
    commit = *h;
  }
  {
    std::lock_guard l(st_mu_);
    applied = st_.applied_commit;
    // An applied commit with policies held in audit (policy.impact: audit-first) is tried again: the impact check
    // below enforces them once no observed edge would be newly denied.
    if (commit == applied && st_.audit_first.empty()) {
      if (st_.last_result == "error" && st_.last_step == "fetch") {  // the source is back and nothing changed
        st_.last_attempt_commit = commit;
        st_.last_result = "applied";
        st_.last_step.clear();
        st_.last_error.clear();
      }
      return {"unchanged", commit, "", "", false};
    }
    if (commit == refused_ && commit == st_.last_attempt_commit && st_.last_result == "refused") {
      if (!refused_needs_catalogue_ || pass_catalogue_ == refused_catalogue_)
        return {"unchanged", commit, st_.last_step, "already refused: " + st_.last_error, false};
      auto wait = std::chrono::ceil<std::chrono::seconds>(retry_at_ - clock_()).count();
      if (wait > 0)
        return {"unchanged", commit, st_.last_step,
                fmt::format("already refused: {} (the service catalogue changed; tried again in {} s)", st_.last_error, wait), false};
      spdlog::info("policy: the service catalogue changed since commit {} was refused at {}; trying it again", short_id(commit),
                   st_.last_step);
    }
  }

  if (git_) {
    if (!applied.empty() && !cfg_.git.follow_force_push) {
      auto d = git_->descends_from(commit, applied);
      if (!d) return refuse(commit, "verify", d.error().str(), true);
      if (!*d)
        return refuse(commit, "verify",
                      fmt::format("commit {} does not descend from the applied commit {}: the history of branch {} was rewritten "
                                  "(set follow_force_push to follow rewrites)",
                                  commit, applied, cfg_.git.branch),
                      false);
    }
    if (!cfg_.git.allowed_signers_file.empty())
      if (auto v = git_->verify_signature(commit); !v) return refuse(commit, "verify", v.error().str(), false);
    if (auto x = git_->export_tree(commit, staging); !x) {
      bool missing = x.error().message.find("has no directory") != std::string::npos || x.error().message.find("is not a directory") != std::string::npos ||
                     x.error().message.find("larger than") != std::string::npos || x.error().message.find("more than") != std::string::npos ||
                     x.error().message.find("is not a regular file") != std::string::npos;
      return refuse(commit, "stage", x.error().str(), !missing);
    }
  }

  const std::string prefix = git_ ? cfg_.git.directory : "";
  auto loaded = load_dir(staging);
  auto report = lint(loaded, ctx);
  if (!report.ok()) return refuse(commit, "lint", summarize(report.diagnostics, prefix, Severity::Error), false);
  auto compiled = compile(loaded, ctx);
  if (!compiled.ok()) return refuse(commit, "lint", summarize(compiled.diagnostics, prefix, Severity::Error), false);
  if (auto w = summarize(report.diagnostics, prefix, Severity::Warning); !w.empty()) spdlog::info("policy: commit {} lint warnings: {}", short_id(commit), w);

  std::string failed;
  size_t nfailed = 0, ncases = 0;
  for (const auto& t : run_policy_tests(loaded.set, *compiled.ir, ctx)) {
    ++ncases;
    if (t.passed) continue;
    if (++nfailed <= 5) {
      auto loc = t.loc;
      if (!prefix.empty()) loc.file = prefix + "/" + loc.file;
      failed += fmt::format("{}{}: {}: {}", failed.empty() ? "" : "; ", loc.str(), t.case_name, t.detail);
    }
  }
  if (nfailed) return refuse(commit, "test", fmt::format("{} of {} PolicyTest cases failed: {}", nfailed, ncases, failed), false);

  if (!cfg_.allow_failsafe_off)
    if (auto v = failsafe_violation(loaded.set, prefix); !v.empty()) return refuse(commit, "plan", v, false);
  auto plan = backend_.plan(*compiled.ir);
  if (!plan) return refuse(commit, "plan", plan.error().str(), true);
  if (!cfg_.allow_mass_removal)
    if (auto in_force = backend_.status(); in_force)
      if (auto m = mass_removal(*plan, policy_rules_in_force(*in_force), compiled.unselected, loaded.set.policies.size(), prefix); !m.empty())
        return refuse(commit, "select", m + "; or set policy.allow_mass_removal to apply anyway", false);

  // Observed traffic the new set would newly deny (policy.impact): refused, or logged and recorded, before the kernel
  // is touched.
  std::string impact_note;
  std::vector<std::string> audit_first;  // policies this pass applies in audit mode first
  bool impact_checked = false;
  if (cfg_.impact != ReconcileConfig::Impact::Off && observed_)
    if (auto observed = observed_()) {
      impact_checked = true;
      std::optional<Ir> current;
      ImpactSide before{nullptr, nullptr, "no policy applied"};
      if (int gen = current_generation(cfg_.state_dir); gen > 0)
        if (auto ir = load_ir(cfg_.state_dir, gen)) {
          current = std::move(*ir);
          before = {&*current, nullptr, fmt::format("generation {}", gen)};
        }
      auto impact = observed_impact(before, {&*compiled.ir, &loaded.set, "commit " + short_id(commit)}, ctx, *observed);
      if (impact.newly_denied()) {
        impact_note = impact_summary(impact, 3);
        if (cfg_.impact == ReconcileConfig::Impact::Refuse)
          return refuse(commit, "impact", impact_note + "; set policy.impact: warn to apply anyway", false);
        if (cfg_.impact == ReconcileConfig::Impact::AuditFirst) {
          std::set<std::string> names;
          for (const auto& c : impact.changes)
            if (c.newly_denied()) {
              if (c.denied_by.empty())
                return refuse(commit, "impact", impact_note + "; hostscope's own rules deny some of them, so audit-first cannot hold them back", false);
              names.insert(c.denied_by);
            }
          for (auto& p : loaded.set.policies)
            if (names.count(p.name)) p.mode = Mode::Audit;
          compiled = compile(loaded, ctx);
          if (!compiled.ok()) return refuse(commit, "impact", summarize(compiled.diagnostics, prefix, Severity::Error), false);
          audit_first.assign(names.begin(), names.end());
          impact_note += fmt::format("; policies {} applied in audit mode first (policy.impact: audit-first)", fmt::join(audit_first, ", "));
          spdlog::warn("policy: commit {}: {}", short_id(commit), impact_note);
        } else {
          spdlog::warn("policy: commit {}: {} (policy.impact: warn, applying)", short_id(commit), impact_note);
        }
      }
    }
  bool promoting = false;
  {
    std::lock_guard l(st_mu_);
    if (commit == applied && !st_.audit_first.empty()) {
      // Enforcing what audit-first held back needs evidence: without observed traffic the audit stays.
      if (!impact_checked || !audit_first.empty())
        return {"unchanged", commit, "", impact_checked ? "policies stay in audit: " + impact_note
                                                        : "policies stay in audit: no observed traffic to check", false};
      promoting = true;
    }
  }
  if (promoting) spdlog::info("policy: commit {}: no observed edge would be newly denied any more; enforcing the policies held in audit", short_id(commit));

  auto rep = backend_.apply(*compiled.ir);
  if (!rep) return refuse(commit, "apply", rep.error().str() + "; the previous generation stays in force", true);
  std::string message = fmt::format("generation {}", rep->generation);
  if (rep->unchanged) {
    message = fmt::format("no change: generation {} kept", rep->generation);
    spdlog::info("policy: commit {} changes no rule; generation {} stays in force", short_id(commit), rep->generation);
  } else {
    spdlog::info("policy: applied commit {} as generation {} ({} iptables rules, {} chains changed, {} PolicyTest cases passed)", short_id(commit),
                 rep->generation, rep->rules, rep->plan.chains.size(), ncases);
  }
  std::lock_guard l(st_mu_);
  st_.generation = rep->generation;
  st_.applied_commit = commit;
  st_.applied_unix = now();
  st_.applied_commit_unix = commit_time;
  st_.last_attempt_commit = commit;
  st_.last_attempt_unix = st_.applied_unix;
  st_.last_result = "applied";
  st_.last_step.clear();
  st_.last_error.clear();
  st_.last_warning = impact_note;
  st_.audit_first = audit_first;
  if (!impact_note.empty()) message += "; " + impact_note;
  return {"applied", commit, "", message, false};
}

PassResult Reconciler::pass() {
  std::lock_guard l(pass_mu_);
  // An apply the agent (or a CLI) was killed in is finished or undone before anything else (logged by the backend).
  if (auto r = backend_.recover(); !r) spdlog::warn("policy: {}", r.error().str());
  bool repaired = repair_drift();
  PassResult r = attempt();
  r.drift_repaired = repaired;
  {
    std::lock_guard s(st_mu_);
    st_.passes++;
    if (r.result != "unchanged") st_.attempts[r.result]++;
  }
  persist();
  return r;
}

nlohmann::json Reconciler::backend_summary() {
  auto s = backend_.status();
  if (!s) return {{"error", s.error().str()}};
  return {{"generation", s->generation},
          {"source_hash", s->source_hash},
          {"drift", s->drift},
          {"drift_details", s->drift_details},
          {"rules", s->counters.size()},
          {"audit_would_deny_packets", s->audit_would_deny_packets}};
}

void Reconciler::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    while (!stopping_) {
      pass();
      std::unique_lock l(wait_mu_);
      wake_.wait_for(l, std::chrono::seconds(cfg_.poll_seconds), [this] { return stopping_.load(); });
    }
  });
}

void Reconciler::stop() {
  {
    std::lock_guard l(wait_mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace hostscope::policy
