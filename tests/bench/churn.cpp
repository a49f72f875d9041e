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

bool io_exact(int fd, char* buf, size_t n, bool write) {
  while (n) {
    ssize_t r = write ? send(fd, buf, n, MSG_NOSIGNAL) : recv(fd, buf, n, 0);
    if (r <= 0) return false;
    buf += r;
    n -= size_t(r);
  }
  return true;
}

// Runs the churn for `seconds`; returns connections completed per second.
double run_churn(const Options& o) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) || listen(ls, 4096)) {
    perror("listen");
    exit(1);
  }
  socklen_t len = sizeof(sa);
  getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; i++) {
    threads.emplace_back([&] {  // server worker: accept, echo 16 bytes, close after the client does
      char buf[16];
      while (!stop.load(std::memory_order_relaxed)) {
        int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (io_exact(c, buf, sizeof(buf), false)) io_exact(c, buf, sizeof(buf), true);
        recv(c, buf, sizeof(buf), 0);  // client's FIN
        close(c);
      }
    });
    threads.emplace_back([&] {  // client worker
      char buf[16] = "hostscope-churn";
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 && io_exact(s, buf, sizeof(buf), true) &&
            io_exact(s, buf, sizeof(buf), false))
          n++;
        close(s);
      }
      done.fetch_add(n);
    });
  }
  auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  stop = true;
  auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  shutdown(ls, SHUT_RDWR);  // wakes the accept()ers
  for (auto& t : threads) t.join();
  close(ls);
  return double(done.load()) / elapsed;
}

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
  if (std::regex_search(all, m, std::regex(R"((\d+) events shown, (\d+) received, (\d+) lost \(ring buffer full\), (\d+) lost \(hook re-entered\))"))) {
    s.shown = std::stoull(m[2]);
    s.ring_lost = std::stoull(m[3]);
    s.reentry_lost = std::stoull(m[4]);
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
