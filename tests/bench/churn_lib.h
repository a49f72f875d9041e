#pragma once
// Loopback TCP churn shared by the benchmark programs. Per connection: connect, 16 bytes each way, the server
// closes, the client reads the FIN and closes. `clients` client/server pairs; pair i has its own listener and
// both of its threads are pinned to CPU i % ncpu.
//
// Why this shape (docs/benchmarks.md, "A workload that measures the same thing twice"): with one shared
// listener, unpinned threads and the client closing first, the same workload ran at 14k or at 21-28k
// connections/s depending on how many TIME_WAIT sockets the client's port search had to walk (and on where the
// scheduler put the threads), and switched between the two every few seconds. The server closing first keeps
// TIME_WAIT off the client's ports; pinned pairs keep each exchange on one CPU; run_churn_isolated() runs each
// measurement in a new network namespace, so every run starts with no TIME_WAIT sockets at all.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace hostscope::bench {

inline bool io_exact(int fd, char* buf, size_t n, bool write) {
  while (n) {
    ssize_t r = write ? send(fd, buf, n, MSG_NOSIGNAL) : recv(fd, buf, n, 0);
    if (r <= 0) return false;
    buf += r;
    n -= size_t(r);
  }
  return true;
}

inline void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

// A TCP listener on 127.0.0.1 with a port the kernel picks (SO_REUSEADDR, backlog 4096); its address in *addr.
// Returns -1 on failure.
// `port` 0 lets the kernel pick one from the ephemeral range.
inline int loopback_listener(sockaddr_in* addr, uint16_t port = 0) {
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  socklen_t len = sizeof(sa);
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) || listen(ls, 4096) ||
      getsockname(ls, reinterpret_cast<sockaddr*>(&sa), &len)) {
    if (ls >= 0) close(ls);
    return -1;
  }
  *addr = sa;
  return ls;
}

// Runs until `seconds` pass or `max_connections` complete (0: no limit); returns connections per second.
inline double run_churn(int clients, double seconds, uint64_t max_connections = 0, uint64_t* completed = nullptr) {
  using Clock = std::chrono::steady_clock;
  const int ncpu = std::max(1, int(sysconf(_SC_NPROCESSORS_ONLN)));
  std::vector<int> listeners(static_cast<size_t>(clients), -1);
  std::vector<sockaddr_in> addrs(static_cast<size_t>(clients));
  for (int i = 0; i < clients; i++) {
    listeners[size_t(i)] = loopback_listener(&addrs[size_t(i)]);
    if (listeners[size_t(i)] < 0) {
      perror("churn listener");
      exit(1);
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; i++) {
    const int ls = listeners[size_t(i)], cpu = i % ncpu;
    const sockaddr_in sa = addrs[size_t(i)];
    threads.emplace_back([&stop, ls, cpu] {  // server: accept, echo 16 bytes, close first
      pin_to_cpu(cpu);
      char buf[16];
      while (!stop.load(std::memory_order_relaxed)) {
        int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (io_exact(c, buf, sizeof(buf), false)) io_exact(c, buf, sizeof(buf), true);
        close(c);
      }
    });
    threads.emplace_back([&stop, &done, sa, cpu, max_connections] {  // client
      pin_to_cpu(cpu);
      char buf[16] = "hostscope-churn";
      while (!stop.load(std::memory_order_relaxed)) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(s, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) == 0 &&
            io_exact(s, buf, sizeof(buf), true) && io_exact(s, buf, sizeof(buf), false) &&
            recv(s, buf, sizeof(buf), 0) == 0) {  // the server's FIN
          uint64_t n = done.fetch_add(1) + 1;
          if (max_connections && n >= max_connections) stop = true;
        }
        close(s);
      }
    });
  }
  auto start = Clock::now();
  while (!stop.load() && std::chrono::duration<double>(Clock::now() - start).count() < seconds)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  auto elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (int ls : listeners) shutdown(ls, SHUT_RDWR);  // wakes the accept()ers
  for (auto& t : threads) t.join();
  for (int ls : listeners) close(ls);
  if (completed) *completed = done.load();
  return double(done.load()) / elapsed;
}

// run_churn in a child process in a new network namespace (loopback up), so that each run starts from the same
// state: no TIME_WAIT sockets left by earlier runs. Needs CAP_SYS_ADMIN. Returns connections per second, or a
// negative number when the namespace could not be made.
inline double run_churn_isolated(int clients, double seconds) {
  int p[2];
  if (pipe(p)) return -1;
  pid_t c = fork();
  if (c == 0) {
    double r = -1;
    if (unshare(CLONE_NEWNET) == 0) {
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ifreq ifr{};
      std::strcpy(ifr.ifr_name, "lo");
      if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) == 0) r = run_churn(clients, seconds);
      }
      if (s >= 0) close(s);
    }
    if (write(p[1], &r, sizeof(r)) != ssize_t(sizeof(r))) _exit(1);
    _exit(0);
  }
  close(p[1]);
  double r = -1;
  if (c < 0 || read(p[0], &r, sizeof(r)) != ssize_t(sizeof(r))) r = -1;
  close(p[0]);
  if (c > 0) waitpid(c, nullptr, 0);
  return r;
}

}  // namespace hostscope::bench
