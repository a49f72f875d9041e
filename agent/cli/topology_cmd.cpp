// `hostscope topology`: a snapshot of the node's service topology in table, tree, json, dot or mermaid form.
#include <unistd.h>

#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/cli/source.h"
#include "agent/topology/render.h"
#include "agent/util/clock.h"
#include "agent/util/logging.h"
#include "common/api_client.h"

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
};

int run_topology(const TopologyOptions& o) {
  auto fmt_kind = topology::format_from_string(o.output);
  block_shutdown_signals();
  auto src = open_source(o.source);
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
    if (o.since_s > 0) f.since_ns = clock_ns(CLOCK_REALTIME) - uint64_t(o.since_s * 1e9);
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
  add_source_options(cmd, o->source);
  cmd->callback([o, &exit_code] { exit_code = run_topology(*o); });
}

}  // namespace hostscope::cli
