// `hostscope top`: a full-screen live view of the node's service edges (ncurses). When stdout is not a terminal
// it prints plain periodic snapshots instead.
#include <ncurses.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "agent/cli/cluster_source.h"
#include "agent/cli/commands.h"
#include "agent/cli/signals.h"
#include "agent/cli/source.h"
#include "agent/cli/top_view.h"
#include "agent/events/format.h"
#include "agent/util/clock.h"
#include "agent/util/logging.h"
#include "common/time_arg.h"

namespace hostscope::cli {

namespace {

struct TopOptions {
  SourceOptions source;
  double interval_s = 1.0;
  std::string sort = "rate";
  std::string filter;
  uint64_t iterations = 0;  // 0: until quit
  // --replay A [--until B] [--step D]: the history stepped through instead of the live topology.
  std::string replay, until = "now", step = "1m", history;
  ClusterOptions cluster{false, "", "", "2m"};  // --cluster: rates from Prometheus rate() over cluster.rate_window
};

Result<std::unique_ptr<SnapshotSource>> top_source(const TopOptions& o) {
  if (o.cluster.cluster) {
    auto s = open_cluster_source(o.cluster);
    if (!s) return s.error();
    return std::unique_ptr<SnapshotSource>(std::move(*s));
  }
  if (o.replay.empty()) return open_source(o.source);
  const uint64_t now = clock_ns(CLOCK_REALTIME);
  auto from = parse_time_arg(o.replay, now);
  if (!from) return errorf("--replay: {}", from.error().str());
  auto to = parse_time_arg(o.until, now);
  if (!to) return errorf("--until: {}", to.error().str());
  if (*to <= *from) return errorf("--until {} is not after --replay {}", o.until, o.replay);
  auto step = parse_duration_ns(o.step);
  if (!step) return errorf("--step {}: expected a duration like 1m, 10m or 1h", o.step);
  auto path = history_path(o.history, o.source);
  if (!path) return path.error();
  return open_replay_source(*path, *from, *to, *step);
}

SortKey sort_key(const std::string& s) {
  if (s == "bytes") return SortKey::Bytes;
  if (s == "failures") return SortKey::Failures;
  if (s == "latency") return SortKey::Latency;
  return SortKey::Rate;
}

std::string status_line(const nlohmann::json& h, const std::string& src) {
  if (h.contains("history")) return "source: " + src;  // a replay: no hooks or counters of a live agent
  if (h.value("source", "") == "prometheus") return fmt::format("source: {} | nodes: {}", src, h.value("nodes", 0));
  auto k = h.value("kernel", nlohmann::json::object());
  uint64_t lost = k.value("lost_ringbuf", uint64_t(0)) + k.value("lost_reentry", uint64_t(0));
  auto t = h.value("topology", nlohmann::json::object());
  return fmt::format("source: {} | hooks: {} | events: {} | lost: {} | evicted edges: {} | degraded: {}", src,
                     h.value("attach_mode", std::string("?")), h.value("events_delivered", uint64_t(0)), lost,
                     t.value("edges_evicted", uint64_t(0)), h.value("degraded", nlohmann::json::array()).size());
}

// The cluster source's rates (Prometheus rate()); empty for the other sources, whose rates are differences.
RateLookup source_rates(SnapshotSource& src) {
  auto* c = dynamic_cast<ClusterSource*>(&src);
  if (!c) return {};
  return [c](const topology::EdgeSnapshot& e, double& conn_per_s, double& bytes_per_s) {
    auto it = c->rates().find({topology::node_id(e.client), topology::node_id(e.server), e.port});
    if (it == c->rates().end()) return;
    conn_per_s = it->second.open_per_s;
    bytes_per_s = it->second.bytes_per_s;
  };
}

// Plain periodic snapshots for pipes and logs.
int run_plain(SnapshotSource& src, const TopOptions& o) {
  TopQuery q{sort_key(o.sort), o.filter};
  const RateLookup rates = source_rates(src);
  std::optional<topology::TopologySnapshot> prev;
  uint64_t n = 0;
  for (;;) {
    auto snap = src.snapshot({});
    if (!snap) {
      spdlog::error("{}", snap.error().str());
      return 1;
    }
    auto rows = build_rows(prev ? &*prev : nullptr, *snap, q, rates);
    auto h = src.health();
    fmt::memory_buffer b;
    events::append_rfc3339(b, snap->taken_ns ? snap->taken_ns : clock_ns(CLOCK_REALTIME));
    fmt::print("--- {} {} edges | {}\n{}\n", std::string_view(b.data(), b.size()), rows.size(),
               h ? status_line(*h, src.describe()) : h.error().str(), header_line(140));
    for (auto& l : format_rows(rows, 140)) fmt::print("{}\n", l);
    std::fflush(stdout);
    prev = std::move(*snap);
    if (o.iterations && ++n >= o.iterations) return 0;
    if (h && h->value("replay_done", false)) return 0;  // a replay printed its last step
    if (wait_for_shutdown([] { return true; }, std::chrono::milliseconds(int(o.interval_s * 1000))) != 0) return 0;
  }
}

const char* kHelp[] = {
    "hostscope top - live service edges of this node",
    "",
    "  r  sort by connection rate      b  sort by bytes/s",
    "  f  sort by failures             l  sort by p99 connect latency",
    "  /  filter (service, namespace or port; empty clears)",
    "  p  pause / resume               h  this help",
    "  q  quit",
    "",
    "press any key",
};

int run_curses(SnapshotSource& src, const TopOptions& o) {
  initscr();
  cbreak();
  noecho();
  keypad(stdscr, TRUE);
  curs_set(0);
  timeout(100);
  TopQuery q{sort_key(o.sort), o.filter};
  const RateLookup rates = source_rates(src);
  std::optional<topology::TopologySnapshot> prev, cur;
  std::string status, error;
  bool paused = false, help = false, editing = false;
  std::string edit;
  auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
  uint64_t n = 0;
  sigset_t pending;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (!paused && now - last >= std::chrono::duration<double>(o.interval_s)) {
      last = now;
      auto s = src.snapshot({});
      if (s) {
        prev = std::move(cur);
        cur = std::move(*s);
        error.clear();
      } else {
        error = s.error().str();
      }
      auto h = src.health();
      status = h ? status_line(*h, src.describe()) : h.error().str();
      if (o.iterations && ++n > o.iterations) break;
    }
    erase();
    int rows_n = LINES, cols = COLS;
    if (help) {
      for (int i = 0; i < int(std::size(kHelp)) && i < rows_n; i++) mvaddstr(i, 0, kHelp[i]);
    } else {
      auto rows = cur ? build_rows(prev ? &*prev : nullptr, *cur, q, rates) : std::vector<TopRow>{};
      std::string title = fmt::format("hostscope top | {} edges | sort: {} | filter: {}{} | h help, q quit", rows.size(),
                                      to_string(q.sort), q.filter.empty() ? "-" : q.filter, paused ? " | PAUSED" : "");
      attron(A_BOLD);
      mvaddnstr(0, 0, title.c_str(), cols);
      attroff(A_BOLD);
      mvaddnstr(1, 0, (error.empty() ? status : "error: " + error).c_str(), cols);
      attron(A_REVERSE);
      std::string hdr = header_line(size_t(cols));
      hdr.resize(size_t(cols), ' ');
      mvaddnstr(2, 0, hdr.c_str(), cols);
      attroff(A_REVERSE);
      auto lines = format_rows(rows, size_t(cols));
      for (int i = 0; i < int(lines.size()) && 3 + i < rows_n - 1; i++) mvaddnstr(3 + i, 0, lines[size_t(i)].c_str(), cols);
      if (editing) mvaddnstr(rows_n - 1, 0, ("filter: " + edit + "_").c_str(), cols);
    }
    refresh();
    // SIGINT/SIGTERM are blocked (and waited for by nobody else here): check for them between frames.
    sigpending(&pending);
    if (sigismember(&pending, SIGINT) || sigismember(&pending, SIGTERM)) break;
    int ch = getch();
    if (ch == ERR) continue;
    if (help) {
      help = false;
      continue;
    }
    if (editing) {
      if (ch == '\n' || ch == KEY_ENTER) {
        q.filter = edit;
        editing = false;
      } else if (ch == 27) {
        editing = false;
      } else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
        if (!edit.empty()) edit.pop_back();
      } else if (ch >= 32 && ch < 127 && edit.size() < 64) {
        edit.push_back(char(ch));
      }
      continue;
    }
    switch (ch) {
      case 'q': case 'Q': endwin(); return 0;
      case 'r': q.sort = SortKey::Rate; break;
      case 'b': q.sort = SortKey::Bytes; break;
      case 'f': q.sort = SortKey::Failures; break;
      case 'l': q.sort = SortKey::Latency; break;
      case 'p': case ' ': paused = !paused; break;
      case 'h': case '?': help = true; break;
      case '/': editing = true; edit = q.filter; break;
      default: break;
    }
  }
  endwin();
  return 0;
}

}  // namespace

void register_top(CLI::App& app, const GlobalOptions& g, int& exit_code) {
  auto o = std::make_shared<TopOptions>();
  auto* cmd = app.add_subcommand("top", "Live view of the node's service topology (full screen on a terminal)");
  cmd->add_option("--interval", o->interval_s, "Refresh interval in seconds")->capture_default_str();
  cmd->add_option("--sort", o->sort, "Initial sort")->check(CLI::IsMember({"rate", "bytes", "failures", "latency"}))->capture_default_str();
  cmd->add_option("--filter", o->filter, "Initial filter: service, namespace or port");
  cmd->add_option("--iterations", o->iterations, "Stop after this many refreshes (0: until quit)");
  cmd->add_option("--replay", o->replay,
                  "Step through the topology history from TIME (now, -15m, -2h, today/yesterday HH:MM or RFC 3339 UTC), "
                  "one --step per refresh");
  cmd->add_option("--until", o->until, "With --replay: where the replay stops")->capture_default_str();
  cmd->add_option("--step", o->step, "With --replay: history shown per refresh")->capture_default_str();
  cmd->add_option("--history", o->history, "With --replay: history file (default: history.path of --config)");
  add_source_options(cmd, o->source);
  add_cluster_options(cmd, o->cluster);
  cmd->add_option("--window", o->cluster.window, "With --cluster: the window the counts cover (default 1h)");
  cmd->add_option("--rate-window", o->cluster.rate_window, "With --cluster: the rate() window of the rates")
      ->capture_default_str();
  cmd->callback([o, cmd, &exit_code] {
    // A refresh is a dozen Prometheus queries, and Prometheus has new samples once per scrape interval.
    if (o->cluster.cluster && cmd->count("--interval") == 0) o->interval_s = 10;
    if (!o->cluster.cluster && !o->cluster.prometheus.empty()) {
      spdlog::error("--prometheus is read only with --cluster");
      exit_code = 2;
      return;
    }
    if (o->cluster.cluster && !o->replay.empty()) {
      spdlog::error("--cluster reads Prometheus; it does not go with --replay");
      exit_code = 2;
      return;
    }
    block_shutdown_signals();
    auto src = top_source(*o);
    if (!src) {
      spdlog::error("{}", src.error().str());
      exit_code = 1;
      return;
    }
    exit_code = isatty(STDOUT_FILENO) ? run_curses(**src, *o) : run_plain(**src, *o);
  });
}

}  // namespace hostscope::cli
