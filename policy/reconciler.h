#pragma once
// Keeps the node's rules in line with a policy source (Git branch or directory). One pass:
//   drift check (repair the applied generation if our chains were changed or removed)
//   fetch -> verify (ancestry, signature) -> stage -> lint -> test (PolicyTest) -> plan (failsafe check) -> apply
// A commit that fails a step is refused: the generation in force stays, and commit, step and message are logged
// (warn) and recorded in ReconcileStatus, persisted to <state_dir>/reconcile.json after every pass. Nothing in
// a pass ever flushes rules; a restarted reconciler reads reconcile.json and does not re-apply the same commit.
//
// A refused commit is not tried again until the tip changes, except when it was refused at a step that reads the
// service catalogue (lint, test) and the catalogue has changed since (a service started, policy.context grew): then
// it is tried again, no sooner than kRetryMin after the refusal, the wait doubling with each further refusal of the
// same commit up to kRetryMax (10 s, 20 s, 40 s, ... 10 min), so a catalogue that changes all the time costs at most
// one evaluation per wait.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/topology_model.h"
#include "policy/command.h"
#include "policy/context.h"
#include "policy/git_source.h"
#include "policy/iptables.h"
#include "policy/reconcile_config.h"
#include "policy/reconcile_status.h"

namespace hostscope::policy {

struct PassResult {
  std::string result;  // applied | refused | error | unchanged
  std::string commit, step, message;
  bool drift_repaired = false;
  nlohmann::json to_json() const;
};

class Reconciler {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  static constexpr std::chrono::seconds kRetryMin{10}, kRetryMax{600};
  // `context` supplies the service catalogue and named networks at each pass (default: empty).
  Reconciler(ReconcileConfig cfg, std::function<Context()> context = {}, std::shared_ptr<CommandRunner> runner = nullptr);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  // One pass now (serialised with the background thread).
  PassResult pass();
  ReconcileStatus status() const;
  // Backend facts for `policy status` (generation, drift, rule count); errors as {"error": ...}.
  nlohmann::json backend_summary();

  // Background passes every poll_seconds until stop(); stop() interrupts the wait and a running fetch.
  void start();
  void stop();

  static std::string status_path(const std::string& state_dir);
  // Replaces the steady clock the retry backoff reads (tests).
  void set_clock(Clock c) { clock_ = std::move(c); }
  // The traffic the node observed (the agent's topology), for the `policy.impact` gate; nullopt when unavailable.
  // Without it the gate is skipped.
  using ObservedFn = std::function<std::optional<topology::TopologySnapshot>()>;
  void set_observed(ObservedFn f) { observed_ = std::move(f); }

 private:
  struct Candidate;
  bool repair_drift();
  PassResult attempt();
  PassResult refuse(const std::string& commit, const std::string& step, const std::string& message, bool error);
  void persist();
  std::string staging_dir() const;

  ReconcileConfig cfg_;
  std::function<Context()> context_;
  ObservedFn observed_;
  std::shared_ptr<CommandRunner> run_;
  IptablesBackend backend_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<GitSource> git_;

  std::mutex pass_mu_;          // one pass at a time
  mutable std::mutex st_mu_;    // guards st_
  ReconcileStatus st_;
  std::string refused_;         // refused this run: not tried again until the tip changes (a restart retries once)
  // ... or until the catalogue differs from the one it was refused with (steps that read it), after the backoff.
  std::string refused_catalogue_, pass_catalogue_;
  bool refused_needs_catalogue_ = false;
  int catalogue_retries_ = 0;  // refusals of refused_ after a catalogue change
  std::chrono::steady_clock::time_point retry_at_{};
  Clock clock_ = [] { return std::chrono::steady_clock::now(); };

  std::mutex wait_mu_;
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace hostscope::policy
