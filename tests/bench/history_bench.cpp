// hs_bench_history (a program, not a test; no root): the topology history's costs on a synthetic node (issue 21).
// 1. Write cost at full rate: every one of E edges has a row every minute; per interval, the recorder's delta
//    (interval_rows on two E-edge snapshots), Store::write and Store::maintain, timed and in CPU.
// 2. A D-day store built through the Store API on a fake clock: E distinct edges, each active in a given minute with
//    probability P (deterministic), so every edge shows up every day while a minute holds about P*E rows; maintain
//    runs after every write, as the agent's writer does. File size, rows per resolution, counters.
// 3. Reads on that store, opened read-only as the CLI does: Store::topology for --at (one instant) in the minute rows
//    and in the coarse rows, the two 1-hour windows of a diff, and the real CLI
//    `hostscope topology --at T --history FILE -o json` end to end.
// Prints markdown tables for docs/benchmarks.md ("Topology history", which has the command).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/history/record.h"
#include "agent/history/store.h"
#include "support/history_synth.h"

using namespace hostscope;
using namespace hostscope::history;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

double cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(double(v.size()) * q))];
}

[[noreturn]] void die(const std::string& what, const Error& e) {
  fmt::print(stderr, "hs_bench_history: {}: {}\n", what, e.str());
  std::exit(1);
}

std::string rfc3339(uint64_t ns) {
  std::time_t t = std::time_t(ns / 1'000'000'000ull);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Args {
  uint64_t edges = 10000, days = 7, full_minutes = 30, repeat = 5;
  double active = 0.1;
  uint64_t max_bytes = 256ull << 20;
  std::string dir = "/var/tmp/hs-bench-history", hostscope = "build/hostscope";
  bool keep = false;
};

bool active_in(uint64_t e, uint64_t minute, double p) {
  return double(synth::mix(e * 0x100000001b3ull ^ minute) % 1'000'000) < p * 1e6;
}

// 1. Every edge every minute: the recorder's delta, the write and the maintenance, per interval.
// With a `max_bytes` too small for the interval's rows the size bound rolls up every minute: its worst case.
void write_cost(const Args& a, const std::string& path, uint64_t t0, uint64_t max_bytes) {
  for (const char* ext : {"", "-wal", "-shm"}) fs::remove(path + ext);
  auto store = Store::open(path, {7 * kDayNs, max_bytes}, false);
  if (!store) die("open " + path, store.error());
  std::vector<double> delta_ms, write_ms, maintain_ms, cpu;
  topology::TopologySnapshot prev;
  std::vector<IntervalRow> totals;  // what the live topology has counted so far, per edge
  for (uint64_t m = 0; m < a.full_minutes; ++m) {
    const uint64_t start = t0 + m * kMinuteNs, end = start + kMinuteNs;
    topology::TopologySnapshot cur;
    cur.taken_ns = end;
    for (uint64_t e = 0; e < a.edges; ++e) {
      auto r = synth::row(e, start, kMinuteNs);
      if (totals.size() <= e) totals.push_back(r);
      else merge_row(totals[e], r);
      cur.edges.push_back(to_edge(totals[e]));
    }
    topology::canonicalize(cur);
    const double c0 = cpu_ms();
    auto t = Clock::now();
    auto rows = interval_rows(prev, cur, start, end);
    delta_ms.push_back(ms_since(t));
    t = Clock::now();
    if (auto st = store->write(rows, end); !st) die("write", st.error());
    write_ms.push_back(ms_since(t));
    t = Clock::now();
    if (auto st = store->maintain(end); !st) die("maintain", st.error());
    maintain_ms.push_back(ms_since(t));
    cpu.push_back(cpu_ms() - c0);
    prev = std::move(cur);
  }
  auto st = store->status();
  if (!st) die("status", st.error());
  fmt::print("| every edge every minute: {} edges × {} min, max_bytes {} MiB | {:.1f} ms | {:.1f} ms | {:.1f} ms | "
             "{:.1f} ms (p95 {:.1f}) | {:.2f}% | {:.0f} B |\n",
             a.edges, a.full_minutes, max_bytes >> 20, median(delta_ms), median(write_ms), median(maintain_ms), median(cpu),
             pct(cpu, 0.95), median(cpu) / 600.0,
             // Summary rows are rows in the file too (schema 4).
             double(st->used_bytes) / double(std::max<uint64_t>(1, st->rows + st->summary_rows)));
}

struct Built {
  double build_s = 0, per_minute_ms = 0, max_minute_ms = 0;
  StoreStatus status;
};

// 2. D days of P*E rows a minute, maintained after every write.
Built build(const Args& a, const std::string& path, uint64_t t0) {
  auto store = Store::open(path, {7 * kDayNs, a.max_bytes}, false);
  if (!store) die("open " + path, store.error());
  Built b;
  const auto begin = Clock::now();
  const uint64_t minutes = a.days * 1440;
  std::vector<IntervalRow> rows;
  for (uint64_t m = 0; m < minutes; ++m) {
    const uint64_t start = t0 + m * kMinuteNs, end = start + kMinuteNs;
    rows.clear();
    for (uint64_t e = 0; e < a.edges; ++e)
      if (active_in(e, m, a.active)) rows.push_back(synth::row(e, start, kMinuteNs));
    const auto t = Clock::now();
    if (auto st = store->write(rows, end); !st) die("write", st.error());
    if (auto st = store->maintain(end); !st) die("maintain", st.error());
    const double ms = ms_since(t);
    b.per_minute_ms += ms;
    b.max_minute_ms = std::max(b.max_minute_ms, ms);
    if (m % 1440 == 1439) fmt::print(stderr, "hs_bench_history: day {} built\n", m / 1440 + 1);
  }
  b.build_s = ms_since(begin) / 1e3;
  b.per_minute_ms /= double(minutes);
  auto st = store->status();
  if (!st) die("status", st.error());
  b.status = *st;
  return b;
}

// Median wall time of `repeat` runs of f, each on a store newly opened read-only (as a CLI run would).
template <typename F>
double timed_reads(const Args& a, const std::string& path, F f, size_t* edges) {
  std::vector<double> ms;
  for (uint64_t i = 0; i < a.repeat; ++i) {
    const auto t = Clock::now();
    auto store = Store::open(path, {}, true);
    if (!store) die("open read-only", store.error());
    *edges = f(*store);
    ms.push_back(ms_since(t));
  }
  return median(ms);
}

size_t topology_edges(Store& s, uint64_t from, uint64_t to) {
  auto snap = s.topology(from, to);
  if (!snap) die("topology", snap.error());
  return snap->edges.size();
}

double cli_ms(const Args& a, const std::string& path, uint64_t at, const char* format) {
  const std::string cmd =
      fmt::format("{} topology --at {} --history {} -o {} > /dev/null", a.hostscope, rfc3339(at), path, format);
  std::vector<double> ms;
  for (uint64_t i = 0; i < a.repeat; ++i) {
    const auto t = Clock::now();
    int rc = std::system(cmd.c_str());
    ms.push_back(ms_since(t));
    if (rc != 0) {
      fmt::print(stderr, "hs_bench_history: `{}` failed ({})\n", cmd, rc);
      std::exit(1);
    }
  }
  return median(ms);
}

uint64_t parse_bytes(const std::string& s) {
  char* end = nullptr;
  uint64_t v = std::strtoull(s.c_str(), &end, 10);
  const std::string unit = end ? end : "";
  return unit == "MiB" ? v << 20 : unit == "GiB" ? v << 30 : unit == "KiB" ? v << 10 : v;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::string max_bytes;
  CLI::App app{"hs_bench_history: the topology history's write cost, query time and size (docs/benchmarks.md)"};
  app.add_option("--edges", a.edges, "edges in the synthetic node")->capture_default_str();
  app.add_option("--days", a.days, "days of history in the week store")->capture_default_str();
  app.add_option("--active", a.active, "share of edges active in a minute")->capture_default_str();
  app.add_option("--full-minutes", a.full_minutes, "minutes of every-edge-every-minute writes")->capture_default_str();
  app.add_option("--repeat", a.repeat, "repetitions of each query")->capture_default_str();
  app.add_option("--max-bytes", max_bytes, "size bound of the store, e.g. 256MiB");
  app.add_option("--dir", a.dir, "directory of the stores (emptied first)")->capture_default_str();
  app.add_option("--hostscope", a.hostscope, "the hostscope binary whose CLI is timed")->capture_default_str();
  app.add_option("--keep", a.keep, "1: keep the stores at exit")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!max_bytes.empty()) a.max_bytes = parse_bytes(max_bytes);
  fs::create_directories(a.dir);
  const std::string full = a.dir + "/full.db", week = a.dir + "/week.db";
  for (const auto& p : {full, week})
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p + ext);
  // A fixed past start (2026-11-01T00:00:00Z): the CLI's --at takes it as an absolute time.
  const uint64_t t0 = 1'793'491'200ull * 1'000'000'000ull;

  fmt::print("| write cost | recorder delta (median) | write | maintain | CPU per interval | share of one core | bytes per row |\n"
             "| --- | --- | --- | --- | --- | --- | --- |\n");
  write_cost(a, full, t0, a.max_bytes);
  write_cost(a, full, t0, 16ull << 20);

  const Built b = build(a, week, t0);
  const auto& st = b.status;
  const uint64_t now = t0 + a.days * kDayNs;
  fmt::print("\n| {}-day store: {} edges, each active in a minute with p = {} | |\n| --- | --- |\n", a.days, a.edges, a.active);
  fmt::print("| build (write + maintain every minute) | {:.0f} s; {:.1f} ms per minute on average, {:.0f} ms the longest |\n",
             b.build_s, b.per_minute_ms, b.max_minute_ms);
  fmt::print("| file (with WAL) / pages in use / bound | {:.1f} / {:.1f} / {:.1f} MiB |\n", double(st.file_bytes) / 1048576.0,
             double(st.used_bytes) / 1048576.0, double(a.max_bytes) / 1048576.0);
  fmt::print("| rows: 1 min / 10 min / 1 h | {} / {} / {} ({:.0f} B a row in use) |\n", st.rows_by_width.count(kMinuteNs) ? st.rows_by_width.at(kMinuteNs) : 0,
             st.rows_by_width.count(10 * kMinuteNs) ? st.rows_by_width.at(10 * kMinuteNs) : 0,
             st.rows_by_width.count(kHourNs) ? st.rows_by_width.at(kHourNs) : 0,
             double(st.used_bytes) / double(std::max<uint64_t>(1, st.rows + st.summary_rows)));
  fmt::print("| summary rows (10-minute buckets of recent minutes, schema 4) | {} |\n", st.summary_rows);
  fmt::print("| span kept | {} to {} ({:.1f} days) |\n", rfc3339(st.oldest_ns), rfc3339(st.newest_ns),
             double(st.newest_ns - st.oldest_ns) / double(kDayNs));
  std::string counters;
  for (const auto& [k, v] : st.counters)
    if (k != "last_write_ns") counters += fmt::format("{}{} {}", counters.empty() ? "" : ", ", k, v);
  fmt::print("| counters | {} |\n", counters);

  fmt::print("\n| read (median of {}, store opened read-only each time) | time | edges |\n| --- | --- | --- |\n", a.repeat);
  size_t n = 0;
  struct At {
    const char* what;
    uint64_t t;
  };
  for (const At& at : {At{"`Store::topology` --at now-30m", now - 30 * kMinuteNs},
                       At{"`Store::topology` --at now-5d", now - 5 * kDayNs}}) {
    double ms = timed_reads(a, week, [&](Store& s) { return topology_edges(s, at.t, at.t + 1); }, &n);
    fmt::print("| {} | {:.1f} ms | {} |\n", at.what, ms, n);
  }
  // As `topology diff A B` reads (two Store::topology calls on one read-only store). A diff run at a time that is not
  // on a 10-minute boundary has windows that are not either: the third pair is shifted by 5 minutes.
  struct Diff {
    const char* what;
    uint64_t first, second;
  };
  for (const Diff& w : {Diff{"diff's reads: [now-2h, now-1h) and [now-1h, now)", now - 2 * kHourNs, now - kHourNs},
                        Diff{"diff's reads: [now-2h-5m, +1h) and [now-1h-5m, +1h)", now - 2 * kHourNs - 5 * kMinuteNs,
                             now - kHourNs - 5 * kMinuteNs},
                        Diff{"diff's reads: [now-5d, +1h) and [now-4d, +1h)", now - 5 * kDayNs, now - 4 * kDayNs}}) {
    const uint64_t second = w.second;
    double ms = timed_reads(
        a, week,
        [&](Store& s) {
          return topology_edges(s, w.first, w.first + kHourNs) + topology_edges(s, second, second + kHourNs);
        },
        &n);
    fmt::print("| {} | {:.1f} ms | {} (both) |\n", w.what, ms, n);
  }
  if (fs::exists(a.hostscope)) {
    for (const char* format : {"json", "table"})
      for (const At& at : {At{"now-30m", now - 30 * kMinuteNs}, At{"now-5d", now - 5 * kDayNs}})
        fmt::print("| CLI `hostscope topology --at {} --history FILE -o {}` (end to end, process start to exit) | "
                   "{:.1f} ms | |\n",
                   at.what, format, cli_ms(a, week, at.t, format));
  } else {
    fmt::print(stderr, "hs_bench_history: {} not found: no CLI timing\n", a.hostscope);
  }
  if (!a.keep)
    for (const auto& p : {full, week})
      for (const char* ext : {"", "-wal", "-shm"}) fs::remove(p + ext);
  return 0;
}
