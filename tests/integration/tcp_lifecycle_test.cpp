// Privileged integration tests of bpf/tcp_lifecycle.bpf.c: the real programs, real connections between real
// processes (hs_peer), over loopback and between network namespaces joined by a veth pair.
// Every field of every event is checked against what the peers themselves report.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <fmt/ranges.h>

#include "agent/bpf/libbpf_util.h"
#include "support/event_collector.h"

using namespace hostscope;
using namespace hostscope::testing;
using events::ConnectionEvent;
using events::Kind;
using events::Outcome;
using events::Role;

namespace {

std::string peer_bin() {
  const char* p = std::getenv("HS_PEER");
  return p ? p : "hs_peer";
}

uint64_t own_netns() { return inode_of("/proc/self/ns/net"); }

// cgroup v2 id of a process: the inode of its cgroup directory in the cgroup2 mount.
uint64_t cgroup_id_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("0::", 0) == 0) {
      for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
        uint64_t ino = inode_of(std::string(root) + line.substr(3));
        if (ino) return ino;
      }
    }
  return 0;
}

struct Peer {
  std::unique_ptr<Child> child;
  int port = 0;
};

std::vector<std::string> with_prefix(const std::vector<std::string>& prefix, std::vector<std::string> argv) {
  std::vector<std::string> out = prefix;
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Peer start_server(const std::string& addr, uint64_t bytes, long count, bool linger0 = false,
                  const std::vector<std::string>& prefix = {}) {
  std::vector<std::string> argv = {peer_bin(), "server", addr, "0", std::to_string(bytes), std::to_string(count)};
  if (linger0) argv.push_back("linger0");
  Peer p;
  p.child = std::make_unique<Child>(with_prefix(prefix, argv));
  auto l = p.child->line();
  if (l && l->rfind("READY ", 0) == 0) p.port = std::stoi(l->substr(6));
  return p;
}

// Runs a client to completion; returns the local ports it reported (empty when connect failed).
struct ClientRun {
  pid_t pid = 0;
  std::vector<int> ports;
  std::string error;
  int status = -1;
};
ClientRun run_client(const std::string& addr, int port, uint64_t bytes, std::vector<std::string> extra = {},
                     const std::vector<std::string>& prefix = {}) {
  std::vector<std::string> argv = {peer_bin(), "client", addr, std::to_string(port), std::to_string(bytes)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  Child c(with_prefix(prefix, argv));
  ClientRun r;
  r.pid = c.pid();
  while (auto l = c.line()) {
    if (l->rfind("LOCAL ", 0) == 0) r.ports.push_back(std::stoi(l->substr(6)));
    if (l->rfind("ERROR ", 0) == 0) r.error = l->substr(6);
  }
  r.status = c.wait();
  return r;
}

auto close_of(int sport, int dport) {
  return [=](const ConnectionEvent& e) { return e.kind == Kind::Close && e.sport == sport && e.dport == dport; };
}
auto open_of(int sport, int dport) {
  return [=](const ConnectionEvent& e) { return e.kind == Kind::Open && e.sport == sport && e.dport == dport; };
}

void expect_owner(const ConnectionEvent& e, pid_t pid, const char* comm) {
  EXPECT_TRUE(e.owner_known);
  EXPECT_EQ(e.pid, uint32_t(pid));
  EXPECT_EQ(e.tid, uint32_t(pid));  // single-threaded peers
  EXPECT_EQ(e.comm_view(), comm);
  EXPECT_EQ(e.cgroup_id, cgroup_id_of(getpid()));  // peers inherit the test's cgroup and exit before we look
}

#define HS_START_COLLECTOR(var, ...)                        \
  HS_REQUIRE_ROOT();                                        \
  EventCollector var{__VA_ARGS__};                          \
  ASSERT_TRUE(var.error().empty()) << var.error();

// N bytes each way over a real connection; both ends fully checked.
void exchange_and_check(EventCollector& col, const std::string& addr, int family, uint64_t n) {
  auto server = start_server(addr, n, 1);
  ASSERT_GT(server.port, 0) << "server did not start";
  auto client = run_client(addr, server.port, n);
  ASSERT_EQ(client.status, 0) << client.error;
  ASSERT_EQ(client.ports.size(), 1u);
  ASSERT_EQ(server.child->wait(), 0);
  int cport = client.ports[0];

  auto active = col.wait_for(1, close_of(cport, server.port));
  auto passive = col.wait_for(1, close_of(server.port, cport));
  ASSERT_EQ(active.size(), 1u) << "client close event missing";
  ASSERT_EQ(passive.size(), 1u) << "server close event missing";
  auto ip = IpAddr::parse(addr == "::1" ? "::1" : "127.0.0.1");

  const auto& a = active[0];
  EXPECT_EQ(a.role, Role::Active);
  expect_owner(a, client.pid, "hs-client");
  EXPECT_EQ(int(a.saddr.family), family);
  EXPECT_EQ(a.saddr, *ip);
  EXPECT_EQ(a.daddr, *ip);
  EXPECT_EQ(a.bytes_sent, n);
  EXPECT_EQ(a.bytes_received, n);
  EXPECT_EQ(a.outcome, Outcome::Closed);
  EXPECT_TRUE(a.connect_latency_ns.has_value());
  EXPECT_TRUE(a.duration_ns.has_value());
  EXPECT_GE(*a.duration_ns, a.connect_latency_ns.value_or(0));
  EXPECT_GT(a.srtt_us, 0u);
  // Under full emulation (the kernel matrix's qemu TCG guests) a loopback segment can outlive the minimum RTO.
  if (std::getenv("HS_EMULATED_KERNEL"))
    EXPECT_LE(a.retransmits, 3u);
  else
    EXPECT_EQ(a.retransmits, 0u);
  EXPECT_EQ(a.netns, own_netns());
  EXPECT_FALSE(a.goid.has_value());

  const auto& p = passive[0];
  EXPECT_EQ(p.role, Role::Passive);
  expect_owner(p, server.child->pid(), "hs-server");
  EXPECT_EQ(p.saddr, *ip);
  EXPECT_EQ(p.daddr, *ip);
  EXPECT_EQ(p.bytes_sent, n);
  EXPECT_EQ(p.bytes_received, n);
  EXPECT_EQ(p.outcome, Outcome::Closed);
  EXPECT_FALSE(p.connect_latency_ns.has_value());
  EXPECT_TRUE(p.duration_ns.has_value());
  EXPECT_EQ(p.netns, own_netns());
  EXPECT_NE(a.sock_id, p.sock_id);

  // Open events: one per side, same owners, and the same socket ids as the closes.
  auto ao = col.wait_for(1, open_of(cport, server.port));
  auto po = col.wait_for(1, open_of(server.port, cport));
  ASSERT_EQ(ao.size(), 1u);
  ASSERT_EQ(po.size(), 1u);
  expect_owner(ao[0], client.pid, "hs-client");
  expect_owner(po[0], server.child->pid(), "hs-server");
  EXPECT_EQ(ao[0].sock_id, a.sock_id);
  EXPECT_EQ(po[0].sock_id, p.sock_id);
  EXPECT_LE(ao[0].ts_ns, a.ts_ns);
}

class TcpLifecycleModes : public ::testing::TestWithParam<bpf::AttachMode> {};

TEST_P(TcpLifecycleModes, Ipv4LoopbackExchangeHasExactOwnersTupleAndBytes) {
  bpf::TcpTracerOptions o;
  o.mode = GetParam();
  HS_START_COLLECTOR(col, o);
  EXPECT_EQ(col.tracer().mode(), GetParam());
  exchange_and_check(col, "127.0.0.1", 4, 100000);
}

INSTANTIATE_TEST_SUITE_P(AttachModes, TcpLifecycleModes,
                         ::testing::Values(bpf::AttachMode::Btf, bpf::AttachMode::Classic),
                         [](const auto& info) { return std::string(bpf::to_string(info.param) == "tp_btf" ? "tp_btf" : "classic"); });

TEST(TcpLifecycle, Ipv6LoopbackExchange) {
  HS_START_COLLECTOR(col);
  exchange_and_check(col, "::1", 6, 7777);
}

TEST(TcpLifecycle, SmallAndEmptyPayloadsAreExact) {
  HS_START_COLLECTOR(col);
  exchange_and_check(col, "127.0.0.1", 4, 1);
}

TEST(TcpLifecycle, V4MappedIpv6IsShownAsIpv4) {
  HS_START_COLLECTOR(col);
  auto server = start_server("::", 10, 1);
  ASSERT_GT(server.port, 0);
  auto client = run_client("::ffff:127.0.0.1", server.port, 10);
  ASSERT_EQ(client.status, 0) << client.error;
  auto a = col.wait_for(1, close_of(client.ports.at(0), server.port));
  auto p = col.wait_for(1, close_of(server.port, client.ports.at(0)));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(p.size(), 1u);
  for (auto* e : {&a[0], &p[0]}) {
    EXPECT_EQ(e->saddr.str(), "127.0.0.1");
    EXPECT_EQ(e->daddr.str(), "127.0.0.1");
    EXPECT_EQ(int(e->saddr.family), 4);
    EXPECT_EQ(e->bytes_sent, 10u);
  }
}

TEST(TcpLifecycle, ConnectToClosedPortIsRefused) {
  HS_START_COLLECTOR(col);
  // A port nobody listens on: bind an ephemeral port and release it.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  socklen_t len = sizeof(sa);
  getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  int port = ntohs(sa.sin_port);
  close(s);

  auto client = run_client("127.0.0.1", port, 0);
  EXPECT_EQ(client.status, 3);
  auto ev = col.wait_for(1, [&](const ConnectionEvent& e) {
    return e.kind == Kind::Close && e.dport == port && e.pid == uint32_t(client.pid);
  });
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].outcome, Outcome::Refused);
  EXPECT_EQ(ev[0].role, Role::Active);
  expect_owner(ev[0], client.pid, "hs-client");
  EXPECT_FALSE(ev[0].connect_latency_ns.has_value());
  EXPECT_EQ(ev[0].bytes_sent, 0u);
  EXPECT_EQ(ev[0].daddr.str(), "127.0.0.1");
}

TEST(TcpLifecycle, AbortiveCloseIsResetSentAndResetReceived) {
  HS_START_COLLECTOR(col);
  auto server = start_server("127.0.0.1", 64, 1);
  ASSERT_GT(server.port, 0);
  auto client = run_client("127.0.0.1", server.port, 64, {"linger0"});
  ASSERT_EQ(client.status, 0) << client.error;
  server.child->wait();
  auto a = col.wait_for(1, close_of(client.ports.at(0), server.port));
  auto p = col.wait_for(1, close_of(server.port, client.ports.at(0)));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(a[0].outcome, Outcome::ResetSent);
  EXPECT_EQ(p[0].outcome, Outcome::ResetReceived);
  EXPECT_EQ(a[0].bytes_sent, 64u);
  EXPECT_EQ(p[0].bytes_received, 64u);
  expect_owner(p[0], server.child->pid(), "hs-server");
}

// The passive owner is taken in the owner's context: at its first send or receive, or at its close() when it never
// did I/O. A connection the peer resets before the owner touched it has no owner, and the kernel counts it.
namespace {
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), len) || listen(fd, 16) ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len))
      return;
    port = ntohs(a.sin_port);
  }
  ~Listener() {
    if (fd >= 0) close(fd);
  }
};

// A child process connects to `port`, reports its local port, then resets the connection (SO_LINGER 0), closes it
// at once, or waits for the server's FIN; it exits afterwards. Returns its pid and local port (0 when it failed).
struct ChildClient {
  pid_t pid = -1;
  int port = 0;
};
enum class ChildEnd { wait_for_fin, reset, close_now };
ChildClient connect_from_child(int port, ChildEnd end) {
  ChildClient cc;
  int p[2];
  if (pipe(p)) return cc;
  cc.pid = fork();
  if (cc.pid != 0) {
    if (cc.pid < 0 || read(p[0], &cc.port, sizeof(cc.port)) != ssize_t(sizeof(cc.port))) cc.port = 0;
    close(p[0]);
    close(p[1]);
    return cc;
  }
  const int pipe_w = p[1];
  int c = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  if (connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a))) _exit(1);
  socklen_t len = sizeof(a);
  getsockname(c, reinterpret_cast<sockaddr*>(&a), &len);
  int local = ntohs(a.sin_port);
  if (write(pipe_w, &local, sizeof(local)) != sizeof(local)) _exit(1);
  if (end == ChildEnd::reset) {
    linger l{1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  } else if (end == ChildEnd::wait_for_fin) {
    char b;
    while (read(c, &b, 1) > 0) {
    }
  }
  close(c);
  _exit(0);
}

// connect_from_child, and wait until the child has done what `end` says and exited.
ChildClient child_that_ended(int port, ChildEnd end) {
  auto cc = connect_from_child(port, end);
  int status = 0;
  if (cc.pid > 0) waitpid(cc.pid, &status, 0);
  return cc;
}
}  // namespace

TEST(TcpLifecycle, PassiveOwnerIsTakenAtCloseWhenTheOwnerNeverDidIo) {
  HS_START_COLLECTOR(col);
  Listener l;
  ASSERT_GT(l.port, 0);
  auto child = connect_from_child(l.port, ChildEnd::wait_for_fin);
  ASSERT_GT(child.port, 0);
  const int cport = child.port;
  int s = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(s, 0);
  close(s);  // no send, no receive: the owner is whoever closes it (this test process)
  int status = 0;
  waitpid(child.pid, &status, 0);
  auto opens = col.wait_for(1, open_of(l.port, cport));
  auto closes = col.wait_for(1, close_of(l.port, cport));
  ASSERT_EQ(opens.size(), 1u);
  ASSERT_EQ(closes.size(), 1u);
  for (const auto* e : {&opens[0], &closes[0]}) {
    EXPECT_EQ(e->role, Role::Passive);
    EXPECT_TRUE(e->owner_known);
    EXPECT_EQ(e->pid, uint32_t(getpid()));
  }
  EXPECT_EQ(closes[0].outcome, Outcome::Closed);
}

// Issue 17: a long-lived accepted connection names its server process before it closes, on every kernel. Where
// the kernel has neither send/receive tracepoint (6.1) the owner comes from fexit/inet_csk_accept, at accept() and
// before any I/O; elsewhere from the owner's first send.
TEST(TcpLifecycle, AcceptedLongLivedConnectionNamesItsServerBeforeItCloses) {
  HS_START_COLLECTOR(col);
  bool at_accept = false;
  for (const auto& h : col.tracer().hooks())
    if (h.hook == "fexit/inet_csk_accept") at_accept = h.mode == bpf::HookMode::Fexit;
  {
    bpf::KernelHooks kernel;
    if (!kernel.btf_tracepoint("sock_send_length") && !kernel.btf_tracepoint("sock_recv_length") &&
        kernel.fexit_error("inet_csk_accept").empty())
      EXPECT_TRUE(at_accept) << "the kernel runs fexit/inet_csk_accept but the tracer did not attach it";
  }
  Listener l;
  ASSERT_GT(l.port, 0);
  auto child = connect_from_child(l.port, ChildEnd::wait_for_fin);
  ASSERT_GT(child.port, 0);
  const int cport = child.port;
  int s = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(s, 0);
  if (!at_accept) ASSERT_EQ(write(s, "x", 1), 1);  // the owner's first send names it
  auto opens = col.wait_for(1, open_of(l.port, cport));
  EXPECT_TRUE(col.matching(close_of(l.port, cport)).empty()) << "the connection is still open";
  char comm[16] = {};
  std::ifstream("/proc/self/comm").getline(comm, sizeof(comm));
  ASSERT_EQ(opens.size(), 1u);
  EXPECT_EQ(opens[0].role, Role::Passive);
  EXPECT_TRUE(opens[0].owner_known);
  EXPECT_EQ(opens[0].pid, uint32_t(getpid()));
  EXPECT_EQ(opens[0].comm_view(), comm);
  close(s);
  int status = 0;
  waitpid(child.pid, &status, 0);
  EXPECT_EQ(col.wait_for(1, close_of(l.port, cport)).size(), 1u);
}

TEST(TcpLifecycle, PassiveConnectionResetBeforeItsOwnerActsHasNoOwnerAndIsCounted) {
  HS_START_COLLECTOR(col);
  const uint64_t before = col.tracer().counters().passive_owner_unknown;
  Listener l;
  ASSERT_GT(l.port, 0);
  auto child = child_that_ended(l.port, ChildEnd::reset);
  ASSERT_GT(child.port, 0);
  const int cport = child.port;  // the client has reset the connection; the server end never saw its owner
  auto closes = col.wait_for(1, close_of(l.port, cport));
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(closes[0].role, Role::Passive);
  EXPECT_FALSE(closes[0].owner_known);
  EXPECT_EQ(closes[0].pid, 0u);
  EXPECT_EQ(closes[0].outcome, Outcome::ResetReceived);
  EXPECT_EQ(col.tracer().counters().passive_owner_unknown, before + 1);
  EXPECT_TRUE(col.matching(open_of(l.port, cport)).empty());  // no open: nobody owned it
  // Accepting it afterwards finds a dead socket; nothing more is reported for it.
  int s = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (s >= 0) close(s);
}

// Local peer stitching in the kernel: each end of a loopback connection names the other's owner, on its close
// and on the server's open (the client's open comes before the server's owner is known), with no open events.
TEST(TcpLifecycle, LocalPeersAreStitchedInTheKernel) {
  HS_START_COLLECTOR(col, {.emit_opens = false, .stitch_peers = true});
  auto server = start_server("127.0.0.1", 100, 1);
  ASSERT_GT(server.port, 0);
  auto client = run_client("127.0.0.1", server.port, 100);
  ASSERT_EQ(client.status, 0) << client.error;
  ASSERT_EQ(server.child->wait(), 0);
  const int cport = client.ports.at(0);
  auto a = col.wait_for(1, close_of(cport, server.port));
  auto p = col.wait_for(1, close_of(server.port, cport));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(a[0].pid, uint32_t(client.pid));
  EXPECT_EQ(a[0].peer_pid, uint32_t(server.child->pid()));
  EXPECT_EQ(p[0].pid, uint32_t(server.child->pid()));
  EXPECT_EQ(p[0].peer_pid, uint32_t(client.pid));
  EXPECT_TRUE(col.matching(open_of(cport, server.port)).empty());  // opens were not asked for
  EXPECT_EQ(col.tracer().counters().peer_evicted, 0u);

  // A connection to a port on which nobody listens has no peer.
  auto refused = run_client("127.0.0.1", 1, 0);
  auto r = col.wait_for(1, [&](const ConnectionEvent& e) { return e.kind == Kind::Close && e.pid == uint32_t(refused.pid); });
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].peer_pid.has_value());
}

// The client connects and closes before the server's owner first acts: its close cannot name the server (whose
// owner is not known yet), but its tuple stays for the grace period, so the server, when it reads, names it.
TEST(TcpLifecycle, ServerWhoseOwnerActsAfterTheClientClosedStillNamesIt) {
  HS_START_COLLECTOR(col, {.emit_opens = true, .stitch_peers = true});
  Listener l;
  ASSERT_GT(l.port, 0);
  auto child = child_that_ended(l.port, ChildEnd::close_now);
  ASSERT_GT(child.port, 0);
  const int cport = child.port;
  auto client_close = col.wait_for(1, close_of(cport, l.port));
  ASSERT_EQ(client_close.size(), 1u);  // the orphaned client becomes a timewait socket once its FIN is acked
  int s = accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(s, 0);
  char b;
  EXPECT_EQ(read(s, &b, 1), 0);  // the client's FIN: the owner's first receive
  close(s);
  auto opens = col.wait_for(1, open_of(l.port, cport));
  auto closes = col.wait_for(1, close_of(l.port, cport));
  ASSERT_EQ(opens.size(), 1u);
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(opens[0].peer_pid, uint32_t(child.pid));
  EXPECT_EQ(closes[0].pid, uint32_t(getpid()));
  EXPECT_EQ(closes[0].peer_pid, uint32_t(child.pid));
  EXPECT_FALSE(client_close[0].peer_pid.has_value());
}

// Two namespaces joined by a veth pair: a real (non-loopback) path, per-namespace netns inodes, and a
// blackholed port (DROP in the server namespace) for the timed-out outcome.
TEST(TcpLifecycle, NetnsVethExchangeAndBlackholedConnectTimesOut) {
  HS_START_COLLECTOR(col);
  Netns a("a"), b("b");
  ASSERT_TRUE(a.ok() && b.ok());
  std::string va = "hsa" + std::to_string(getpid() % 100000), vb = "hsb" + std::to_string(getpid() % 100000);
  ASSERT_EQ(sh("ip link add " + va + " netns " + a.name() + " type veth peer name " + vb + " netns " + b.name()).status, 0);
  ASSERT_EQ(sh(a.exec("ip addr add 10.213.7.1/24 dev " + va)).status, 0);
  ASSERT_EQ(sh(b.exec("ip addr add 10.213.7.2/24 dev " + vb)).status, 0);
  sh(a.exec("ip link set " + va + " up"));
  sh(b.exec("ip link set " + vb + " up"));
  ASSERT_EQ(sh(b.exec("iptables -A INPUT -p tcp --dport 9 -j DROP")).status, 0);

  auto server = start_server("10.213.7.2", 5000, 1, false, {"ip", "netns", "exec", b.name()});
  ASSERT_GT(server.port, 0);
  auto client = run_client("10.213.7.2", server.port, 5000, {}, {"ip", "netns", "exec", a.name()});
  ASSERT_EQ(client.status, 0) << client.error;
  auto ac = col.wait_for(1, close_of(client.ports.at(0), server.port));
  auto pc = col.wait_for(1, close_of(server.port, client.ports.at(0)));
  ASSERT_EQ(ac.size(), 1u);
  ASSERT_EQ(pc.size(), 1u);
  EXPECT_EQ(ac[0].netns, a.inode());
  EXPECT_EQ(pc[0].netns, b.inode());
  EXPECT_EQ(ac[0].saddr.str(), "10.213.7.1");
  EXPECT_EQ(ac[0].daddr.str(), "10.213.7.2");
  EXPECT_EQ(pc[0].saddr.str(), "10.213.7.2");
  EXPECT_EQ(ac[0].bytes_sent, 5000u);
  EXPECT_EQ(pc[0].bytes_received, 5000u);
  expect_owner(ac[0], client.pid, "hs-client");
  expect_owner(pc[0], server.child->pid(), "hs-server");

  // TCP_SYNCNT=1: one retry, gives up after about 3 s.
  auto blackholed = run_client("10.213.7.2", 9, 0, {"syncnt=1"}, {"ip", "netns", "exec", a.name()});
  EXPECT_EQ(blackholed.status, 3);
  auto t = col.wait_for(1, [&](const ConnectionEvent& e) { return e.kind == Kind::Close && e.dport == 9 && e.pid == uint32_t(blackholed.pid); });
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].outcome, Outcome::TimedOut);
  EXPECT_EQ(t[0].netns, a.inode());
  EXPECT_EQ(t[0].daddr.str(), "10.213.7.2");
}

// Thousands of connections open at the same time: every one must be reported on both ends, none missing.
TEST(TcpLifecycle, ThousandsOfConcurrentConnectionsNoneMissing) {
  HS_START_COLLECTOR(col);
  const long n = 3000;
  auto server = start_server("127.0.0.1", 0, n);
  ASSERT_GT(server.port, 0);
  auto client = run_client("127.0.0.1", server.port, 0, {"concurrent=" + std::to_string(n)});
  ASSERT_EQ(client.status, 0) << client.error;
  ASSERT_EQ(long(client.ports.size()), n);
  ASSERT_EQ(server.child->wait(), 0);
  std::set<int> want(client.ports.begin(), client.ports.end());
  ASSERT_EQ(long(want.size()), n);

  auto is_active = [&](const ConnectionEvent& e) { return e.kind == Kind::Close && e.dport == server.port && want.count(e.sport); };
  auto is_passive = [&](const ConnectionEvent& e) { return e.kind == Kind::Close && e.sport == server.port && want.count(e.dport); };
  auto act = col.wait_for(size_t(n), is_active, std::chrono::seconds(30));
  auto pas = col.wait_for(size_t(n), is_passive, std::chrono::seconds(30));
  std::set<int> seen_a, seen_p;
  for (auto& e : act) {
    seen_a.insert(e.sport);
    EXPECT_EQ(e.pid, uint32_t(client.pid));
  }
  for (auto& e : pas) {
    seen_p.insert(e.dport);
    EXPECT_EQ(e.pid, uint32_t(server.child->pid()));
  }
  EXPECT_EQ(seen_a, want);
  EXPECT_EQ(seen_p, want);
  EXPECT_EQ(long(act.size()), n);
  EXPECT_EQ(long(pas.size()), n);
  auto c = col.tracer().counters();
  EXPECT_EQ(c.socket_table_full, 0u);
  if (long(act.size()) != n) {
    size_t any = col.matching([&](const ConnectionEvent& e) { return e.dport == server.port || e.sport == server.port; }).size();
    ADD_FAILURE() << "events touching the server port: " << any << ", untracked closes: " << c.close_untracked
                  << ", events: " << c.events << ", recursion misses: " << c.prog_recursion_misses;
    std::map<std::string, int> kinds;
    for (auto& e : col.matching([&](const ConnectionEvent& e) { return e.dport == server.port || e.sport == server.port; }))
      kinds[std::string(events::to_string(e.kind)) + "/" + std::string(events::to_string(e.role)) + "/" + std::string(events::to_string(e.outcome))]++;
    for (auto& [k, v] : kinds) ADD_FAILURE() << k << ": " << v;
    // Sockets the kernel has not closed yet are not missed events: show what is still there.
    ADD_FAILURE() << "sockets still on the server port:\n"
                  << sh("ss -tan '( sport = :" + std::to_string(server.port) + " or dport = :" +
                        std::to_string(server.port) + " )' | awk '{print $1}' | sort | uniq -c").out;
  }
  EXPECT_EQ(col.tracer().counters().ringbuf_dropped, 0u);
}

// ---- kernel edge aggregation (tcp_edges, docs/aggregation.md) ----

// The edge a connection event counts in, as bpf/tcp_lifecycle.bpf.c keys it.
hs_edge_key edge_key_of(const ConnectionEvent& e) {
  hs_edge_key k{};
  std::memcpy(k.laddr, e.saddr.bytes.data(), 16);
  std::memcpy(k.raddr, e.daddr.bytes.data(), 16);
  k.family = e.saddr.is_v6() ? 6 : 4;
  k.role = uint8_t(e.role);
  k.pid = e.pid;
  k.cgroup_id = e.cgroup_id;
  if (e.role == Role::Passive && e.peer_pid) k.peer_pid = *e.peer_pid;
  auto loopback = [](const IpAddr& a) { return a.is_v4() ? a.bytes[0] == 127 : a == *IpAddr::parse("::1"); };
  if (loopback(e.saddr) && loopback(e.daddr)) k.netns = e.netns;
  k.port = e.role == Role::Active ? e.dport : e.role == Role::Passive ? e.sport : std::min(e.sport, e.dport);
  return k;
}

std::string edge_str(const hs_edge_key& k) {
  IpAddr l{k.family == 6 ? Family::V6 : Family::V4, {}}, r = l;
  std::memcpy(l.bytes.data(), k.laddr, 16);
  std::memcpy(r.bytes.data(), k.raddr, 16);
  return fmt::format("{} {} -> {} port {} pid {} cgroup {} peer {} netns {}", events::to_string(Role(k.role)),
                     l.str(), r.str(), k.port, k.pid, k.cgroup_id, k.peer_pid, k.netns);
}

uint32_t latency_bucket(uint64_t us) {
  uint32_t b = us ? uint32_t(std::bit_width(us)) : 0;  // floor(log2)+1
  return std::min<uint32_t>(b, HS_EDGE_LAT_BUCKETS - 1);
}

// What the events of the connections on `ports` (server ports) add up to, per edge.
std::map<std::string, hs_edge_counts> edges_from_events(const std::vector<ConnectionEvent>& evs, const std::set<int>& ports) {
  std::map<std::string, hs_edge_counts> out;
  for (const auto& e : evs) {
    auto k = edge_key_of(e);
    if (!ports.count(k.port)) continue;
    auto& c = out[edge_str(k)];
    if (e.kind == Kind::Open) {
      c.opens++;
      if (e.connect_latency_ns) {
        c.latency_sum_ns += *e.connect_latency_ns;
        c.latency_log2_us[latency_bucket(*e.connect_latency_ns / 1000)]++;
      }
    } else {
      c.closes++;
      c.outcomes[size_t(e.outcome)]++;
      c.bytes_sent += e.bytes_sent;
      c.bytes_received += e.bytes_received;
      c.retransmits += e.retransmits;
    }
  }
  return out;
}

std::map<std::string, hs_edge_counts> edges_from_kernel(const std::vector<bpf::KernelEdge>& edges, const std::set<int>& ports) {
  std::map<std::string, hs_edge_counts> out;
  for (const auto& e : edges)
    if (ports.count(e.key.port)) {
      auto c = e.counts;
      c.last_ns = 0;  // when, not what
      out[edge_str(e.key)] = c;
    }
  return out;
}

std::string counts_str(const hs_edge_counts& c) {
  std::string s = fmt::format("opens {} closes {} sent {} received {} retrans {} latency_sum {} outcomes", c.opens,
                              c.closes, c.bytes_sent, c.bytes_received, c.retransmits, c.latency_sum_ns);
  for (auto o : c.outcomes) s += fmt::format(" {}", o);
  s += " latency_log2_us";
  for (auto b : c.latency_log2_us) s += fmt::format(" {}", b);
  return s;
}

void expect_same_edges(const std::map<std::string, hs_edge_counts>& kernel,
                       const std::map<std::string, hs_edge_counts>& events) {
  for (const auto& [k, c] : events) {
    auto it = kernel.find(k);
    if (it == kernel.end()) {
      ADD_FAILURE() << "edge not in the kernel table: " << k << "\n  events: " << counts_str(c);
      continue;
    }
    EXPECT_EQ(counts_str(it->second), counts_str(c)) << k;
  }
  for (const auto& [k, c] : kernel)
    if (!events.count(k)) ADD_FAILURE() << "kernel edge without events: " << k << "\n  kernel: " << counts_str(c);
}

// The same known workload, counted both ways: every edge's kernel figures equal what its events add up to. IPv4
// and IPv6, several connections per edge with known sizes, a one-way transfer, refused connects, resets, local
// peers stitched (the daemon's settings) and a connection still open.
TEST(TcpLifecycle, AggregatedEdgesAgreeWithTheEvents) {
  HS_START_COLLECTOR(col, {.emit_opens = true, .stitch_peers = true, .edge_table_size = 4096});
  std::set<int> ports = {1};
  size_t closes = 0;
  auto exchange = [&](const std::string& addr, uint64_t bytes, int conns, bool linger0) {
    auto server = start_server(addr, bytes, conns, linger0);
    ASSERT_GT(server.port, 0);
    ports.insert(server.port);
    for (int i = 0; i < conns; i++) {
      auto client = run_client(addr, server.port, bytes, linger0 ? std::vector<std::string>{"linger0"} : std::vector<std::string>{});
      ASSERT_EQ(client.status, 0) << client.error;
    }
    ASSERT_EQ(server.child->wait(), 0);
    closes += 2 * size_t(conns);
  };
  exchange("127.0.0.1", 1000, 3, false);
  exchange("::1", 70000, 2, false);
  exchange("127.0.0.1", 64, 1, true);  // the client resets
  for (const char* addr : {"127.0.0.1", "::1"}) {
    EXPECT_EQ(run_client(addr, 1, 0).status, 3);  // refused
    closes++;
  }
  // A child process connects to `l` and reads until the server's FIN; the accepted end writes `data` (its owner's
  // first send names it where it is not named at accept). Returns the child and the accepted socket (-1: failed).
  auto serve = [&](Listener& l, std::string_view data) {
    ports.insert(l.port);
    auto child = connect_from_child(l.port, ChildEnd::wait_for_fin);
    int fd = child.port > 0 ? accept4(l.fd, nullptr, nullptr, SOCK_CLOEXEC) : -1;
    if (fd >= 0 && write(fd, data.data(), data.size()) != ssize_t(data.size())) {
      close(fd);
      fd = -1;
    }
    return std::pair{child, fd};
  };
  Listener one_way, kept_open;
  ASSERT_GT(one_way.port, 0);
  ASSERT_GT(kept_open.port, 0);
  {  // One way only: the server writes 5 bytes and closes; the client only reads.
    auto [reader, c] = serve(one_way, "hello");
    ASSERT_GE(c, 0);
    close(c);
    int status = 0;
    waitpid(reader.pid, &status, 0);
    closes += 2;
  }
  // A connection that stays open: counted as opened on both ends, not closed.
  auto [child, s] = serve(kept_open, "x");
  ASSERT_GE(s, 0);
  auto on_ports = [&](const ConnectionEvent& e) { return ports.count(edge_key_of(e).port) > 0; };
  auto closed = col.wait_for(closes, [&](const ConnectionEvent& e) { return e.kind == Kind::Close && on_ports(e); });
  ASSERT_EQ(closed.size(), closes);
  ASSERT_EQ(col.wait_for(1, open_of(kept_open.port, child.port)).size() +
                col.wait_for(1, open_of(child.port, kept_open.port)).size(),
            2u);

  // The kernel counts the entries it creates (the table's occupancy in health): as many as a read finds.
  const uint64_t created_before = col.tracer().counters().edges_created;
  auto kernel = col.tracer().read_edges();
  ASSERT_TRUE(kernel) << kernel.error().str();
  EXPECT_GE(kernel->size(), created_before);
  EXPECT_LE(kernel->size(), col.tracer().counters().edges_created);
  auto want = edges_from_events(col.matching(on_ports), ports);
  // Each client is its own process, so each connection is its own pair of edges (the server's end is keyed on its
  // stitched local client): 6 + 4 + 2 for the exchanges, 2 refused clients, 2 for the one-way connection, 2 ends
  // of the open connection.
  EXPECT_EQ(want.size(), 18u);
  expect_same_edges(edges_from_kernel(*kernel, ports), want);
  EXPECT_EQ(col.tracer().counters().edge_table_full, 0u);
  close(s);
  int status = 0;
  waitpid(child.pid, &status, 0);
}

// Per-connection events off: a connection is sent only when its edge finds no room in the table (counted), and
// never both counted and sent; switched back on at run time, events flow again.
TEST(TcpLifecycle, WithEventsOffOnlyWhatTheEdgeTableCannotHoldIsSent) {
  HS_START_COLLECTOR(col, {.emit_opens = true, .stitch_peers = true, .edge_table_size = 2, .events_wanted = false});
  std::set<int> ports;
  std::vector<Peer> servers;
  for (const char* addr : {"127.0.0.1", "::1", "127.0.0.1"}) {
    auto server = start_server(addr, 100, 3);
    ASSERT_GT(server.port, 0);
    ports.insert(server.port);
    for (int i = 0; i < 2; i++) ASSERT_EQ(run_client(addr, server.port, 100).status, 0);
    servers.push_back(std::move(server));
  }
  // 3 servers x 2 ends: 6 edges, 12 connection ends, in a table of 2.
  auto on_ports = [&](const ConnectionEvent& e) { return ports.count(edge_key_of(e).port) > 0; };
  auto sent_closes = [&] { return col.matching([&](const ConnectionEvent& e) { return e.kind == Kind::Close && on_ports(e); }); };
  std::map<std::string, hs_edge_counts> kernel;
  size_t counted = 0;
  eventually([&] {
    auto k = col.tracer().read_edges();
    if (!k) return false;
    kernel = edges_from_kernel(*k, ports);
    counted = 0;
    for (auto& [key, c] : kernel) counted += c.closes;
    return counted + sent_closes().size() == 12;
  });
  auto sent = edges_from_events(col.matching(on_ports), ports);
  EXPECT_EQ(counted + sent_closes().size(), 12u) << "every connection end is counted or sent";
  EXPECT_LE(kernel.size(), 2u);
  EXPECT_GE(sent.size(), 4u);
  for (auto& [key, c] : sent) EXPECT_FALSE(kernel.count(key)) << "counted and sent: " << key;
  EXPECT_GE(col.tracer().counters().edge_table_full, 8u);  // at least 4 edges x 2 connections x (open + close)

  // Events wanted again: the next connection of a counted edge is counted and sent.
  col.tracer().set_events_wanted(true);
  auto& srv = servers.front();
  auto client = run_client("127.0.0.1", srv.port, 100);
  ASSERT_EQ(client.status, 0) << client.error;
  EXPECT_EQ(srv.child->wait(), 0);
  EXPECT_EQ(col.wait_for(1, close_of(client.ports.at(0), srv.port)).size(), 1u);
  EXPECT_EQ(col.wait_for(1, close_of(srv.port, client.ports.at(0))).size(), 1u);
}

// Every combination of the tracer's switches loads and attaches on this kernel, with the BTF-typed hooks where the
// kernel has them: the verifier rejected one combination only (stitch_peers), twice, and the tracer's fallback to
// classic tracepoints hid it.
TEST(TcpLifecycle, EveryOptionCombinationLoads) {
  HS_REQUIRE_ROOT();
  const bool btf_state_hook = bpf::KernelHooks().btf_tracepoint("inet_sock_set_state");
  for (int bits = 0; bits < 16; bits++) {
    bpf::TcpTracerOptions o;
    o.emit_opens = bits & 1;
    o.stitch_peers = bits & 2;
    o.edge_table_size = (bits & 4) ? 1024 : 0;
    o.mode = (bits & 8) ? bpf::AttachMode::Classic : bpf::AttachMode::Auto;
    auto t = bpf::TcpTracer::start(o);
    std::string what = fmt::format("emit_opens {} stitch_peers {} edges {} mode {}", o.emit_opens, o.stitch_peers,
                                   o.edge_table_size, bpf::to_string(o.mode));
    ASSERT_TRUE(t) << what << ": " << t.error().str();
    // Auto must not have fallen back to classic tracepoints where the kernel has the BTF-typed one (a verifier
    // rejection of the tp_btf programs shows up as exactly that fallback).
    if (o.mode == bpf::AttachMode::Auto && btf_state_hook)
      EXPECT_EQ((*t)->mode(), bpf::AttachMode::Btf) << what << ": " << fmt::format("{}", fmt::join((*t)->degraded(), "; "));
  }
}

}  // namespace
