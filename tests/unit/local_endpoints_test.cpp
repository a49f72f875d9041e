// Unit tests of identity::LocalEndpoints: the fib_trie, if_inet6 and /proc/net/tcp parsers on fixture text
// (including malformed input), and the cache on a fake /proc tree: one read per namespace, bounds and their
// counters, refresh on age and on process exec/exit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/identity/local_endpoints.h"

using namespace hostscope::identity;
namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;

namespace {

// A node with one pod (10.244.1.7, fd00:10:244:1::7) and the loopback, as the kernel prints it.
const char* kFibTrie = R"(Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.244.1.0/24 2 0 2
        +-- 10.244.1.0/29 2 0 2
           |-- 10.244.1.0
              /24 link UNICAST
           |-- 10.244.1.7
              /32 host LOCAL
        |-- 10.244.1.255
           /32 link BROADCAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 169.254.3.4
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.244.1.0/24 2 0 2
        |-- 10.244.1.7
           /32 host LOCAL
     |-- 192.0.2.9
        /24 link UNICAST
        /32 host LOCAL
)";

const char* kIfInet6 =
    "00000000000000000000000000000001 01 80 10 80       lo\n"
    "fd000010024400010000000000000007 02 40 00 80     eth0\n"
    "fe8000000000000000fc00fffe000001 02 40 20 80     eth0\n"
    "20010db8000000000000000000000001 03 40 00 80     eth1\n";

const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n"
    "   1: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n"
    "   2: 0701F40A:1F90 0201F40A:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1\n";

TEST(Parsers, FibTrieTakesHostLocalLeavesOnly) {
  size_t bad = 0;
  // 10.244.1.7 once (Main and Local both list it); no network, broadcast, loopback or link-local address.
  EXPECT_THAT(parse_fib_trie(kFibTrie, &bad), ElementsAre("10.244.1.7", "192.0.2.9"));
  EXPECT_EQ(bad, 0u);
}

TEST(Parsers, FibTrieMalformed) {
  size_t bad = 0;
  // A broken leaf must not lend its routes to the previous leaf; a route line with no leaf before it is ignored.
  auto v = parse_fib_trie("Main:\n  /32 host LOCAL\n  |-- 10.0.0.1\n     /32 host LOCAL\n  |-- 10.0.0.300\n"
                          "     /32 host LOCAL\n  |-- \n     /32 host LOCAL\n  |-- 10.0.0.2 junk\n     /32 host LOCAL\n"
                          "  +-- 10.0.0.0/8 1 0 0\n     /32 host LOCAL\n",
                          &bad);
  EXPECT_THAT(v, ElementsAre("10.0.0.1"));
  EXPECT_EQ(bad, 3u);
  EXPECT_TRUE(parse_fib_trie("").empty());
  EXPECT_TRUE(parse_fib_trie(std::string("\0\0\n|--", 6)).empty());
}

TEST(Parsers, IfInet6SkipsLoopbackAndLinkLocal) {
  size_t bad = 0;
  EXPECT_THAT(parse_if_inet6(kIfInet6, &bad), ElementsAre("fd00:10:244:1::7", "2001:db8::1"));
  EXPECT_EQ(bad, 0u);
}

TEST(Parsers, IfInet6Malformed) {
  size_t bad = 0;
  auto v = parse_if_inet6("fd00001002440001000000000000000 02 40 00 80 eth0\n"      // 31 digits
                          "fd00001002440001000000000000000g7 02 40 00 80 eth0\n"    // not hex
                          "fd000010024400010000000000000007 02 40\n"                // fields missing
                          "\n"
                          "fd000010024400010000000000000008 02 40 00 80     eth0",  // no final newline
                          &bad);
  EXPECT_THAT(v, ElementsAre("fd00:10:244:1::8"));
  EXPECT_EQ(bad, 3u);
}

TEST(Parsers, ProcNetTcpListeningOnly) {
  size_t bad = 0;
  auto v = parse_proc_net_tcp_listening(kTcp, &bad);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].inode, 1001u);
  EXPECT_EQ(v[0].port, 8080);
  EXPECT_EQ(v[1].inode, 1002u);
  EXPECT_EQ(v[1].port, 22);
  EXPECT_EQ(bad, 0u);
}

TEST(Parsers, ProcNetTcpMalformed) {
  size_t bad = 0;
  auto v = parse_proc_net_tcp_listening(
      "header\n"
      "   0: 00000000:1F90 00000000:0000 0A 0:0 0:0 0 0 0\n"                 // no inode
      "   1: 00000000:XYZ 00000000:0000 0A 0:0 0:0 0 0 0 77\n"               // port not hex
      "   2: 00000000:1F90 00000000:0000 0A 0:0 0:0 0 0 0 99999999999999999999999\n"  // inode overflows
      "   3: 00000000:1FFFF 00000000:0000 0A 0:0 0:0 0 0 0 78\n"             // port overflows 16 bits
      "   4: 00000000:0050 00000000:0000 0A 0:0 0:0 0 0 0 79\n",
      &bad);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].port, 80);
  EXPECT_EQ(v[0].inode, 79u);
  EXPECT_EQ(bad, 4u);
  EXPECT_TRUE(parse_proc_net_tcp_listening("").empty());
  EXPECT_TRUE(parse_proc_net_tcp_listening("only a header").empty());
}

TEST(Parsers, NamespaceLinks) {
  EXPECT_EQ(netns_inode_of_link("net:[4026531840]"), 4026531840u);
  EXPECT_EQ(netns_inode_of_link("net:[]"), 0u);
  EXPECT_EQ(netns_inode_of_link("mnt:[4026531840]"), 0u);
  EXPECT_EQ(netns_inode_of_link("net:4026531840"), 0u);
  EXPECT_EQ(netns_inode_of_link("/run/netns/x"), 0u);
}

TEST(Parsers, SocketLinks) {
  EXPECT_EQ(socket_inode_of_link("socket:[12345]"), 12345u);
  EXPECT_EQ(socket_inode_of_link("socket:[]"), 0u);
  EXPECT_EQ(socket_inode_of_link("socket:[12x]"), 0u);
  EXPECT_EQ(socket_inode_of_link("pipe:[12345]"), 0u);
  EXPECT_EQ(socket_inode_of_link("/dev/null"), 0u);
  EXPECT_EQ(socket_inode_of_link("socket:[12345"), 0u);
}

// ---- the cache on a fake /proc ----

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-endpoints-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

std::string tcp_table(const std::vector<std::pair<uint64_t, uint16_t>>& listeners) {
  std::string s = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  int i = 0;
  for (auto [ino, port] : listeners) {
    char line[200];
    snprintf(line, sizeof(line), "%4d: 00000000:%04X 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 %lu\n", i++,
             port, (unsigned long)ino);
    s += line;
  }
  return s;
}

std::string fib_with(const std::vector<std::string>& v4) {
  std::string s = "Local:\n  +-- 0.0.0.0/0 3 0 5\n";
  for (auto& a : v4) s += "     |-- " + a + "\n        /32 host LOCAL\n";
  return s;
}

// A fake node: /proc/PID/ns/net is a "net:[inode]" link as the kernel shows it, and /proc/PID/net/* the
// namespace's files, which only the first process of a namespace gets (a second
// read would find them missing and count an error).
class FakeNode {
 public:
  fs::path proc() const { return dir_.path / "proc"; }
  void ns(const std::string& name, const std::vector<std::string>& v4, const std::vector<std::string>& v6_hex,
          const std::vector<std::pair<uint64_t, uint16_t>>& listeners) {
    ids_[name] = 4026531840u + ids_.size();
    nets_[name] = {fib_with(v4), "", tcp_table(listeners)};
    for (auto& h : v6_hex) nets_[name].v6 += h + " 02 40 00 80     eth0\n";
  }
  void proc(uint32_t pid, const std::string& ns_name, const std::vector<uint64_t>& socket_inodes, bool net_files) {
    fs::path d = proc() / std::to_string(pid);
    fs::create_directories(d / "ns");
    fs::create_directories(d / "fd");
    fs::create_symlink("net:[" + std::to_string(ids_.at(ns_name)) + "]", d / "ns" / "net");
    int fd = 3;
    for (auto ino : socket_inodes) fs::create_symlink("socket:[" + std::to_string(ino) + "]", d / "fd" / std::to_string(fd++));
    fs::create_symlink("/dev/null", d / "fd" / "0");
    if (net_files) set_net_files(pid, ns_name);
  }
  void set_net_files(uint32_t pid, const std::string& ns_name) {
    fs::path d = proc() / std::to_string(pid) / "net";
    const auto& n = nets_.at(ns_name);
    write(d / "fib_trie", n.fib);
    if (!n.v6.empty()) write(d / "if_inet6", n.v6);
    write(d / "tcp", n.tcp);
  }

 private:
  struct Net {
    std::string fib, v6, tcp;
  };
  TempDir dir_;
  std::map<std::string, Net> nets_;
  std::map<std::string, uint64_t> ids_;  // namespace name -> inode
};

std::shared_ptr<const ProcessIdentity> ident(uint32_t pid, const std::string& service, const std::string& pod = "",
                                             const std::string& kns = "", const std::string& workload = "") {
  auto p = std::make_shared<ProcessIdentity>();
  p->pid = pid;
  p->exe = "/bin/x";
  p->service = service;
  p->pod = pod;
  p->k8s_namespace = kns;
  p->workload = workload;
  return p;
}

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now; };
  }
};

TEST(LocalEndpoints, PodsNodeAndPorts) {
  FakeNode node;
  node.ns("host", {"192.0.2.10"}, {"20010db8000000000000000000000010"}, {{500, 22}});
  node.ns("pod-web", {"10.244.1.7"}, {"fd000010024400010000000000000007"}, {{900, 8080}, {901, 9090}});
  node.proc(1, "host", {}, true);
  node.proc(100, "host", {500}, false);       // sshd on the host
  node.proc(200, "pod-web", {900}, true);      // the pod's server
  node.proc(201, "pod-web", {}, false);        // its sidecar without listeners (same service)
  node.proc(300, "pod-web", {901}, false);     // another service in the same namespace

  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  LocalEndpoints ep(o);
  auto s = ep.read({ident(100, "sshd"), ident(200, "shop/web", "web-1", "shop", "web"), ident(201, "shop/web", "web-1", "shop", "web"),
                    ident(300, "metrics")});
  EXPECT_THAT(s->node_addresses, ElementsAre("192.0.2.10", "2001:db8::10"));
  EXPECT_EQ(s->namespaces, 2u);
  ASSERT_TRUE(s->owner_of("10.244.1.7"));
  EXPECT_EQ(s->owner_of("10.244.1.7")->service, "metrics");  // sorted: shared namespaces list every service
  EXPECT_THAT(s->addresses_of("shop/web"), ElementsAre("10.244.1.7", "fd00:10:244:1::7"));
  EXPECT_THAT(s->addresses_of("metrics"), ElementsAre("10.244.1.7", "fd00:10:244:1::7"));
  EXPECT_TRUE(s->addresses_of("sshd").empty());  // host processes own no address: the node's are node_addresses
  EXPECT_EQ(s->owner_of("192.0.2.10"), nullptr);
  EXPECT_THAT(s->ports.at("shop/web"), ElementsAre(8080));
  EXPECT_THAT(s->ports.at("metrics"), ElementsAre(9090));
  EXPECT_THAT(s->ports.at("sshd"), ElementsAre(22));
  for (const auto& w : s->owners)
    if (w.service == "shop/web") {
      EXPECT_EQ(w.pod, "web-1");
      EXPECT_EQ(w.k8s_namespace, "shop");
      EXPECT_EQ(w.workload, "web");
    }
  auto st = ep.stats();
  EXPECT_EQ(st.read_errors, 0u) << st.last_error;  // one read per namespace: 201 and 300 have no net files
  EXPECT_EQ(st.shared_namespaces, 1u);
}

TEST(LocalEndpoints, NodeNamespaceIsKthreaddsWhenInitCannotBeRead) {
  FakeNode node;
  node.ns("host", {"192.0.2.10"}, {}, {});
  node.ns("pod", {"10.244.3.3"}, {}, {});
  node.proc(2, "host", {}, true);  // kthreadd; no /proc/1 (unreadable in some sandboxes)
  node.proc(10, "host", {}, false);
  node.proc(20, "pod", {}, true);
  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  LocalEndpoints ep(o);
  auto s = ep.read({ident(10, "sshd"), ident(20, "api")});
  EXPECT_THAT(s->node_addresses, ElementsAre("192.0.2.10"));
  EXPECT_TRUE(s->addresses_of("sshd").empty());
  EXPECT_THAT(s->addresses_of("api"), ElementsAre("10.244.3.3"));
}

TEST(LocalEndpoints, ReaderThatExitedIsReplacedByTheNextProcess) {
  FakeNode node;
  node.ns("host", {}, {}, {});
  node.ns("pod", {"10.244.2.2"}, {}, {{700, 80}});
  node.proc(1, "host", {}, true);
  node.proc(10, "pod", {}, false);  // its net files are gone (exited)
  node.proc(11, "pod", {700}, true);
  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  LocalEndpoints ep(o);
  auto s = ep.read({ident(10, "api"), ident(11, "api")});
  EXPECT_THAT(s->addresses_of("api"), ElementsAre("10.244.2.2"));
  EXPECT_THAT(s->ports.at("api"), ElementsAre(80));
  EXPECT_EQ(ep.stats().read_errors, 1u);
  EXPECT_NE(ep.stats().last_error.find("/proc/10/net/fib_trie"), std::string::npos) << ep.stats().last_error;
}

TEST(LocalEndpoints, Bounds) {
  FakeNode node;
  node.ns("host", {}, {}, {});
  node.ns("a", {"10.0.0.1", "10.0.0.2", "10.0.0.3"}, {"fd000000000000000000000000000001"}, {{1, 1}, {2, 2}, {3, 3}});
  node.ns("b", {"10.0.1.1"}, {}, {});
  node.ns("c", {"10.0.2.1"}, {}, {});
  node.proc(1, "host", {}, true);
  node.proc(10, "a", {1, 2, 3}, true);
  node.proc(20, "b", {}, true);
  node.proc(30, "c", {}, true);
  node.proc(31, "c", {}, false);
  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  o.max_namespaces = 3;  // host, a, b
  o.max_addresses_per_namespace = 2;
  o.max_listeners_per_namespace = 2;
  o.max_fds_per_process = 3;  // 0 (/dev/null), then two of the three sockets
  LocalEndpoints ep(o);
  auto s = ep.read({ident(10, "a"), ident(20, "b"), ident(30, "c"), ident(31, "c")});
  EXPECT_EQ(s->namespaces, 3u);
  EXPECT_EQ(s->addresses_of("a").size(), 2u);
  EXPECT_TRUE(s->addresses_of("c").empty());
  EXPECT_LE(s->ports.at("a").size(), 2u);
  auto st = ep.stats();
  EXPECT_EQ(st.namespaces_dropped, 1u);  // counted once per namespace, not per process
  EXPECT_EQ(st.addresses_dropped, 2u);
  EXPECT_EQ(st.listeners_dropped, 1u);
  EXPECT_EQ(st.fds_dropped, 1u);
}

TEST(LocalEndpoints, TruncatedFileParsesWholeLinesOnly) {
  FakeNode node;
  node.ns("host", {}, {}, {});
  node.ns("p", {"10.9.0.1"}, {}, {{1, 80}, {2, 443}});
  node.proc(1, "host", {}, true);
  node.proc(10, "p", {1, 2}, true);
  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  // The tcp table's header and first line, and most of the second: the cut line must not become port 0x1 or similar.
  auto tcp = tcp_table({{1, 80}, {2, 443}});
  o.max_file_bytes = tcp.find('\n', tcp.find('\n') + 1) + 1 + 30;
  LocalEndpoints ep(o);
  auto s = ep.read({ident(10, "p")});
  EXPECT_THAT(s->ports.at("p"), ElementsAre(80));
  EXPECT_GE(ep.stats().files_truncated, 1u);
  EXPECT_EQ(ep.stats().malformed_lines, 0u);
}

TEST(LocalEndpoints, CacheRefreshesOnAgeAndOnProcessEvents) {
  FakeNode node;
  node.ns("host", {}, {}, {});
  node.proc(1, "host", {}, true);
  FakeClock clock;
  LocalEndpointsOptions o;
  o.proc_root = node.proc();
  o.clock = clock.fn();
  o.max_age = 30s;
  o.min_interval = 1s;
  LocalEndpoints ep(o);
  int calls = 0;
  auto procs = [&] {
    calls++;
    return LocalEndpoints::Processes{};
  };
  auto first = ep.get(procs, 0);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ep.get(procs, 0), first);  // fresh: no read, the same snapshot
  clock.now += 500ms;
  EXPECT_EQ(ep.get(procs, 1), first);  // an exec, but within min_interval
  EXPECT_EQ(calls, 1);
  clock.now += 600ms;
  auto second = ep.get(procs, 1);       // the exec, now past min_interval
  EXPECT_NE(second, first);
  EXPECT_EQ(calls, 2);
  clock.now += 29s;
  EXPECT_EQ(ep.get(procs, 1), second);  // nothing changed, younger than max_age
  clock.now += 2s;
  EXPECT_NE(ep.get(procs, 1), second);  // max_age
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(ep.stats().refreshes, 3u);
}

TEST(LocalEndpoints, MissingProcGivesAnEmptySnapshot) {
  TempDir d;
  LocalEndpointsOptions o;
  o.proc_root = d.path / "nothing";
  LocalEndpoints ep(o);
  auto s = ep.read({ident(10, "a")});
  EXPECT_TRUE(s->owners.empty());
  EXPECT_TRUE(s->node_addresses.empty());
  EXPECT_EQ(s->namespaces, 0u);
}

}  // namespace
