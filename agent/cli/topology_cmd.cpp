// `hostscope topology`: a snapshot of the node's service topology in table, tree, json, dot or mermaid form.
#include <unistd.h>

#include "agent/cli/cluster_source.h"
#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/cli/source.h"
#include "agent/history/store.h"
#include "agent/topology/diff.h"
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
  // Embedded mode: how long to watch before the first snapshot (seconds; default 5). --cluster: the window the
  // counts cover (a duration; default 1h).
  std::string window;
  ClusterOptions cluster;
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
  auto path = history_path(o.history, o.source);
  if (!path) return path.error();
  return open_history_source(*path, from, to);
}

struct DiffCliOptions {
  std::vector<std::string> windows;  // A B
  std::string since;                 // --since T: A is the window as long as [T, now) just before T, B is [T, now)
  std::string window = "1h";
  std::string history;
  std::string output = "table";
  std::string service, ns;
  uint16_t port = 0;
  topology::DiffOptions diff;
  SourceOptions source;  // --config names the history file
};

// One side of `topology diff`: "FROM..TO", or a TIME that starts a window `window` long (ending no later than now).
Result<topology::WindowSpan> diff_window(const std::string& arg, uint64_t window_ns, uint64_t now) {
  if (auto dots = arg.find(".."); dots != std::string::npos) {
    auto a = parse_time_arg(arg.substr(0, dots), now);
    if (!a) return errorf("window '{}': {}", arg, a.error().str());
    auto b = parse_time_arg(arg.substr(dots + 2), now);
    if (!b) return errorf("window '{}': {}", arg, b.error().str());
    if (*b <= *a) return errorf("window '{}': the end must be after the start", arg);
    return topology::WindowSpan{*a, *b};
  }
  auto t = parse_time_arg(arg, now);
  if (!t) return errorf("window '{}': {}", arg, t.error().str());
  // A window reaching past now ends now, so its rates are per second actually covered.
  const uint64_t end = *t < now ? std::min(now, *t + window_ns) : *t + window_ns;
  return topology::WindowSpan{*t, end};
}

int run_diff(const DiffCliOptions& o) {
  const uint64_t now = clock_ns(CLOCK_REALTIME);
  auto w = parse_duration_ns(o.window);
  if (!w) {
    spdlog::error("--window {}: expected a duration like 15m, 1h or 1d", o.window);
    return 2;
  }
  topology::WindowSpan spans[2];
  if (!o.since.empty()) {
    auto t = parse_time_arg(o.since, now);
    if (!t || *t >= now) {
      spdlog::error("--since {}: {}", o.since, t ? "must be before now" : t.error().str());
      return 2;
    }
    const uint64_t len = now - *t;
    spans[0] = {*t > len ? *t - len : 0, *t};
    spans[1] = {*t, now};
  } else if (o.windows.size() != 2) {
    spdlog::error("topology diff: give two windows A B, or --since TIME");
    return 2;
  }
  for (int i = 0; i < 2 && o.since.empty(); ++i) {
    auto s = diff_window(o.windows[size_t(i)], *w, now);
    if (!s) {
      spdlog::error("{}", s.error().str());
      return 2;
    }
    spans[i] = *s;
  }
  auto path = history_path(o.history, o.source);
  auto store = path ? history::Store::open(*path, {}, true) : Result<history::Store>(path.error());
  if (!store) {
    spdlog::error("{}", store.error().str());
    return 1;
  }
  topology::SnapshotFilter f;
  f.service = o.service;
  f.ns = o.ns;
  if (o.port) f.port = o.port;
  topology::TopologySnapshot snaps[2];
  for (int i = 0; i < 2; ++i) {
    auto s = store->topology(spans[i].from_ns, spans[i].to_ns);
    if (!s) {
      spdlog::error("{}", s.error().str());
      return 1;
    }
    snaps[i] = topology::filter(std::move(*s), f);
  }
  auto d = topology::diff_topology(snaps[0], spans[0], snaps[1], spans[1], o.diff);
  std::string out = o.output == "json" ? topology::diff_to_json(d).dump(2) + "\n" : topology::render_diff_table(d);
  return fwrite(out.data(), 1, out.size(), stdout) == out.size() ? 0 : 1;
}

// Embedded mode's --window: seconds (5, 0.5) or a duration (30s, 2m).
std::optional<double> embedded_window_s(const std::string& w) {
  if (w.empty()) return 5.0;
  if (auto d = parse_duration_ns(w)) return double(*d) / 1e9;
  char* end = nullptr;
  double v = std::strtod(w.c_str(), &end);
  if (end != w.c_str() + w.size() || !(v >= 0 && v <= 86400)) return std::nullopt;
  return v;
}

Result<std::unique_ptr<SnapshotSource>> topology_source(const TopologyOptions& o, bool past) {
  if (o.cluster.cluster) {
    ClusterOptions c = o.cluster;
    c.window = o.window;
    c.at = o.at;
    auto s = open_cluster_source(std::move(c));
    if (!s) return s.error();
    return std::unique_ptr<SnapshotSource>(std::move(*s));
  }
  return past ? history_source(o) : open_source(o.source);
}

int run_topology(const TopologyOptions& o) {
  auto fmt_kind = topology::format_from_string(o.output);
  block_shutdown_signals();
  const bool past = !o.at.empty() || !o.between.empty();
  auto window_s = o.cluster.cluster ? std::optional<double>(0) : embedded_window_s(o.window);
  if (!window_s) {
    spdlog::error("--window {}: expected seconds (5, 0.5) or a duration like 30s", o.window);
    return 2;
  }
  auto src = topology_source(o, past);
  if (!src) {
    spdlog::error("{}", src.error().str());
    return 1;
  }
  if ((*src)->embedded()) {
    // Nothing was watching before this command started: observe for a while first.
    spdlog::info("no agent running: watching for {:.1f}s in-process", *window_s);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(*window_s);
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
  cmd->add_option("--window", o->window,
                  "Embedded mode (no agent): seconds to observe before the snapshot (default 5); --cluster: the window "
                  "the counts cover, e.g. 15m, 1h, 1d (default 1h)");
  add_cluster_options(cmd, o->cluster);
  auto* at = cmd->add_option("--at", o->at,
                              "The topology stored for the interval containing TIME (now, -15m, -2h, -7d or RFC 3339 "
                              "UTC) from the history file; with --cluster: the counts over the window ending at TIME");
  auto* between = cmd->add_option("--between", o->between, "The stored topology added up over [A, B) (times as --at)")
                      ->expected(2)
                      ->type_name("A B");
  at->excludes(between);
  cmd->add_option("--history", o->history, "History file for --at/--between (default: history.path of --config)");
  add_source_options(cmd, o->source);

  auto d = std::make_shared<DiffCliOptions>();
  auto* diff = cmd->add_subcommand("diff", "What changed between two windows of the node's topology history");
  auto* ab = diff->add_option("windows", d->windows,
                              "A and B, the windows to compare: TIME (a window --window long from TIME) or FROM..TO; times as --at")
                  ->expected(0, 2)
                  ->type_name("A B");
  diff->add_option("--since", d->since, "Compare [TIME, now) with the window as long just before TIME")->excludes(ab);
  diff->add_option("--window", d->window, "Length of a window given as one TIME")->capture_default_str();
  diff->add_option("--history", d->history, "History file (default: history.path of --config)");
  diff->add_option("--config", d->source.config, "Agent config naming the history file")->capture_default_str();
  diff->add_option("-o,--output", d->output, "Format")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  diff->add_option("--service", d->service, "Only edges with this service at either end");
  diff->add_option("--namespace", d->ns, "Only edges with this Kubernetes namespace at either end");
  diff->add_option("--port", d->port, "Only edges to this server port");
  diff->add_option("--rate-change", d->diff.rate_change, "Relative change of connection attempts/s that counts")
      ->check(CLI::Range(0.01, 100.0))
      ->capture_default_str();
  diff->add_option("--failure-change", d->diff.failure_change, "Change of the failure ratio (0..1) that counts")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  diff->add_option("--latency-factor", d->diff.latency_factor, "Factor by which p90 connect latency must change")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  diff->add_option("--min-attempts", d->diff.min_attempts, "Attempts the busier window needs for rate and latency changes")
      ->capture_default_str();
  diff->callback([d, &exit_code] { exit_code = run_diff(*d); });

  cmd->callback([o, diff, &exit_code] {
    if (diff->parsed()) return;
    if (o->cluster.cluster && (!o->between.empty() || o->source.embedded_only)) {
      spdlog::error("--cluster reads Prometheus; it does not go with --between or --embedded (--at: the window ends "
                    "then)");
      exit_code = 2;
      return;
    }
    if (!o->cluster.cluster && !o->cluster.prometheus.empty()) {
      spdlog::error("--prometheus is read only with --cluster");
      exit_code = 2;
      return;
    }
    if ((!o->at.empty() || !o->between.empty()) && o->watch) {
      spdlog::error("--watch shows the live topology; it does not go with --at or --between");
      exit_code = 2;
      return;
    }
    exit_code = run_topology(*o);
  });
}

}  // namespace hostscope::cli
