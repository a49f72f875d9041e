#pragma once
// Loopback TCP churn shared by the benchmark programs: per connection, connect, 16 bytes each way, close
// (client first); `clients` client threads and as many server threads.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// Runs until `seconds` pass or `max_connections` complete (0: no limit); returns connections per second.
inline double run_churn(int clients, double seconds, uint64_t max_connections = 0, uint64_t* completed = nullptr) {
  using Clock = std::chrono::steady_clock;
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
  for (int i = 0; i < clients; i++) {
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
      while (!stop.load(std::memory_order_relaxed)) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 && io_exact(s, buf, sizeof(buf), true) &&
            io_exact(s, buf, sizeof(buf), false)) {
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
  shutdown(ls, SHUT_RDWR);  // wakes the accept()ers
  for (auto& t : threads) t.join();
  close(ls);
  if (completed) *completed = done.load();
  return double(done.load()) / elapsed;
}

}  // namespace hostscope::bench
