// hs_peer: the real peer processes of the integration tests and the churn benchmark's building block.
//   hs_peer server <addr> <port> <bytes> <count> [linger0]   listen; per connection: read <bytes>, write <bytes>,
//                                                         wait for EOF, close (RST with linger0). Prints "READY <port>".
//   hs_peer client <addr> <port> <bytes> [linger0] [syncnt=N] [concurrent=K]
//       connect (K at once with concurrent=K), write <bytes>, read <bytes>, close. Prints "LOCAL <port>" per connection;
//       exits 3 with "ERROR <errno>" when a connect fails.
// Server and client set distinct thread names (comm) so tests can check owner attribution.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
};

Addr make_addr(const char* host, int port) {
  Addr a;
  auto* s4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* s6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(uint16_t(port));
    a.len = sizeof(*s4);
  } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(uint16_t(port));
    a.len = sizeof(*s6);
    a.family = AF_INET6;
  } else {
    fprintf(stderr, "bad address %s\n", host);
    exit(2);
  }
  return a;
}

int local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                  : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

bool read_exact(int fd, size_t n) {
  std::vector<char> buf(65536);
  while (n) {
    ssize_t r = recv(fd, buf.data(), std::min(n, buf.size()), 0);
    if (r <= 0) return false;
    n -= size_t(r);
  }
  return true;
}

bool write_exact(int fd, size_t n) {
  std::vector<char> buf(65536, 'x');
  while (n) {
    ssize_t w = send(fd, buf.data(), std::min(n, buf.size()), MSG_NOSIGNAL);
    if (w <= 0) return false;
    n -= size_t(w);
  }
  return true;
}

void wait_eof(int fd) {
  char b[4096];
  while (recv(fd, b, sizeof(b), 0) > 0) {
  }
}

void close_sock(int fd, bool linger0) {
  if (linger0) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  }
  close(fd);
}

int server(int argc, char** argv) {
  prctl(PR_SET_NAME, "hs-server");
  if (argc < 6) return 2;
  Addr a = make_addr(argv[2], atoi(argv[3]));
  size_t bytes = strtoull(argv[4], nullptr, 10);
  long count = atol(argv[5]);
  bool linger0 = argc > 6 && std::string(argv[6]) == "linger0";
  int ls = socket(a.family, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(ls, reinterpret_cast<sockaddr*>(&a.ss), a.len) || listen(ls, 4096)) {
    printf("ERROR %s\n", strerror(errno));
    return 3;
  }
  printf("READY %d\n", local_port(ls));
  fflush(stdout);
  // Accept everything first (clients may hold many connections open at once), then serve each.
  std::vector<int> conns;
  for (long i = 0; i < count; i++) {
    int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return 4;
    if (bytes) {
      // Serve immediately so a single client's write/read exchange completes.
      if (!read_exact(c, bytes) || !write_exact(c, bytes)) return 5;
    }
    conns.push_back(c);
    if (bytes) {
      if (!linger0) wait_eof(c);
      close_sock(c, linger0);
      conns.pop_back();
    }
  }
  for (int c : conns) {
    wait_eof(c);
    close_sock(c, linger0);
  }
  return 0;
}

int client(int argc, char** argv) {
  prctl(PR_SET_NAME, "hs-client");
  if (argc < 5) return 2;
  Addr a = make_addr(argv[2], atoi(argv[3]));
  size_t bytes = strtoull(argv[4], nullptr, 10);
  bool linger0 = false;
  int syncnt = 0;
  long concurrent = 1;
  for (int i = 5; i < argc; i++) {
    std::string s = argv[i];
    if (s == "linger0") linger0 = true;
    if (s.rfind("syncnt=", 0) == 0) syncnt = atoi(s.c_str() + 7);
    if (s.rfind("concurrent=", 0) == 0) concurrent = atol(s.c_str() + 11);
  }
  std::vector<int> socks;
  for (long i = 0; i < concurrent; i++) {
    int s = socket(a.family, SOCK_STREAM, 0);
    if (syncnt) setsockopt(s, IPPROTO_TCP, TCP_SYNCNT, &syncnt, sizeof(syncnt));
    if (connect(s, reinterpret_cast<sockaddr*>(&a.ss), a.len)) {
      printf("ERROR %d %s\n", errno, strerror(errno));
      fflush(stdout);
      return 3;
    }
    printf("LOCAL %d\n", local_port(s));
    socks.push_back(s);
  }
  fflush(stdout);
  // Send and half-close every connection first, then wait for each server's FIN before closing: no socket is
  // orphaned mid-close, so each one reaches TCP_CLOSE as soon as the exchange ends (an orphaned FIN_WAIT2 socket
  // can otherwise sit on a 60 s timer when the ACK races the close()).
  for (int s : socks) {
    if (bytes && !write_exact(s, bytes)) return 5;
    if (!linger0) shutdown(s, SHUT_WR);
  }
  for (int s : socks) {
    if (bytes && !read_exact(s, bytes)) return 5;
    if (!linger0) wait_eof(s);
    close_sock(s, linger0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // Thousands of concurrent connections need more than the default 1024 descriptors.
  rlimit rl{65536, 65536};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (argc >= 2 && std::string(argv[1]) == "server") return server(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "client") return client(argc, argv);
  fprintf(stderr, "usage: hs_peer server|client ...\n");
  return 2;
}
