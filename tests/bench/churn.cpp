// hs_bench_churn: loopback TCP connection churn, measured side by side with and without hostscope.
//
//   hs_bench_churn --hostscope ./build/hostscope [--rounds 4] [--seconds 5] [--clients 2] [--markdown FILE]
//                  [--agent-args "connections -o json"]
//
// Each round runs the same workload twice, back to back: once with no tracer, once with `hostscope <agent-args>`
// running with its output sent to /dev/null. Per connection: connect, 16 bytes each way, close (client first).
// Prints connections/s for both, the ratio, and the agent's lost-event counts (from its exit summary).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
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
};

double run_churn(const Options& o) { return hostscope::bench::run_churn(o.clients, o.seconds); }

struct Agent {
  pid_t pid = -1;
  std::string err_path;
};

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
  // Wait until the programs are attached (the agent logs it at -v).
  for (int i = 0; i < 300; i++) {
    std::ifstream f(a.err_path);
    std::string all((std::istreambuf_iterator<char>(f)), {});
    if (all.find("attached") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return a;
}

struct AgentStats {
  uint64_t shown = 0, ring_lost = 0, reentry_lost = 0;
};

AgentStats stop_agent(Agent& a) {
  kill(a.pid, SIGINT);
  waitpid(a.pid, nullptr, 0);
  std::ifstream f(a.err_path);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  unlink(a.err_path.c_str());
  AgentStats s;
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

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
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
    else {
      fprintf(stderr, "usage: hs_bench_churn --hostscope PATH [--rounds N] [--seconds S] [--clients N] [--markdown FILE] [--agent-args ARGS]\n");
      return 2;
    }
  }
  if (o.hostscope.empty()) {
    fprintf(stderr, "--hostscope is required\n");
    return 2;
  }
  std::vector<double> base, with;
  AgentStats total;
  run_churn(Options{o.hostscope, o.agent_args, 1, 1, o.clients, ""});  // warm-up
  for (int r = 0; r < o.rounds; r++) {
    double b = run_churn(o);
    Agent a = start_agent(o);
    double w = run_churn(o);
    auto s = stop_agent(a);
    total.shown += s.shown;
    total.ring_lost += s.ring_lost;
    total.reentry_lost += s.reentry_lost;
    base.push_back(b);
    with.push_back(w);
    printf("round %d: without %.0f conn/s, with hostscope %.0f conn/s (%.1f%%), agent received %lu events, lost %lu+%lu\n",
           r + 1, b, w, 100.0 * w / b, s.shown, s.ring_lost, s.reentry_lost);
    fflush(stdout);
  }
  double mb = median(base), mw = median(with);
  double ratio = 100.0 * mw / mb;
  printf("median: without %.0f conn/s, with `hostscope %s` %.0f conn/s: %.1f%% of baseline; lost events: %lu (ring buffer) + %lu (hook re-entry); events received: %lu\n",
         mb, o.agent_args.c_str(), mw, ratio, total.ring_lost, total.reentry_lost, total.shown);
  if (!o.markdown.empty()) {
    FILE* f = fopen(o.markdown.c_str(), "w");
    if (f) {
      fprintf(f, "| rounds × seconds | clients | without (conn/s, median) | with `hostscope %s` (conn/s, median) | ratio | events received | lost (ring) | lost (re-entry) |\n",
              o.agent_args.c_str());
      fprintf(f, "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
      fprintf(f, "| %d × %.0f | %d | %.0f | %.0f | %.1f%% | %lu | %lu | %lu |\n", o.rounds, o.seconds, o.clients, mb, mw,
              ratio, total.shown, total.ring_lost, total.reentry_lost);
      fclose(f);
    }
  }
  return 0;
}
