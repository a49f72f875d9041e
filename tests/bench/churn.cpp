// hs_bench_churn: loopback TCP connection churn, measured side by side with and without hostscope.
//
//   hs_bench_churn --hostscope ./build/hostscope [--rounds 4] [--seconds 5] [--clients 2] [--markdown FILE]
//                  [--agent-args "connections -o json"]
//
// Runs alternate: without, with, without, with, ..., without. Each "with" run has `hostscope <agent-args>` running
// with its output sent to /dev/null, and is compared with the mean of the two runs without that surround it; a
// round whose two surrounding baselines differ by more than --stable-pct (5%) is reported but left out of the
// verdict (the median of the stable rounds' ratios). Each run is in a new network namespace, with pinned
// client/server pairs and the server closing first (churn_lib.h says why). Per connection: connect, 16 bytes
// each way, close.
// Prints connections/s for both, the ratio, the agent's lost-event counts (from its exit summary) and the agent's
// own CPU time (user + system, from wait4) per event received: the per-event cost in user space, which the
// host's noise moves much less than the throughput ratio. A last run with BPF statistics on (BPF_ENABLE_STATS,
// not part of the throughput comparison) sums the run time of the agent's BPF programs: the kernel-side cost per
// connection, paid by the workload's own threads.
//
//   hs_bench_churn --hostscope BIN --programs [--seconds 5] [--agent-args ARGS]
//
// Only that cost run (no throughput rounds), reported per program: one line `program NAME RUNS RUN_TIME_NS` each,
// then `connections N` (scripts/bench-bpf-programs.sh compares builds with it).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "churn_lib.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string hostscope;
  std::string agent_args = "connections -o json";
  int rounds = 4;
  double seconds = 5;
  int clients = 2;
  std::string markdown;
  double stable_pct = 5;
  bool programs = false;
};

// Busy CPU time of the whole machine, in seconds: user + nice + system + irq + softirq of every CPU (/proc/stat).
// Idle, iowait and steal are not work done here.
double machine_busy_s() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
  f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq;
  return double(user + nice + system + irq + softirq) / double(sysconf(_SC_CLK_TCK));
}

// One measured run of the workload: its throughput, and the machine's busy CPU time per connection during it
// (the workload, and with an agent running also the agent and its BPF programs).
struct Phase {
  double conn_per_s = 0;
  double cpu_us_per_conn = 0;
};

Phase run_churn(const Options& o) {
  double busy0 = machine_busy_s();
  Phase p;
  p.conn_per_s = hostscope::bench::run_churn_isolated(o.clients, o.seconds);
  if (p.conn_per_s < 0) {
    fprintf(stderr, "cannot run the workload in a new network namespace (needs root)\n");
    exit(1);
  }
  double conns = p.conn_per_s * o.seconds;
  p.cpu_us_per_conn = conns > 0 ? 1e6 * (machine_busy_s() - busy0) / conns : 0.0;
  // The kernel tears the namespace and its TIME_WAIT sockets down in the background: let that finish first.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  return p;
}

struct ProgRuns {
  uint64_t runs = 0, ns = 0;
};

// Runs and run time (ns) of each loaded hostscope BPF program, by name (only one agent runs at a time during the
// benchmark). Needs BPF statistics enabled.
std::map<std::string, ProgRuns> agent_bpf_programs() {
  std::map<std::string, ProgRuns> out;
  for (__u32 id = 0; bpf_prog_get_next_id(id, &id) == 0;) {
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      std::string name = info.name;
      // Every hostscope program is named btf_<hook>, tp_<hook> or fexit_<function> (bpf/*.bpf.c).
      if (name.rfind("btf_", 0) == 0 || name.rfind("tp_", 0) == 0 || name.rfind("fexit_", 0) == 0) {
        out[name].runs += info.run_cnt;
        out[name].ns += info.run_time_ns;
      }
    }
    close(fd);
  }
  return out;
}

// Total run time (ns) of the loaded hostscope BPF programs.
uint64_t agent_bpf_run_ns() {
  uint64_t total = 0;
  for (const auto& [name, r] : agent_bpf_programs()) total += r.ns;
  return total;
}

struct Agent {
  pid_t pid = -1;
  std::string err_path;
  Clock::time_point started;  // when the agent had attached (its start-up is not part of the per-event cost)
  double startup_cpu_s = 0;   // CPU time it had used by then
  uint64_t startup_bpf_ns = 0;
};

// User + system time of a running process, from /proc/PID/stat (clock ticks).
double process_cpu_s(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(f)), {});
  auto rp = all.rfind(')');
  if (rp == std::string::npos) return 0;
  std::istringstream ss(all.substr(rp + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; ss >> field; i++) {  // field 3 is the state
    if (i == 14 || i == 15) ticks += std::stod(field);
    if (i == 15) break;
  }
  return ticks / double(sysconf(_SC_CLK_TCK));
}

Agent start_agent(const Options& o) {
  Agent a;
  char tmpl[] = "/tmp/hs-bench-XXXXXX";
  int efd = mkstemp(tmpl);
  a.err_path = tmpl;
  a.pid = fork();
  if (a.pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(efd, 2);
    std::vector<std::string> args = {o.hostscope, "-v"};
    std::istringstream ss(o.agent_args);
    for (std::string w; ss >> w;) args.push_back(w);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(efd);
  // Wait until it is ready: programs attached, processes scanned, events read (it logs "... running" at -v).
  for (int i = 0; i < 300; i++) {
    std::ifstream f(a.err_path);
    std::string all((std::istreambuf_iterator<char>(f)), {});
    if (all.find(" running") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  a.started = Clock::now();
  a.startup_cpu_s = process_cpu_s(a.pid);
  a.startup_bpf_ns = agent_bpf_run_ns();
  return a;
}

struct AgentStats {
  uint64_t shown = 0, ring_lost = 0, reentry_lost = 0;
  double cpu_s = 0, wall_s = 0;  // the agent's user + system time after start-up, and how long that was
  double bpf_s = 0;              // run time of its BPF programs over the same span (0: statistics unavailable)
};

AgentStats stop_agent(Agent& a) {
  uint64_t bpf_ns = agent_bpf_run_ns();  // before the programs go away with the agent
  kill(a.pid, SIGINT);
  struct rusage ru {};
  wait4(a.pid, nullptr, 0, &ru);
  auto secs = [](const timeval& t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  std::ifstream f(a.err_path);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  unlink(a.err_path.c_str());
  AgentStats s;
  s.cpu_s = std::max(0.0, secs(ru.ru_utime) + secs(ru.ru_stime) - a.startup_cpu_s);
  s.wall_s = std::chrono::duration<double>(Clock::now() - a.started).count();
  s.bpf_s = bpf_ns > a.startup_bpf_ns ? double(bpf_ns - a.startup_bpf_ns) / 1e9 : 0.0;
  std::smatch m;
  if (std::regex_search(all, m, std::regex(R"((\d+) received, (\d+) lost \(ring buffer full\), (\d+) lost \(hook re-entered\))"))) {
    s.shown = std::stoull(m[1]);
    s.ring_lost = std::stoull(m[2]);
    s.reentry_lost = std::stoull(m[3]);
  } else {
    fprintf(stderr, "could not read the agent's summary:\n%s\n", all.c_str());
  }
  return s;
}

std::string fmt_us(double us) {
  char b[32];
  snprintf(b, sizeof(b), "%.2f µs", us);
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// --programs: one run with the agent and BPF statistics on; each program's runs and run time over the workload.
int cost_by_program(const Options& o) {
  run_churn(Options{o.hostscope, o.agent_args, 1, 1, o.clients, ""});  // warm-up
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) {
    fprintf(stderr, "BPF statistics unavailable: %s\n", strerror(errno));
    return 1;
  }
  Agent a = start_agent(o);
  auto before = agent_bpf_programs();
  double w = run_churn(o).conn_per_s;
  auto after = agent_bpf_programs();
  stop_agent(a);
  close(stats_fd);
  for (const auto& [name, r] : after) {
    const ProgRuns b = before.count(name) ? before.at(name) : ProgRuns{};
    printf("program %s %lu %lu\n", name.c_str(), static_cast<unsigned long>(r.runs - b.runs),
           static_cast<unsigned long>(r.ns - b.ns));
  }
  printf("connections %.0f\n", w * o.seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--hostscope") o.hostscope = next();
    else if (a == "--rounds") o.rounds = std::stoi(next());
    else if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--clients") o.clients = std::stoi(next());
    else if (a == "--markdown") o.markdown = next();
    else if (a == "--agent-args") o.agent_args = next();
    else if (a == "--stable-pct") o.stable_pct = std::stod(next());
    else if (a == "--programs") o.programs = true;
    else {
      fprintf(stderr, "usage: hs_bench_churn --hostscope PATH [--rounds N] [--seconds S] [--clients N] [--markdown FILE] [--agent-args ARGS] [--stable-pct P] [--programs]\n");
      return 2;
    }
  }
  if (o.hostscope.empty()) {
    fprintf(stderr, "--hostscope is required\n");
    return 2;
  }
  if (o.programs) return cost_by_program(o);
  std::vector<double> base, with, ratios, cost_ratios, stable_ratios;
  std::vector<std::string> round_rows;  // per-round lines for the markdown (the baseline here is bimodal)
  AgentStats total;
  double with_connections = 0;
  run_churn(Options{o.hostscope, o.agent_args, 1, 1, o.clients, ""});  // warm-up
  Phase before = run_churn(o);
  for (int r = 0; r < o.rounds; r++) {
    Agent a = start_agent(o);
    Phase pw = run_churn(o);
    auto s = stop_agent(a);
    Phase after = run_churn(o);
    Phase pb{(before.conn_per_s + after.conn_per_s) / 2, (before.cpu_us_per_conn + after.cpu_us_per_conn) / 2};
    const double drift = 100.0 * std::abs(after.conn_per_s - before.conn_per_s) /
                         std::max(1.0, std::max(after.conn_per_s, before.conn_per_s));
    const bool stable = drift <= o.stable_pct;
    before = after;
    const double b = pb.conn_per_s, w = pw.conn_per_s;
    // The throughput the workload would keep if the machine's CPU were the only limit: CPU per connection
    // without the agent over CPU per connection with it (its BPF programs and its own process included).
    const double cost_ratio = pw.cpu_us_per_conn > 0 ? 100.0 * pb.cpu_us_per_conn / pw.cpu_us_per_conn : 0.0;
    cost_ratios.push_back(cost_ratio);
    if (stable) stable_ratios.push_back(100.0 * w / b);
    total.shown += s.shown;
    total.ring_lost += s.ring_lost;
    total.reentry_lost += s.reentry_lost;
    total.cpu_s += s.cpu_s;
    total.wall_s += s.wall_s;
    with_connections += w * o.seconds;
    base.push_back(b);
    with.push_back(w);
    ratios.push_back(100.0 * w / b);
    {
      char row[256];
      snprintf(row, sizeof(row), "| %d | %.0f | %.1f%% %s | %.0f | %.1f%% | %.1f µs | %.1f µs | %.1f%% | %.2f µs |",
               r + 1, b, drift, stable ? "" : "(left out)", w, 100.0 * w / b, pb.cpu_us_per_conn, pw.cpu_us_per_conn,
               cost_ratio,
               s.shown ? 1e6 * s.cpu_s / double(s.shown) : 0.0);
      round_rows.push_back(row);
    }
    printf("round %d%s: without %.0f conn/s (baselines %.1f%% apart; %.1f us CPU/conn), with hostscope %.0f conn/s (%.1f us CPU/conn): "
           "throughput %.1f%%, CPU cost ratio %.1f%%; agent received %lu events, lost %lu+%lu, agent CPU %.2f s "
           "(%.2f us/event)\n",
           r + 1, stable ? "" : " (unstable)", b, drift, pb.cpu_us_per_conn, w, pw.cpu_us_per_conn, 100.0 * w / b, cost_ratio, s.shown, s.ring_lost,
           s.reentry_lost, s.cpu_s, s.shown ? 1e6 * s.cpu_s / double(s.shown) : 0.0);
    fflush(stdout);
  }
  // One more run with the agent, with BPF statistics on, for the kernel-side cost. Statistics add clock reads to
  // every program run, so this run's throughput is not part of the comparison above.
  double bpf_us_per_conn = 0;
  int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) {
    fprintf(stderr, "BPF statistics unavailable (%s): no kernel cost per connection\n", strerror(errno));
  } else {
    Agent a = start_agent(o);
    double w = run_churn(o).conn_per_s;
    auto s = stop_agent(a);
    close(stats_fd);
    bpf_us_per_conn = w > 0 ? 1e6 * s.bpf_s / (w * o.seconds) : 0.0;
    printf("cost run (BPF statistics on): %.0f conn/s, %.2f us of BPF run time per connection\n", w, bpf_us_per_conn);
  }
  double mb = median(base), mw = median(with);
  double ratio = 100.0 * mw / mb, paired = median(ratios), cost = median(cost_ratios);
  double verdict = stable_ratios.empty() ? 0.0 : median(stable_ratios);
  double us_per_event = total.shown ? 1e6 * total.cpu_s / double(total.shown) : 0.0;
  double core_pct = total.wall_s > 0 ? 100.0 * total.cpu_s / total.wall_s : 0.0;
  double events_per_conn = with_connections > 0 ? double(total.shown) / with_connections : 0.0;
  std::string label = o.hostscope.substr(o.hostscope.rfind('/') + 1);  // "hostscope", or a stand-in's name
  if (!o.agent_args.empty()) label += " " + o.agent_args;
  printf("verdict: median of the %zu stable rounds' ratios (of %d): %.1f%%\n", stable_ratios.size(), o.rounds, verdict);
  printf("median: without %.0f conn/s, with `%s` %.0f conn/s: %.1f%% of baseline (median of the rounds' ratios "
         "%.1f%%; median CPU cost ratio %.1f%%); lost events: %lu (ring buffer) + %lu (hook re-entry); events received: %lu; agent CPU %.2f us/event, "
         "%.1f%% of one core; %.1f events and %.2f us of BPF run time per connection\n",
         mb, label.c_str(), mw, ratio, paired, cost, total.ring_lost, total.reentry_lost, total.shown, us_per_event,
         core_pct, events_per_conn, bpf_us_per_conn);
  if (!o.markdown.empty()) {
    FILE* f = fopen(o.markdown.c_str(), "w");
    if (f) {
      fprintf(f, "| rounds × seconds | clients | stable rounds | **median ratio, stable rounds** | without (conn/s, median) "
                 "| with `%s` (conn/s, median) | ratio of medians | median of all round ratios | median CPU cost ratio | events received | lost (ring) | lost (re-entry) | events per connection | agent CPU per event "
                 "| agent CPU (one core) | BPF run time per connection |\n",
              label.c_str());
      fprintf(f, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
      fprintf(f, "| %d × %.0f | %d | %zu | **%.1f%%** | %.0f | %.0f | %.1f%% | %.1f%% | %.1f%% | %lu | %lu | %lu | %.1f | %.2f µs | %.1f%% | %s |\n",
              o.rounds, o.seconds, o.clients, stable_ratios.size(), verdict, mb, mw, ratio, paired, cost, total.shown, total.ring_lost, total.reentry_lost,
              events_per_conn, us_per_event, core_pct,
              stats_fd >= 0 ? fmt_us(bpf_us_per_conn).c_str() : "n/a");
      fprintf(f, "\n| round | without (conn/s, mean of the runs before and after) | baselines apart | with (conn/s) "
                 "| ratio | CPU per connection without | with | CPU cost ratio | agent CPU per event |\n");
      fprintf(f, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
      for (auto& row : round_rows) fprintf(f, "%s\n", row.c_str());
      fclose(f);
    }
  }
  return 0;
}
