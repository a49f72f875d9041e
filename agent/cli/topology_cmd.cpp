// `hostscope topology`: a snapshot of the node's service topology in table, tree, json, dot or mermaid form.
#include <unistd.h>

#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/cli/source.h"
#include "agent/topology/render.h"
#include "agent/util/clock.h"
#include "agent/util/logging.h"
#include "common/api_client.h"
#include "common/time_arg.h"

namespace hostscope::cli {

namespace {

struct TopologyOptions {
  SourceOptions source;
  std::string output = "table";
  std::string service, ns;
  uint16_t port = 0;
  double since_s = 0;
  double window_s = 5;  // embedded mode: how long to watch before the first snapshot
  bool watch = false;
  double interval_s = 2;
  // History (agent/history): --at T is the stored interval containing T, --between A B everything in [A, B).
  std::string at;
  std::vector<std::string> between;
  std::string history;  // file; "" = history.path of --config
};

// The history source for --at/--between, or nullptr when neither is given.
Result<std::unique_ptr<SnapshotSource>> history_source(const TopologyOptions& o) {
  const uint64_t now = clock_ns(CLOCK_REALTIME);
  uint64_t from = 0, to = 0;
  if (!o.at.empty()) {
    auto t = parse_time_arg(o.at, now);
    if (!t) return errorf("--at: {}", t.error().str());
    from = *t;
    to = *t + 1;
  } else {
    auto a = parse_time_arg(o.between[0], now);
    if (!a) return errorf("--between: {}", a.error().str());
    auto b = parse_time_arg(o.between[1], now);
    if (!b) return errorf("--between: {}", b.error().str());
    if (*b <= *a) return errorf("--between {} {}: the second time must be after the first", o.between[0], o.between[1]);
    from = *a;
    to = *b;
  }
  std::string path = o.history;
  if (path.empty()) {
    auto p = history_path(o.source);
    if (!p) return p.error();
    path = *p;
  }
  return open_history_source(path, from, to);
}

int run_topology(const TopologyOptions& o) {
  auto fmt_kind = topology::format_from_string(o.output);
  block_shutdown_signals();
  const bool past = !o.at.empty() || !o.between.empty();
  auto src = past ? history_source(o) : open_source(o.source);
  if (!src) {
    spdlog::error("{}", src.error().str());
    return 1;
  }
  if ((*src)->embedded()) {
    // Nothing was watching before this command started: observe for a while first.
    spdlog::info("no agent running: watching for {:.1f}s in-process", o.window_s);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.window_s);
    if (wait_for_shutdown([&] { return std::chrono::steady_clock::now() >= until; }) != 0) return 0;
  }
  bool away = false;  // --watch: the agent stopped answering; we keep retrying
  for (;;) {
    topology::SnapshotFilter f;
    f.service = o.service;
    f.ns = o.ns;
    if (o.port) f.port = o.port;
    if (o.since_s > 0 && !past) f.since_ns = clock_ns(CLOCK_REALTIME) - uint64_t(o.since_s * 1e9);
    auto snap = (*src)->snapshot(f);
    if (!snap && o.watch && !(*src)->embedded()) {
      // Like `top`: an agent that stops or restarts under a watch is waited for, not a reason to exit.
      if (!away)
        spdlog::warn("{}: {}; retrying every {:.1f}s", api::agent_gone(snap.error()) ? "the agent went away" : "snapshot failed",
                     snap.error().str(), o.interval_s);
      away = true;
      if (wait_for_shutdown([] { return true; }, std::chrono::milliseconds(int(o.interval_s * 1000))) != 0) return 0;
      continue;
    }
    if (!snap) {
      spdlog::error("{}", snap.error().str());
      return 1;
    }
    if (away) spdlog::info("the agent answers again");
    away = false;
    std::string out = topology::render(*snap, *fmt_kind);
    if (fwrite(out.data(), 1, out.size(), stdout) != out.size()) return 1;
    if (!out.empty() && out.back() != '\n') fputc('\n', stdout);
    fflush(stdout);
    if (!o.watch) return 0;
    if (wait_for_shutdown([] { return true; }, std::chrono::milliseconds(int(o.interval_s * 1000))) != 0) return 0;
  }
}

}  // namespace

void register_topology(CLI::App& app, const GlobalOptions& g, int& exit_code) {
  auto o = std::make_shared<TopologyOptions>();
  auto* cmd = app.add_subcommand("topology", "Snapshot of the node's service topology");
  cmd->add_option("-o,--output", o->output, "Format")
      ->check(CLI::IsMember({"table", "tree", "json", "dot", "mermaid"}))
      ->capture_default_str();
  cmd->add_option("--service", o->service, "Only edges with this service at either end");
  cmd->add_option("--namespace", o->ns, "Only edges with this Kubernetes namespace at either end");
  cmd->add_option("--port", o->port, "Only edges to this server port");
  cmd->add_option("--since", o->since_s, "Only edges seen in the last N seconds");
  cmd->add_flag("--watch", o->watch, "Print a new snapshot every --interval seconds");
  cmd->add_option("--interval", o->interval_s, "Seconds between snapshots with --watch")->capture_default_str();
  cmd->add_option("--window", o->window_s, "Embedded mode (no agent): seconds to observe before the snapshot")
      ->capture_default_str();
  auto* at = cmd->add_option("--at", o->at,
                              "The topology stored for the interval containing TIME (now, -15m, -2h, -7d or RFC 3339 "
                              "UTC) from the history file");
  auto* between = cmd->add_option("--between", o->between, "The stored topology added up over [A, B) (times as --at)")
                      ->expected(2)
                      ->type_name("A B");
  at->excludes(between);
  cmd->add_option("--history", o->history, "History file for --at/--between (default: history.path of --config)");
  add_source_options(cmd, o->source);
  cmd->callback([o, &exit_code] {
    if ((!o->at.empty() || !o->between.empty()) && o->watch) {
      spdlog::error("--watch shows the live topology; it does not go with --at or --between");
      exit_code = 2;
      return;
    }
    exit_code = run_topology(*o);
  });
}

}  // namespace hostscope::cli
