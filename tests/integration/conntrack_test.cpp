// DNAT resolution for real: a network namespace owned by the test, a DNAT rule in it
// (10.96.0.10:80 -> 127.0.0.1:<port>, like a kube-proxy ClusterIP), a real TCP connection, and
// NetfilterConntrack opened on that namespace's fd must report 127.0.0.1:<port>. Then the same through
// NatWorker into the topology store. Everything lives in the namespace, which is deleted afterwards.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <thread>

#include "agent/topology/conntrack.h"
#include "agent/topology/topology.h"
#include "common/fd.h"
#include "support/privileged.h"

namespace hostscope::topology {
namespace {

using hostscope::testing::in_ci;
using hostscope::testing::Netns;
using hostscope::testing::sh;


struct Flow {
  std::string error;
  uint16_t listen_port = 0;
  FlowTuple tuple;  // as the client socket saw it
};

// Runs `fn` on a thread that entered the namespace, so the test process itself never changes namespace.
template <typename Fn>
auto in_netns(int netns_fd, Fn fn) {
  return std::async(std::launch::async, [=]() mutable {
    if (setns(netns_fd, CLONE_NEWNET) != 0) throw std::runtime_error(std::string("setns: ") + strerror(errno));
    return fn();
  });
}

class ConntrackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HS_REQUIRE_ROOT();
    ns_ = std::make_unique<Netns>("ct");
    HS_REQUIRE_SETUP(ns_->ok(), "ip netns add");
    // A route for the ClusterIP range, so connect() gets as far as the nat OUTPUT hook.
    // (A veth pair with both ends inside the namespace: it disappears with the namespace.)
    auto r = sh(ns_->exec("sh -c 'ip link add hsv0 type veth peer name hsv1 && ip addr add 10.0.0.1/24 dev hsv0 && "
                          "ip link set hsv0 up && ip link set hsv1 up && ip route add 10.96.0.0/16 dev hsv0'"));
    HS_REQUIRE_SETUP(r.status == 0, "veth link: " + r.out);
    fd_.reset(::open(("/run/netns/" + ns_->name()).c_str(), O_RDONLY | O_CLOEXEC));
    HS_REQUIRE_SETUP(bool(fd_), "open netns fd");
  }

  // Listens on 127.0.0.1:<ephemeral>, installs the DNAT rule to it, connects to 10.96.0.10:80 and keeps the
  // connection open in the returned sockets.
  Flow connect_through_dnat(std::vector<UniqueFd>& keep) {
    Flow f;
    auto listener = in_netns(fd_.get(), [&]() {
      UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof(a);
      if (!l || bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) || listen(l.get(), 8) ||
          getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len))
        return std::pair<UniqueFd, uint16_t>{UniqueFd(), 0};
      return std::pair<UniqueFd, uint16_t>{std::move(l), ntohs(a.sin_port)};
    }).get();
    if (!listener.first) {
      f.error = "listen failed";
      return f;
    }
    f.listen_port = listener.second;
    auto rule = sh(ns_->exec("iptables -w -t nat -A OUTPUT -d 10.96.0.10 -p tcp --dport 80 -j DNAT --to-destination 127.0.0.1:" +
                             std::to_string(f.listen_port)));
    if (rule.status != 0) {
      f.error = "iptables DNAT rule: " + rule.out;
      return f;
    }
    auto client = in_netns(fd_.get(), [&]() {
      UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in d{};
      d.sin_family = AF_INET;
      d.sin_port = htons(80);
      inet_pton(AF_INET, "10.96.0.10", &d.sin_addr);
      sockaddr_in self{};
      socklen_t len = sizeof(self);
      if (!c || connect(c.get(), reinterpret_cast<sockaddr*>(&d), sizeof(d)) ||
          getsockname(c.get(), reinterpret_cast<sockaddr*>(&self), &len))
        return std::pair<UniqueFd, sockaddr_in>{UniqueFd(), self};
      return std::pair<UniqueFd, sockaddr_in>{std::move(c), self};
    }).get();
    if (!client.first) {
      f.error = std::string("connect to 10.96.0.10:80 failed: ") + strerror(errno);
      return f;
    }
    UniqueFd accepted(accept4(listener.first.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!accepted) {
      f.error = "accept failed";
      return f;
    }
    f.tuple.src.family = Family::V4;
    std::memcpy(f.tuple.src.bytes.data(), &client.second.sin_addr, 4);
    f.tuple.sport = ntohs(client.second.sin_port);
    f.tuple.dst = *IpAddr::parse("10.96.0.10");
    f.tuple.dport = 80;
    keep.push_back(std::move(listener.first));
    keep.push_back(std::move(client.first));
    keep.push_back(std::move(accepted));
    return f;
  }

  std::unique_ptr<Netns> ns_;
  UniqueFd fd_;
};

TEST_F(ConntrackTest, ResolvesDnatToTheActualBackend) {
  std::vector<UniqueFd> keep;
  Flow f = connect_through_dnat(keep);
  HS_REQUIRE_SETUP(f.error.empty(), f.error);

  auto ct = NetfilterConntrack::open(fd_.get());
  ASSERT_TRUE(ct) << ct.error().str();
  auto got = (*ct)->actual_destination(f.tuple);
  ASSERT_TRUE(got) << got.error().str();
  ASSERT_TRUE(got->has_value()) << "conntrack has no entry for " << format_addr_port(f.tuple.src, f.tuple.sport);
  EXPECT_EQ((*got)->str(), "127.0.0.1:" + std::to_string(f.listen_port));

  // A tuple conntrack never saw: no entry, no error.
  FlowTuple unknown = f.tuple;
  unknown.sport = uint16_t(f.tuple.sport ^ 0x5555);
  auto none = (*ct)->actual_destination(unknown);
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_FALSE(none->has_value());

  // The same namespace's conntrack is not the host's: opened in the caller's namespace it does not see the flow.
  auto host = NetfilterConntrack::open();
  ASSERT_TRUE(host) << host.error().str();
  auto from_host = (*host)->actual_destination(f.tuple);
  ASSERT_TRUE(from_host) << from_host.error().str();
  EXPECT_FALSE(from_host->has_value() && (*from_host)->port == f.listen_port);
}

TEST_F(ConntrackTest, TopologyEdgeRecordsDialedAndActual) {
  std::vector<UniqueFd> keep;
  Flow f = connect_through_dnat(keep);
  HS_REQUIRE_SETUP(f.error.empty(), f.error);

  auto ct = NetfilterConntrack::open(fd_.get());
  ASSERT_TRUE(ct) << ct.error().str();
  NatWorker worker(std::move(*ct));
  Topology topo({}, 0);
  topo.set_nat_worker(&worker);

  events::ConnectionEvent e;
  e.kind = events::Kind::Open;
  e.role = events::Role::Active;
  e.saddr = f.tuple.src;
  e.sport = f.tuple.sport;
  e.daddr = f.tuple.dst;
  e.dport = f.tuple.dport;
  e.open_seen = e.established = true;
  topo.ingest(e, Endpoint{"client", "default", "client-0", uint32_t(getpid())}, std::nullopt, 1000);
  worker.wait_idle();
  topo.tick(2000);
  auto s = topo.snapshot(2000);
  ASSERT_EQ(s.edges.size(), 1u);
  EXPECT_EQ(s.edges[0].client.service, "client");
  EXPECT_EQ(s.edges[0].port, 80);
  EXPECT_EQ(s.edges[0].dialed, "10.96.0.10:80");
  EXPECT_EQ(s.edges[0].actual, std::vector<std::string>{"127.0.0.1:" + std::to_string(f.listen_port)});
  EXPECT_EQ(s.counters.nat_translated, 1u);
  auto c = worker.counters();
  EXPECT_EQ(c.lookups, 1u);
  EXPECT_EQ(c.errors, 0u);
  topo.set_nat_worker(nullptr);
}

}  // namespace
}  // namespace hostscope::topology
