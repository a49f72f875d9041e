// hs_bench_agent: what the daemon costs and how fast it shows what happened.
//   hs_bench_agent --hostscope ./build/hostscope [--config tests/bench/agent-bench.yaml] [--latency-n 1000]
//                  [--churn-n 1000000] [--edges 10000] [--markdown FILE] [--max-rss-mib 64]
// With --max-rss-mib it is also a check (ctest agent_memory_check, label privileged): exit 1 when the agent's RSS
// after the churn or with the edges is over the bound or the kernel lost any event; exit 77 (skipped) without root
// unless CI=true.
// 1. Visibility latency: a connection closes -> it is counted in `topology` from the daemon's API (polled
//    continuously); p50/p99 over N connections.
// 2. Memory: the agent's RSS after N short connections (two edges, one per client/server pair, ephemeral client ports), and after connections
//    to E distinct server ports (E distinct edges).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/daemon/api_server.h"
#include "agent/daemon/config.h"
#include "churn_lib.h"
#include "common/api_client.h"

using namespace hostscope;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string hostscope, config = "tests/bench/agent-bench.yaml", markdown;
  int latency_n = 1000;
  uint64_t churn_n = 1'000'000;
  int edges = 10000;
  uint64_t max_rss_mib = 0;  // 0: measure only
};

std::string socket_of(const std::string& config) {
  std::ifstream f(config);
  std::string line;
  while (std::getline(f, line))
    if (auto p = line.find("socket:"); p != std::string::npos) {
      auto v = line.substr(p + 7);
      v.erase(0, v.find_first_not_of(" \""));
      v.erase(v.find_last_not_of(" \"") + 1);
      return v;
    }
  return daemon::kDefaultSocketPath;
}

uint64_t rss_kib(pid_t pid, const char* field = "VmRSS:") {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string k;
  uint64_t v = 0;
  while (f >> k) {
    if (k == field) {
      f >> v;
      return v;
    }
  }
  return 0;
}

uint64_t edge_connections(const nlohmann::json& topo, uint16_t port) {
  uint64_t n = 0;
  for (auto& e : topo["edges"])
    if (e.value("port", 0) == port) n += e.value("connections", uint64_t(0));
  return n;
}

// The edge phase's server ports: below Linux's default ephemeral range (32768-60999), above well-known services.
constexpr uint32_t kFirstEdgePort = 10000, kEphemeralLow = 32768;

int listen_on(uint16_t* port) {
  sockaddr_in sa{};
  int ls = bench::loopback_listener(&sa);
  *port = ntohs(sa.sin_port);
  return ls;
}

bool one_connection(uint16_t port, int ls) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  bool ok = connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
  close(s);
  if (c >= 0) close(c);
  return ok && c >= 0;
}

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--hostscope") o.hostscope = next();
    else if (a == "--config") o.config = next();
    else if (a == "--latency-n") o.latency_n = std::stoi(next());
    else if (a == "--churn-n") o.churn_n = std::stoull(next());
    else if (a == "--edges") o.edges = std::stoi(next());
    else if (a == "--markdown") o.markdown = next();
    else if (a == "--max-rss-mib") o.max_rss_mib = std::stoull(next());
    else {
      fprintf(stderr, "usage: hs_bench_agent --hostscope PATH [--config F] [--latency-n N] [--churn-n N] [--edges E] [--markdown F] [--max-rss-mib N]\n");
      return 2;
    }
  }
  if (o.max_rss_mib && geteuid() != 0) {
    const char* ci = getenv("CI");
    fprintf(stderr, "agent memory check needs root (it loads the BPF programs)\n");
    return ci && std::string(ci) == "true" ? 1 : 77;
  }
  rlimit rl{65536, 65536};
  setrlimit(RLIMIT_NOFILE, &rl);
  std::string sock = socket_of(o.config);
  pid_t agent = fork();
  if (agent == 0) {
    execl(o.hostscope.c_str(), o.hostscope.c_str(), "agent", "--config", o.config.c_str(), (char*)nullptr);
    _exit(127);
  }
  auto t_start = Clock::now();
  while (!api::daemon_running(sock)) {
    if (Clock::now() - t_start > std::chrono::seconds(30)) {
      fprintf(stderr, "agent did not come up on %s\n", sock.c_str());
      kill(agent, SIGKILL);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // VmRSS includes file-backed pages (the binary and its libraries, shared with the page cache) and the
  // ring buffers' mmap; RssAnon is the agent's own heap and stacks.
  uint64_t rss_idle = rss_kib(agent), anon_idle = rss_kib(agent, "RssAnon:");

  // 1. Visibility latency.
  uint16_t port = 0;
  int ls = listen_on(&port);
  std::vector<double> lat_ms;
  uint64_t seen = 0;
  for (int i = 0; i < o.latency_n; i++) {
    if (!one_connection(port, ls)) continue;
    auto t0 = Clock::now();  // both ends closed
    for (;;) {
      auto r = api::call(sock, "topology", {{"port", port}});
      if (r && edge_connections(*r, port) > seen) {
        seen = edge_connections(*r, port);
        break;
      }
      if (Clock::now() - t0 > std::chrono::seconds(5)) break;
    }
    lat_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  close(ls);
  double p50 = pct(lat_ms, 0.50), p99 = pct(lat_ms, 0.99);
  printf("visibility latency over %zu connections: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", lat_ms.size(), p50, p99,
         pct(lat_ms, 1.0));

  // 2a. Memory after many short connections on two edges (one per client/server pair).
  uint64_t done = 0;
  auto c0 = Clock::now();
  bench::run_churn(2, 600, o.churn_n, &done);
  double churn_s = std::chrono::duration<double>(Clock::now() - c0).count();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  uint64_t rss_churn = rss_kib(agent), anon_churn = rss_kib(agent, "RssAnon:");
  printf("RSS after %lu short connections (%.0f s): %.1f MiB, anonymous %.1f MiB (idle %.1f MiB, anonymous %.1f MiB)\n",
         done, churn_s, rss_churn / 1024.0, anon_churn / 1024.0, rss_idle / 1024.0, anon_idle / 1024.0);

  // 2b. Memory with many distinct edges: one connection to each of E server ports.
  // One server port at a time (listen, connect, close), so the edge count is not limited by the file descriptor
  // limit (20,000 here); fixed ports below the ephemeral range, where the churn's TIME_WAIT sockets are.
  int made = 0, bind_failed = 0;
  for (uint32_t p = kFirstEdgePort; p < kEphemeralLow && made < o.edges; p++) {
    sockaddr_in sa{};
    int l = bench::loopback_listener(&sa, uint16_t(p));
    if (l < 0) {
      bind_failed++;  // in use by something else on the machine
      continue;
    }
    made += one_connection(uint16_t(p), l);
    close(l);
  }
  if (made < o.edges) fprintf(stderr, "only %d of %d edge connections made (%d ports in use)\n", made, o.edges, bind_failed);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  size_t edges = 0;
  if (auto r = api::call(sock, "topology", nlohmann::json::object(), 30000); r) edges = (*r)["edges"].size();
  uint64_t rss_edges = rss_kib(agent), hwm = rss_kib(agent, "VmHWM:"), anon_edges = rss_kib(agent, "RssAnon:");
  printf("RSS with %zu edges in the topology (%d connections to distinct ports): %.1f MiB, anonymous %.1f MiB; peak RSS %.1f MiB\n",
         edges, made, rss_edges / 1024.0, anon_edges / 1024.0, hwm / 1024.0);

  uint64_t lost = 0;
  bool health_ok = false;
  if (auto h = api::call(sock, "health"); h && (*h).contains("kernel")) {
    const uint64_t tcp_lost = (*h)["kernel"].value("lost_ringbuf", uint64_t(0)),
                   reentry = (*h)["kernel"].value("lost_reentry", uint64_t(0));
    // The process hooks have their own ring buffer (kernel.process_ring_buffer_mb); their losses count too.
    const auto proc = h->value(nlohmann::json::json_pointer("/identity/process_events"), nlohmann::json::object());
    const uint64_t proc_lost = proc.value("lost_ringbuf", uint64_t(0));
    lost = tcp_lost + reentry + proc_lost;
    printf("events lost: tcp_events ring %lu, hook re-entry %lu, proc_events ring %lu (of %lu process events)\n",
           tcp_lost, reentry, proc_lost, proc.value("events", uint64_t(0)));
    health_ok = true;
  }
  kill(agent, SIGTERM);
  waitpid(agent, nullptr, 0);
  int verdict = 0;
  if (o.max_rss_mib) {
    const uint64_t bound = o.max_rss_mib * 1024;
    const bool ok = health_ok && lost == 0 && rss_churn <= bound && rss_edges <= bound && done >= o.churn_n &&
                    edges >= size_t(o.edges);
    printf("agent memory check: %s (RSS %.1f MiB after %lu connections, %.1f MiB with %zu edges, bound %lu MiB; %lu events "
           "lost%s)\n",
           ok ? "PASS" : "FAIL", rss_churn / 1024.0, done, rss_edges / 1024.0, edges, o.max_rss_mib, lost,
           health_ok ? "" : ", no health reply");
    verdict = ok ? 0 : 1;
  }
  if (!o.markdown.empty()) {
    FILE* f = fopen(o.markdown.c_str(), "w");
    fprintf(f, "| measure | result | target |\n| --- | --- | --- |\n");
    fprintf(f, "| visibility latency, close -> counted in `topology` (API), %zu connections | p50 %.1f ms, p99 %.1f ms | p99 ≤ 100 ms |\n",
            lat_ms.size(), p50, p99);
    fprintf(f, "| agent memory idle | RSS %.1f MiB, anonymous %.1f MiB | |\n", rss_idle / 1024.0, anon_idle / 1024.0);
    fprintf(f, "| agent memory after %lu short connections (ephemeral ports, two edges; %.0f s) | RSS %.1f MiB, anonymous %.1f MiB | ≤ 64 MiB |\n",
            done, churn_s, rss_churn / 1024.0, anon_churn / 1024.0);
    fprintf(f, "| agent memory with %zu edges | RSS %.1f MiB (peak %.1f MiB), anonymous %.1f MiB | ≤ 64 MiB |\n", edges,
            rss_edges / 1024.0, hwm / 1024.0, anon_edges / 1024.0);
    fclose(f);
  }
  return verdict;
}
