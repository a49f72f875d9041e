// Differential conformance: namespaces x/y/z routed through a router namespace r, servers on
// ports 80/81 (TCP and UDP) everywhere, local processes in r in distinct cgroups. For each policy
// set the compiled rules are applied inside r, every connection is made for real, and every verdict
// must equal the reference evaluator's. Runs on iptables-nft and iptables-legacy. Also: failsafe
// ports, drift, a failed apply, and atomicity of apply/rollback under a live prober.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include "policy/command.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/iptables.h"
#include "policy/ir_json.h"
#include "policy/loader.h"
#include "support/privileged.h"

namespace hostscope::policy {
namespace {
namespace fs = std::filesystem;


CommandResult sh(const std::vector<std::string>& argv, const std::string& input = "") {
  static auto runner = make_process_runner();
  return runner->run(argv, input);
}

void must(const std::vector<std::string>& argv) {
  auto r = sh(argv);
  if (!r.ok()) throw std::runtime_error(join_command(argv) + ": " + r.err);
}

std::string missing_privileges() {
  if (geteuid() != 0) return "needs root";
  if (!fs::exists("/sys/fs/cgroup/unified/cgroup.procs") && !fs::exists("/sys/fs/cgroup/cgroup.procs")) return "no cgroup v2";
  for (const char* tool : {"ip", "iptables-nft-restore", "iptables-legacy-restore", "ipset"})
    if (sh({"sh", "-c", std::string("command -v ") + tool}).exit_code != 0) return std::string("missing ") + tool;
  return "";
}

std::string cgroup2_root() { return fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup"; }

void enter_netns(const std::string& ns) {
  int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(90);
  close(fd);
}

// Child process: TCP and UDP servers on the given ports; dies with the test.
// UDP sockets are bound per address (udp_addrs, default any) so a multi-homed server answers from
// the address it was asked on; otherwise the reply would be a new flow that policy judges on its own.
// `tcp` false: UDP servers only (next to TCP listeners on the same ports).
pid_t spawn_servers(const std::string& ns, std::vector<uint16_t> ports, std::vector<std::string> udp_addrs = {"0.0.0.0", "::"},
                    bool tcp = true) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  enter_netns(ns);
  std::vector<pollfd> fds;
  std::vector<bool> is_tcp;
  auto open_socket = [&](int type, const std::string& addr, uint16_t port) {
    SockAddr a = sock_addr(addr, port);
    int s = socket(a.family(), type, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.family() == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(s, a.ptr(), a.len) != 0) _exit(91);
    if (type == SOCK_STREAM) listen(s, 512);
    fds.push_back({s, POLLIN, 0});
    is_tcp.push_back(type == SOCK_STREAM);
  };
  for (auto port : ports) {
    if (tcp) {
      open_socket(SOCK_STREAM, "0.0.0.0", port);
      open_socket(SOCK_STREAM, "::", port);
    }
    for (const auto& a : udp_addrs) open_socket(SOCK_DGRAM, a, port);
  }
  for (;;) {
    if (poll(fds.data(), fds.size(), -1) < 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      if (is_tcp[i]) {
        int c = accept(fds[i].fd, nullptr, nullptr);
        if (c >= 0) {
          (void)!write(c, "ok", 2);
          close(c);
        }
      } else {
        char buf[64];
        sockaddr_storage from{};
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fds[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n > 0) sendto(fds[i].fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
      }
    }
  }
}

// One connection attempt; true when it got through (TCP connected / UDP echo came back).
// The timeout only bounds how long a dropped packet is waited for; verdicts are compared, not times.
bool connect_once(const std::string& dst, uint16_t port, Protocol proto, int timeout_ms) {
  SockAddr a = sock_addr(dst, port);
  int s = socket(a.family(), (proto == Protocol::Tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK, 0);
  bool ok = false;
  if (proto == Protocol::Tcp) {
    int r = connect(s, a.ptr(), a.len);
    if (r == 0) ok = true;
    else if (errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) == 1) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
        ok = err == 0;
      }
    }
  } else {
    // Unconnected: a multi-homed server (r) may answer from another of its addresses.
    for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
      (void)!sendto(s, "hi", 2, 0, a.ptr(), a.len);
      pollfd p{s, POLLIN, 0};
      char buf[8];
      if (poll(&p, 1, timeout_ms / 2) == 1 && recv(s, buf, sizeof buf, 0) == 2) ok = true;
    }
  }
  close(s);
  return ok;
}

// A prober process in `ns` (optionally inside cgroup `cg`, a path under the cgroup2 mount).
pid_t spawn_probe(const std::string& ns, const std::string& cg_dir, const std::string& dst, uint16_t port, Protocol proto) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!cg_dir.empty()) {
    int fd = open((cg_dir + "/cgroup.procs").c_str(), O_WRONLY);
    if (fd < 0 || write(fd, "0", 1) != 1) _exit(92);
    close(fd);
  }
  enter_netns(ns);
  _exit(connect_once(dst, port, proto, 1500) ? 0 : 1);
}

int wait_exit(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

struct Source {
  std::string label, ns, cgroup;  // cgroup: xt_cgroup path ("" = a pod namespace)
  std::string addr_for(const std::string& dst_subnet_octet) const;
};

// x/y/z each on their own /24 and /64 behind router r over veth pairs; r has .1 / ::1 on each.
// IPv6 needs neighbour discovery on those links (DAD is off so addresses are usable at once).
class Lab {
 public:
  explicit Lab(const std::string& variant) : variant_(variant) {
    std::random_device rd;
    id_ = fmt::format("{:06x}", rd() & 0xffffff);
    for (const char* n : {"r", "x", "y", "z"}) {
      must({"ip", "netns", "add", ns(n)});
      must({"ip", "netns", "exec", ns(n), "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"});
    }
    int i = 1;
    for (const char* n : {"x", "y", "z"}) {
      std::string dev = std::string("v") + n;
      must({"ip", "-n", ns("r"), "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns(n)});
      must({"ip", "-n", ns("r"), "addr", "add", fmt::format("10.88.{}.1/24", i), "dev", dev});
      must({"ip", "-n", ns("r"), "link", "set", dev, "up"});
      must({"ip", "-n", ns(n), "addr", "add", fmt::format("10.88.{}.2/24", i), "dev", "eth0"});
      must({"ip", "-n", ns(n), "link", "set", "eth0", "up"});
      must({"ip", "-n", ns(n), "link", "set", "lo", "up"});
      must({"ip", "-n", ns(n), "route", "add", "default", "via", fmt::format("10.88.{}.1", i)});
      must({"ip", "-n", ns("r"), "addr", "add", fmt::format("fd88:{}::1/64", i), "dev", dev, "nodad"});
      must({"ip", "-n", ns(n), "addr", "add", fmt::format("fd88:{}::2/64", i), "dev", "eth0", "nodad"});
      must({"ip", "-n", ns(n), "-6", "route", "add", "default", "via", fmt::format("fd88:{}::1", i)});
      ++i;
    }
    must({"ip", "-n", ns("r"), "link", "set", "lo", "up"});
    must({"ip", "netns", "exec", ns("r"), "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"});
    cg_base_ = cgroup2_root() + "/hs-t-" + id_;
    for (const char* c : {"", "/a", "/b", "/srv"}) fs::create_directories(cg_base_ + c);
    servers_.push_back(spawn_servers(ns("r"), {22, 80, 81},
                                     {"10.88.1.1", "10.88.2.1", "10.88.3.1", "fd88:1::1", "fd88:2::1", "fd88:3::1"}));
    for (const char* n : {"x", "y", "z"}) servers_.push_back(spawn_servers(ns(n), {22, 80, 81}));
    state_dir_ = fs::temp_directory_path() / ("hs-policy-state-" + id_);
    // Wait until every server answers (they are ready when they connect; no fixed sleep).
    for (int tries = 0; tries < 200; ++tries) {
      bool all = true;
      for (int k = 1; k <= 3 && all; ++k)
        all = probe_ok("r", "", fmt::format("10.88.{}.2", k), 81, Protocol::Tcp) && probe_ok("r", "", fmt::format("fd88:{}::2", k), 81, Protocol::Tcp);
      if (all && probe_ok("x", "", "10.88.1.1", 81, Protocol::Tcp) && probe_ok("x", "", "fd88:1::1", 81, Protocol::Tcp)) return;
      usleep(20000);
    }
    throw std::runtime_error("lab servers did not come up");
  }
  ~Lab() {
    for (pid_t p : servers_) {
      kill(p, SIGKILL);
      wait_exit(p);
    }
    for (const char* n : {"r", "x", "y", "z"}) sh({"ip", "netns", "del", ns(n)});
    for (const char* c : {"/a", "/b", "/srv", ""}) rmdir((cg_base_ + c).c_str());
    fs::remove_all(state_dir_);
  }
  std::string ns(const std::string& n) const { return "hs-t-" + id_ + "-" + n; }
  std::string cg(const std::string& leaf) const { return "/hs-t-" + id_ + (leaf.empty() ? "" : "/" + leaf); }
  std::string cg_dir(const std::string& leaf) const { return cg_base_ + (leaf.empty() ? "" : "/" + leaf); }

  bool probe_ok(const std::string& n, const std::string& cg_leaf, const std::string& dst, uint16_t port, Protocol proto) {
    return wait_exit(spawn_probe(ns(n), cg_leaf.empty() ? "" : cg_dir(cg_leaf), dst, port, proto)) == 0;
  }
  // Cold neighbour caches everywhere: the next IPv6 packet on each link needs neighbour discovery
  // (solicitation and advertisement through r's INPUT/OUTPUT) before it can leave.
  void flush_neighbours() {
    for (const char* n : {"r", "x", "y", "z"}) must({"ip", "-n", ns(n), "-6", "neigh", "flush", "all"});
  }

  Context context() const {
    Context c;
    c.services.push_back({"x", {}, {"10.88.1.2", "fd88:1::2"}, {}, "", "lab", "x", ""});
    c.services.push_back({"y", {}, {"10.88.2.2", "fd88:2::2"}, {}, "", "lab", "y", ""});
    c.services.push_back({"z", {}, {"10.88.3.2", "fd88:3::2"}, {}, "", "lab", "z", ""});
    c.services.push_back({"local-a", {cg("a")}, {}, {}, "", "", "", "/usr/bin/a"});
    c.services.push_back({"local-b", {cg("b")}, {}, {}, "", "", "", "/usr/bin/b"});
    // The router's own server: ingress to local processes is scoped by their listening port.
    c.services.push_back({"router", {cg("srv")}, {}, {80}, "", "", "", ""});
    c.networks["lab"] = {"10.88.0.0/16", "fd88::/16"};
    return c;
  }

  IptablesBackend backend(std::shared_ptr<CommandRunner> runner = nullptr) const {
    IptablesOptions o;
    o.variant = variant_;
    o.command_prefix = {"ip", "netns", "exec", ns("r")};
    o.state_dir = state_dir_.string();
    return IptablesBackend(o, std::move(runner));
  }

  const std::string& variant() const { return variant_; }
  std::string state_dir() const { return state_dir_.string(); }
  // More servers in r (e.g. UDP on the loopback addresses); killed with the lab.
  void add_servers(pid_t pid) { servers_.push_back(pid); }

 private:
  std::string variant_, id_, cg_base_;
  fs::path state_dir_;
  std::vector<pid_t> servers_;
};

std::string yaml_header(const std::string& name, const std::string& subject) {
  return fmt::format("---\napiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {}}}\nsubject: {{{}}}\n", name, subject);
}

Ir compile_or_die(const std::string& yaml, const Context& ctx, size_t ipset_threshold = 8) {
  auto c = compile(load_text(yaml, "lab.yaml"), ctx, CompileOptions{ipset_threshold});
  std::string d;
  for (const auto& x : c.diagnostics) d += x.str() + "\n";
  if (!c.ok()) throw std::runtime_error("lab policy does not compile:\n" + d);
  return *c.ir;
}

struct Probe {
  std::string from_label, from_ns, cg_leaf;
  Endpoint from;
  std::string to_label, dst;
  Endpoint to;
  uint16_t port;
  Protocol proto;
};

// Every source to every destination, TCP and UDP on 80/81, over IPv4 and IPv6.
std::vector<Probe> matrix(const Lab& lab) {
  struct Src {
    std::string label, ns, leaf, cgroup;
    int pod;  // k of the pod's 10.88.k.2 / fd88:k::2; 0 = a local sender in r
  };
  std::vector<Src> srcs = {{"x", "x", "", "", 1}, {"y", "y", "", "", 2}, {"z", "z", "", "", 3},
                           {"r/a", "r", "a", lab.cg("a"), 0}, {"r/b", "r", "b", lab.cg("b"), 0}, {"r/root", "r", "", "/", 0}};
  struct Dst {
    std::string label;
    int k;  // the link: x/y/z's address ends in .2 / ::2, r is reached at .1 / ::1 of link 1
    bool local;
  };
  std::vector<Dst> dsts = {{"x", 1, false}, {"y", 2, false}, {"z", 3, false}, {"r", 1, true}};
  auto addr = [](bool v6, int k, int host) { return v6 ? fmt::format("fd88:{}::{}", k, host) : fmt::format("10.88.{}.{}", k, host); };
  std::vector<Probe> out;
  for (bool v6 : {false, true})
    for (const auto& s : srcs)
      for (const auto& d : dsts) {
        if (s.label == d.label) continue;
        std::string dst = addr(v6, d.k, d.local ? 1 : 2);
        Endpoint from;
        // A local sender's source address is r's address on the way to the destination.
        if (s.pod) from = {IpAddr::parse(addr(v6, s.pod, 2)), "", false};
        else from = {IpAddr::parse(addr(v6, d.k, 1)), s.cgroup, true};
        Endpoint to{IpAddr::parse(dst), "", d.local};
        std::string label = v6 ? d.label + "6" : d.label;
        for (uint16_t port : {80, 81})
          for (auto proto : {Protocol::Tcp, Protocol::Udp}) out.push_back({s.label, s.ns, s.leaf, from, label, dst, to, port, proto});
      }
  return out;
}

// Runs every probe (in parallel processes) and compares with the evaluator.
// `stored`: the IR as read back from the state directory (what `top`/`topology` evaluate edges with) must give
// the same verdict as the IR that was applied.
void check_matrix(Lab& lab, const Ir& ir, const std::string& what, const Ir* stored = nullptr) {
  auto probes = matrix(lab);
  lab.flush_neighbours();
  std::vector<pid_t> pids;
  for (const auto& p : probes) pids.push_back(spawn_probe(lab.ns(p.from_ns), p.cg_leaf.empty() ? "" : lab.cg_dir(p.cg_leaf), p.dst, p.port, p.proto));
  size_t mismatches = 0;
  std::string table;
  for (size_t i = 0; i < probes.size(); ++i) {
    const auto& p = probes[i];
    bool got = wait_exit(pids[i]) == 0;
    Trace trace;
    auto verdict = evaluate_connection(ir, p.from, p.to, p.proto, p.port, &trace);
    bool want = verdict != Verdict::Deny;
    if (stored) {
      EXPECT_EQ(to_string(evaluate_connection(*stored, p.from, p.to, p.proto, p.port)), to_string(verdict))
          << "stored IR disagrees: " << p.from_label << " -> " << p.to_label << ":" << p.port;
    }
    table += fmt::format("  {:>6} -> {:<2}:{}/{}  want {:<5} got {}\n", p.from_label, p.to_label, p.port, to_string(p.proto),
                         want ? "allow" : "deny", got ? "allow" : "deny");
    if (got != want) {
      ++mismatches;
      std::string path;
      for (const auto& s : trace.steps) path += "\n      " + s;
      ADD_FAILURE() << fmt::format("[{} / {}] {} -> {} {}:{}/{}: evaluator says {}, kernel says {}{}", lab.variant(), what, p.from_label,
                                   p.to_label, p.dst, p.port, to_string(p.proto), want ? "allow" : "deny", got ? "allow" : "deny", path);
    }
  }
  if (mismatches) {
    auto save = sh({"ip", "netns", "exec", lab.ns("r"), lab.variant() == "nft" ? "iptables-nft-save" : "iptables-legacy-save", "-c"});
    auto save6 = sh({"ip", "netns", "exec", lab.ns("r"), lab.variant() == "nft" ? "ip6tables-nft-save" : "ip6tables-legacy-save", "-c"});
    auto neigh = sh({"ip", "-n", lab.ns("r"), "-6", "neigh", "show"});
    ADD_FAILURE() << "truth table for " << what << ":\n" << table << "\nruleset:\n" << save.out << "\nIPv6 ruleset:\n" << save6.out
                  << "\nr's IPv6 neighbours:\n" << neigh.out;
  }
}

struct PeerPort {
  std::string v4, v6;
  uint16_t port;
  uint16_t port2 = 0;  // a second port in the same rule (a list folds as one member per port)
};

// Rules of `action`, each one peer (an IPv4 and an IPv6 address) and one tcp port: `lab` first, then padding to
// documentation addresses so that each family has a run of at least RenderOptions::fold_min.
std::string one_peer_one_port_rules(const char* action, std::vector<PeerPort> lab) {
  for (uint16_t i = 1; lab.size() < 10; ++i) lab.push_back({fmt::format("192.0.2.{}", i), fmt::format("2001:db8::{:x}", i), uint16_t(1000 + i)});
  std::string y;
  for (const auto& p : lab)
    y += fmt::format("  - action: {}\n    peers: [{{cidr: {}/32}}, {{cidr: '{}/128'}}]\n    ports: [{}{}]\n    protocol: tcp\n", action,
                     p.v4, p.v6, p.port, p.port2 ? fmt::format(", {}", p.port2) : "");
  return y;
}

class PolicyConformance : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyConformance, MatrixMatchesEvaluator) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto backend = lab.backend();

  std::vector<std::pair<std::string, std::string>> sets = {
      {"nothing", ""},
      {"x ingress: only y on tcp/80",
       yaml_header("x-in", "service: x") + "default: {ingress: deny}\ningress:\n  - action: allow\n    peers: [{service: y}]\n    ports: [80]\n    protocol: tcp\n"},
      {"local-a egress: z only, reject y tcp",
       yaml_header("a-out", "service: local-a") +
           "default: {egress: deny}\negress:\n  - action: reject\n    peers: [{service: y}]\n    protocol: tcp\n"
           "  - action: allow\n    peers: [{service: z}]\n    ports: [\"80-81\"]\n"},
      {"z ingress via ipset + router ingress + y egress audit",
       yaml_header("z-in", "service: z") +
           "default: {ingress: deny}\ningress:\n  - action: deny\n    protocol: udp\n    ports: [81]\n"
           "  - action: allow\n    peers: [{service: x}, {service: y}, {cidr: 10.88.1.1/32}, {cidr: 10.88.3.1/32}]\n    ports: [80, 81]\n" +
           yaml_header("router-in", "service: router") +
           "default: {ingress: reject}\ningress:\n  - action: allow\n    peers: [{network: lab}]\n    ports: [80]\n    protocol: tcp\n" +
           yaml_header("y-out", "service: y") + "mode: audit\ndefault: {egress: deny}\negress:\n  - action: allow\n    ports: [80]\n"},
      {"nested cgroups and log", yaml_header("all-local", "cgroup: " + lab.cg("")) +
                                     "egress:\n  - action: log\n  - action: deny\n    peers: [{cidr: 10.88.2.0/24}]\n    ports: [81]\n"},
      // Address subjects with a default deny/reject egress are also dispatched on r's INPUT (-s pod): the pods'
      // neighbour advertisements and solicitations to r pass there, from cold caches.
      {"x egress: only tcp/80 to y; y egress reject; z ingress deny",
       yaml_header("x-out", "service: x") +
           "default: {egress: deny}\negress:\n  - action: allow\n    peers: [{service: y}]\n    ports: [80]\n    protocol: tcp\n" +
           yaml_header("y-out", "service: y") + "failsafe: false\ndefault: {egress: reject}\negress:\n  - action: allow\n    ports: [81]\n" +
           yaml_header("z-in", "service: z") + "default: {ingress: deny}\ningress:\n  - action: allow\n    ports: [80]\n"},
      // Runs of one-peer-one-port rules are one hash:net,port set rule each (RenderOptions::fold_min): x's egress run
      // (deny) matches by destination and port, z's ingress run (reject) by source and port, in both families.
      {"folded runs: x egress deny, z ingress reject", yaml_header("x-out", "service: x") + "egress:\n" +
                                                         one_peer_one_port_rules("deny", {{"10.88.2.2", "fd88:2::2", 80},
                                                                                          {"10.88.3.2", "fd88:3::2", 81},
                                                                                          {"10.88.1.1", "fd88:1::1", 80}}) +
                                                         yaml_header("z-in", "service: z") + "ingress:\n" +
                                                         one_peer_one_port_rules("reject", {{"10.88.1.2", "fd88:1::2", 80, 81},
                                                                                            {"10.88.2.2", "fd88:2::2", 80}})},
  };
  for (const auto& [what, yaml] : sets) {
    SCOPED_TRACE(what);
    auto ir = compile_or_die("apiVersion: hostscope.io/v1\nkind: PolicyTest\nmetadata: {name: none}\ncases: []\n" + yaml, ctx, 2);
    auto r = backend.apply(ir);
    ASSERT_TRUE(r) << r.error().str();
    auto stored = load_ir(lab.state_dir(), current_generation(lab.state_dir()));
    ASSERT_TRUE(stored) << stored.error().str();
    if (what.rfind("folded", 0) == 0)
      for (Family f : {Family::V4, Family::V6}) {
        auto rendered = render(ir.table(f));
        EXPECT_EQ(rendered.folded.size(), 2u) << rendered.ipsets;  // the test checks what it means to
        auto sets_in_kernel = sh({"ip", "netns", "exec", lab.ns("r"), "ipset", "list", "-t"});
        EXPECT_NE(sets_in_kernel.out.find("hash:net,port"), std::string::npos) << sets_in_kernel.out;
      }
    check_matrix(lab, ir, what, &*stored);
    auto st = backend.status();
    ASSERT_TRUE(st) << st.error().str();
    EXPECT_FALSE(st->drift) << st->text();
    if (what.find("audit") != std::string::npos) {
      EXPECT_GT(st->audit_would_deny_packets, 0u) << st->text();  // y's probes to 81
    }
  }
  // Flush removes exactly what we installed: the tables look like a fresh namespace's again.
  ASSERT_TRUE(backend.flush());
  for (const char* tool : {"save"}) {
    (void)tool;
    auto save = sh({"ip", "netns", "exec", lab.ns("r"), GetParam() == "nft" ? "iptables-nft-save" : "iptables-legacy-save"});
    EXPECT_EQ(save.out.find("HOSTSCOPE"), std::string::npos) << save.out;
    EXPECT_EQ(save.out.find("hostscope"), std::string::npos) << save.out;
  }
  auto sets_left = sh({"ip", "netns", "exec", lab.ns("r"), "ipset", "list", "-n"});
  EXPECT_EQ(sets_left.out, "");
}

TEST_P(PolicyConformance, FailsafePortsSurviveDenyAll) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto backend = lab.backend();
  std::string deny_all = yaml_header("lockdown", "service: x") + "default: {ingress: deny, egress: deny}\n" +
                         yaml_header("lockdown-a", "service: local-a") + "default: {egress: deny}\n";
  auto ir = compile_or_die(deny_all, ctx);
  ASSERT_TRUE(backend.apply(ir));
  EXPECT_TRUE(lab.probe_ok("y", "", "10.88.1.2", 22, Protocol::Tcp)) << "ssh to x must stay open";
  lab.flush_neighbours();
  EXPECT_TRUE(lab.probe_ok("y", "", "fd88:1::2", 22, Protocol::Tcp)) << "ssh to x over IPv6 must stay open from cold neighbour caches";
  lab.flush_neighbours();
  EXPECT_FALSE(lab.probe_ok("y", "", "fd88:1::2", 80, Protocol::Tcp));
  EXPECT_FALSE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  EXPECT_TRUE(lab.probe_ok("r", "a", "10.88.2.2", 80, Protocol::Tcp) == false);
  EXPECT_EQ(evaluate_connection(ir, {IpAddr::parse("10.88.2.2"), "", false}, {IpAddr::parse("10.88.1.2"), "", false}, Protocol::Tcp, 22),
            Verdict::Allow);
  // failsafe: false really closes it.
  auto ir2 = compile_or_die(yaml_header("lockdown", "service: x") + "failsafe: false\ndefault: {ingress: deny}\n", ctx);
  ASSERT_TRUE(backend.apply(ir2));
  EXPECT_FALSE(lab.probe_ok("y", "", "10.88.1.2", 22, Protocol::Tcp));
  ASSERT_TRUE(backend.flush());
  EXPECT_TRUE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
}

// One packet that an audit policy would deny is one would-deny packet in `policy status`, whether a deny
// rule or the default matched it (the rule used to count it and then the default again).
TEST_P(PolicyConformance, AuditCountsEachPacketOnce) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto backend = lab.backend();
  auto ir = compile_or_die(yaml_header("x-in", "service: x") +
                               "mode: audit\ndefault: {ingress: deny}\ningress:\n  - action: deny\n    ports: [81]\n    protocol: tcp\n"
                               "  - action: log\n",
                           lab.context());
  ASSERT_TRUE(backend.apply(ir));
  auto would_deny = [&] {
    auto st = backend.status();
    return st ? st->audit_would_deny_packets : ~0ull;
  };
  EXPECT_EQ(would_deny(), 0u);
  // One connection: its SYN is new, the rest of it is ESTABLISHED (conntrack failsafe, not counted).
  ASSERT_TRUE(lab.probe_ok("y", "", "10.88.1.2", 81, Protocol::Tcp));
  EXPECT_EQ(would_deny(), 1u) << "the deny rule's SYN: " << backend.status()->text();
  ASSERT_TRUE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  EXPECT_EQ(would_deny(), 2u) << "the default's SYN: " << backend.status()->text();
  EXPECT_EQ(evaluate_connection(ir, {IpAddr::parse("10.88.2.2"), "", false}, {IpAddr::parse("10.88.1.2"), "", false}, Protocol::Tcp, 81),
            Verdict::AuditWouldDeny);
  ASSERT_TRUE(backend.flush());
}

TEST_P(PolicyConformance, DriftIsReportedAndRepaired) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto backend = lab.backend();
  auto ir = compile_or_die(yaml_header("x-in", "service: x") + "default: {ingress: deny}\n", lab.context());
  ASSERT_TRUE(backend.apply(ir));
  EXPECT_FALSE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  must({"ip", "netns", "exec", lab.ns("r"), GetParam() == "nft" ? "iptables-nft" : "iptables-legacy", "-F", "HOSTSCOPE-FORWARD"});
  EXPECT_TRUE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  auto st = backend.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_TRUE(st->drift);
  ASSERT_FALSE(st->drift_details.empty());
  EXPECT_NE(st->drift_details[0].find("ipv4 missing: -A HOSTSCOPE-FORWARD"), std::string::npos) << st->text();
  auto plan = backend.plan(ir);
  ASSERT_TRUE(plan);
  EXPECT_NE(plan->text().find("ipv4 HOSTSCOPE-FORWARD: +"), std::string::npos) << plan->text();
  ASSERT_TRUE(backend.apply(ir));
  EXPECT_FALSE(backend.status()->drift);
  EXPECT_FALSE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  ASSERT_TRUE(backend.flush());
}

TEST_P(PolicyConformance, FailedApplyKeepsPreviousGeneration) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto backend = lab.backend();
  auto good = compile_or_die(yaml_header("x-in", "service: x") + "default: {ingress: deny}\n", ctx);
  ASSERT_TRUE(backend.apply(good));
  // The kernel refuses a cgroup path that does not exist, in the middle of the restore.
  auto bad = compile_or_die(yaml_header("x-in", "service: x") + yaml_header("ghost", "cgroup: " + lab.cg("ghost")) +
                                "default: {egress: deny}\n",
                            ctx);
  auto r = backend.apply(bad);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("iptables"), std::string::npos) << r.error().str();
  auto st = backend.status();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->generation, 1);
  EXPECT_FALSE(st->drift) << st->text();
  EXPECT_FALSE(lab.probe_ok("y", "", "10.88.1.2", 80, Protocol::Tcp));
  ASSERT_TRUE(backend.flush());
}

TEST_P(PolicyConformance, ApplyRollbackIsAtomicUnderProbing) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto backend = lab.backend();
  // Both generations allow y->x tcp/80 and reject y->x tcp/81; they differ elsewhere. Any
  // in-between state (e.g. an empty chain) would let 81 through or break 80.
  std::string base = yaml_header("x-in", "service: x") +
                     "default: {ingress: reject}\ningress:\n  - action: allow\n    peers: [{service: y}]\n    ports: [80]\n    protocol: tcp\n";
  auto old_ir = compile_or_die(base, ctx);
  auto new_ir = compile_or_die(base + "  - action: allow\n    peers: [{service: z}]\n    ports: [81]\n" +
                                   yaml_header("y-out", "service: y") + "default: {egress: deny}\negress:\n  - action: allow\n    peers: [{service: x}]\n",
                               ctx);
  ASSERT_TRUE(backend.apply(old_ir));
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t prober = fork();
  if (prober == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    enter_netns(lab.ns("y"));
    static volatile sig_atomic_t stop = 0;
    signal(SIGTERM, [](int) { stop = 1; });
    unsigned long probes = 0, bad = 0;
    while (!stop) {
      if (!connect_once("10.88.1.2", 80, Protocol::Tcp, 2000)) ++bad;
      if (connect_once("10.88.1.2", 81, Protocol::Tcp, 2000)) ++bad;
      probes += 2;
    }
    std::string msg = fmt::format("{} {}", probes, bad);
    (void)!write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  close(pipefd[1]);
  for (int i = 0; i < 50; ++i) {
    auto a = backend.apply(new_ir);
    ASSERT_TRUE(a) << a.error().str();
    auto b = backend.rollback();
    ASSERT_TRUE(b) << b.error().str();
  }
  kill(prober, SIGTERM);
  char buf[64] = {};
  ASSERT_GT(read(pipefd[0], buf, sizeof buf - 1), 0);
  wait_exit(prober);
  close(pipefd[0]);
  unsigned long probes = 0, bad = 0;
  ASSERT_EQ(std::sscanf(buf, "%lu %lu", &probes, &bad), 2);
  EXPECT_GT(probes, 0u);
  EXPECT_EQ(bad, 0u) << "probes that saw neither the old nor the new verdict (of " << probes << ")";
  EXPECT_EQ(backend.status()->generation, 1);
  ASSERT_TRUE(backend.flush());
}

// Issue 19: a `service:` peer names local processes. A local client connecting over loopback (127.0.0.1, ::1) or to
// the node's own address is judged on OUTPUT, where its cgroup is known: r's server (service router, port 80) admits
// local-a and local-b only; local-b may reach only router's listening port at a local address. Loopback traffic no
// policy covers (port 81, port 22) passes whoever sends it. A pod subject (x) whose ingress names local-a by cgroup is
// also dispatched from FORWARD, where the kernel refuses `-m cgroup`: the set must apply and judge forwarded
// traffic as before. A packet from another host whose IPv6 source is spoofed to one of r's own addresses (IPv6
// delivers it) is still judged on INPUT. Every verdict is also the evaluator's.
TEST_P(PolicyConformance, LocalServicePeersOverLoopback) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto backend = lab.backend();
  lab.add_servers(spawn_servers(lab.ns("r"), {80, 81}, {"127.0.0.1", "::1"}, /*tcp=*/false));
  std::string yaml = yaml_header("router-in", "service: router") +
                     "default: {ingress: deny}\ningress:\n  - action: allow\n    peers: [{service: local-a}, {service: local-b}]\n"
                     "    ports: [80]\n" +
                     yaml_header("b-out", "service: local-b") + "default: {egress: deny}\negress:\n  - action: allow\n    peers: [{service: router}]\n" +
                     yaml_header("x-in", "service: x") +
                     "default: {ingress: deny}\ningress:\n  - action: allow\n    peers: [{service: local-a}]\n    ports: [80]\n    protocol: tcp\n";
  auto ir = compile_or_die(yaml, ctx);
  auto applied = backend.apply(ir);
  ASSERT_TRUE(applied) << applied.error().str();

  struct Want {
    std::string from_ns, leaf, cgroup, src, dst;
    bool local_dst;
    uint16_t port;
    Protocol proto;
    bool allow;
  };
  std::vector<Want> wants;
  for (const char* dst : {"127.0.0.1", "::1", "10.88.1.1", "fd88:1::1"})
    for (auto proto : {Protocol::Tcp, Protocol::Udp}) {
      // A local sender's source towards a local address is that address (127.0.0.1, ::1, r's own).
      const std::string src = dst;
      wants.push_back({"r", "a", lab.cg("a"), src, dst, true, 80, proto, true});    // router-in names local-a
      wants.push_back({"r", "b", lab.cg("b"), src, dst, true, 80, proto, true});    // ... and local-b, whose egress names router
      wants.push_back({"r", "", "/", src, dst, true, 80, proto, false});            // any other local process: router-in denies
      wants.push_back({"r", "a", lab.cg("a"), src, dst, true, 81, proto, true});    // no policy covers 81
      wants.push_back({"r", "", "/", src, dst, true, 81, proto, true});
      wants.push_back({"r", "b", lab.cg("b"), src, dst, true, 81, proto, false});   // b-out: router does not listen on 81
      wants.push_back({"r", "", "/", src, dst, true, 22, Protocol::Tcp, true});     // failsafe (and not dispatched)
    }
  for (bool v6 : {false, true}) {
    std::string x = v6 ? "fd88:1::2" : "10.88.1.2", r1 = v6 ? "fd88:1::1" : "10.88.1.1";
    std::string y = v6 ? "fd88:2::2" : "10.88.2.2";
    for (auto proto : {Protocol::Tcp, Protocol::Udp}) {
      wants.push_back({"x", "", "", x, r1, true, 80, proto, false});  // a remote client: judged on INPUT, denied
      wants.push_back({"x", "", "", x, r1, true, 81, proto, true});
    }
    wants.push_back({"x", "", "", x, r1, true, 22, Protocol::Tcp, true});                // failsafe
    wants.push_back({"y", "", "", y, x, false, 80, Protocol::Tcp, false});               // x-in, forwarded
    wants.push_back({"y", "", "", y, x, false, 81, Protocol::Tcp, false});
    wants.push_back({"y", "", "", y, x, false, 22, Protocol::Tcp, true});                // failsafe, forwarded
    wants.push_back({"r", "a", lab.cg("a"), r1, x, false, 80, Protocol::Tcp, true});     // x-in names local-a: OUTPUT -d x
    wants.push_back({"r", "", "/", r1, x, false, 80, Protocol::Tcp, false});
    wants.push_back({"r", "b", lab.cg("b"), r1, x, false, 80, Protocol::Tcp, false});    // b-out
  }
  lab.flush_neighbours();
  std::vector<pid_t> pids;
  for (const auto& w : wants) pids.push_back(spawn_probe(lab.ns(w.from_ns), w.leaf.empty() ? "" : lab.cg_dir(w.leaf), w.dst, w.port, w.proto));
  for (size_t i = 0; i < wants.size(); ++i) {
    const auto& w = wants[i];
    bool got = wait_exit(pids[i]) == 0;
    bool local_src = w.from_ns == "r";
    Endpoint from{IpAddr::parse(w.src), local_src ? w.cgroup : "", local_src};
    Endpoint to{IpAddr::parse(w.dst), "", w.local_dst};
    auto what = fmt::format("[{}] {}{} -> {}:{}/{}", lab.variant(), w.from_ns, w.leaf.empty() ? "" : "/" + w.leaf, w.dst, w.port, to_string(w.proto));
    EXPECT_EQ(got, w.allow) << what << ": kernel says " << (got ? "allow" : "deny");
    EXPECT_EQ(evaluate_connection(ir, from, to, w.proto, w.port) != Verdict::Deny, w.allow) << what << ": evaluator";
  }

  // x sends UDP to r:80 from r's own address on link 2 (added to x's lo): IPv6 delivers such a packet, and
  // `! --src-type LOCAL` on INPUT would let it skip router-in. It must reach router-in's default deny.
  auto drops = [&] {
    auto st = backend.status();
    uint64_t n = 0;
    if (st)
      for (const auto& c : st->counters)
        if (c.family == Family::V6 && c.owner == "router-in" && c.target == "DROP") n += c.packets;
    return n;
  };
  must({"ip", "-n", lab.ns("x"), "addr", "add", "fd88:2::1/128", "dev", "lo", "nodad"});
  uint64_t before = drops();
  pid_t spoofer = fork();
  if (spoofer == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    enter_netns(lab.ns("x"));
    SockAddr from = sock_addr("fd88:2::1", 0), to = sock_addr("fd88:1::1", 80);
    int s = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s < 0 || bind(s, from.ptr(), from.len) != 0) _exit(93);
    for (int k = 0; k < 3; ++k)
      if (sendto(s, "hi", 2, 0, to.ptr(), to.len) != 2) _exit(94);
    _exit(0);
  }
  ASSERT_EQ(wait_exit(spoofer), 0);
  uint64_t after = before;
  for (int tries = 0; tries < 100 && after < before + 3; ++tries) {
    usleep(20000);
    after = drops();
  }
  EXPECT_EQ(after, before + 3) << "spoofed-source IPv6 packets must be judged (and dropped) on INPUT\n" << backend.status()->raw_text();

  auto st = backend.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift) << st->text();
  ASSERT_TRUE(backend.flush());
  for (const char* fam : {"iptables", "ip6tables"}) {
    auto save = sh({"ip", "netns", "exec", lab.ns("r"), fmt::format("{}-{}-save", fam, lab.variant())});
    EXPECT_EQ(save.out.find("HOSTSCOPE"), std::string::npos) << save.out;
    EXPECT_EQ(save.out.find("hostscope"), std::string::npos) << save.out;
  }
  // After the flush nothing is judged: the local process router-in denied reaches r's server over loopback again.
  EXPECT_TRUE(lab.probe_ok("r", "", "127.0.0.1", 80, Protocol::Tcp));
  EXPECT_TRUE(lab.probe_ok("r", "", "::1", 80, Protocol::Udp));
}

// Records the input of every iptables-restore the backend runs (and runs it for real).
class RecordingRunner : public CommandRunner {
 public:
  CommandResult run(const std::vector<std::string>& argv, const std::string& input) override {
    if (argv.back() == "--noflush") restores.push_back(input);
    return real_->run(argv, input);
  }
  std::vector<std::string> restores;

 private:
  std::shared_ptr<CommandRunner> real_ = make_process_runner();
};

// Both families' filter tables as iptables-save shows them, without comments and counters.
std::string ruleset(const std::string& variant, const std::string& ns) {
  std::string out;
  for (const char* fam : {"iptables", "ip6tables"}) {
    auto r = sh({"ip", "netns", "exec", ns, fmt::format("{}-{}-save", fam, variant), "-t", "filter"});
    if (!r.ok()) throw std::runtime_error(std::string(fam) + "-save: " + r.err);
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);) {
      if (l.empty() || l[0] == '#') continue;
      if (l[0] == ':') l = l.substr(0, l.find(" ["));
      out += l + "\n";
    }
  }
  return out;
}

// One policy set of 12 rules over both families (tcp denies, a log rule, whose options iptables-save words in
// another order than we render them) and a second policy of its own; `v4_port` / `v6_port`: the first IPv4 / IPv6
// rule's port.
std::string small_set(int v4_port, int v6_port) {
  std::string y = yaml_header("bulk", "cgroup: /") + "egress:\n";
  y += fmt::format("  - {{action: deny, peers: [{{cidr: 198.18.0.1/32}}], ports: [{}], protocol: tcp}}\n", v4_port);
  y += fmt::format("  - {{action: deny, peers: [{{cidr: '2001:db8::1/128'}}], ports: [{}], protocol: tcp}}\n", v6_port);
  y += "  - {action: log, peers: [{cidr: 198.18.0.0/16}, {cidr: '2001:db8::/32'}], ports: [22], protocol: tcp}\n";
  for (int i = 2; i < 11; ++i)
    y += fmt::format("  - {{action: deny, peers: [{{cidr: 198.18.0.{}/32}}, {{cidr: '2001:db8::{}/128'}}], ports: [{}], protocol: tcp}}\n",
                     i, i, 1000 + i);
  y += yaml_header("other", "cgroup: /") + "ingress:\n  - {action: reject, peers: [{cidr: 192.0.2.0/24}], ports: [80], protocol: tcp}\n";
  return y;
}

// A one-rule change per family is sent as edits of the one chain it is in (no chain declared again), and the kernel
// then holds exactly the ruleset a fresh install of the new set holds, on IPv4 and IPv6; so does the rollback. A chain
// someone changed by hand is declared again instead, and ends up exact too.
TEST_P(PolicyConformance, OneRuleChangeInstallsExactlyTheNewSet) {
  HS_REQUIRE_THAT(missing_privileges());
  const std::string variant = GetParam();
  hostscope::testing::Netns ns("p19a"), fresh("p19b");
  HS_REQUIRE_SETUP(ns.ok() && fresh.ok(), "ip netns add");
  auto state = fs::temp_directory_path() / ("hs-policy-incr-" + ns.name());
  auto fresh_state = fs::temp_directory_path() / ("hs-policy-incr-" + fresh.name());
  auto options = [&](const hostscope::testing::Netns& n, const fs::path& dir) {
    IptablesOptions o;
    o.variant = variant;
    o.command_prefix = {"ip", "netns", "exec", n.name()};
    o.state_dir = dir.string();
    return o;
  };
  auto rec = std::make_shared<RecordingRunner>();
  IptablesBackend b(options(ns, state), rec);
  IptablesBackend reference(options(fresh, fresh_state));
  auto first = compile_or_die(small_set(1000, 1001), Context{});
  auto changed = compile_or_die(small_set(2000, 2001), Context{});

  ASSERT_TRUE(reference.apply(first));
  const std::string first_rules = ruleset(variant, fresh.name());
  ASSERT_TRUE(reference.flush());
  ASSERT_TRUE(reference.apply(changed));
  const std::string changed_rules = ruleset(variant, fresh.name());
  ASSERT_NE(first_rules, changed_rules);

  auto a1 = b.apply(first);
  ASSERT_TRUE(a1) << a1.error().str();
  EXPECT_EQ(ruleset(variant, ns.name()), first_rules);
  rec->restores.clear();
  auto a2 = b.apply(changed);
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_EQ(ruleset(variant, ns.name()), changed_rules);
  ASSERT_EQ(rec->restores.size(), 2u);  // one per family
  for (const auto& text : rec->restores) {
    EXPECT_EQ(text.find(":HOSTSCOPE"), std::string::npos) << text;  // no chain declared (flushed) again
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;  // *filter, one -R, COMMIT
    EXPECT_NE(text.find("\n-R HOSTSCOPE-"), std::string::npos) << text;
  }
  auto st = b.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift) << st->text();

  rec->restores.clear();
  auto rb = b.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_EQ(ruleset(variant, ns.name()), first_rules);
  for (const auto& text : rec->restores) EXPECT_EQ(text.find(":HOSTSCOPE"), std::string::npos) << text;
  EXPECT_FALSE(b.status()->drift);

  // Drift: in each family, a rule of the chain the change is in deleted by hand. That chain is declared again (not
  // edited around the gap); the result is exact all the same.
  auto chain_with = [](const RenderedTable& t, const std::string& what) {
    for (const auto& l : t.rules)
      if (l.find(what) != std::string::npos) return l.substr(3, l.find(' ', 3) - 3);
    return std::string();
  };
  const std::string v4_chain = chain_with(render(changed.v4), "--dport 2000"), v6_chain = chain_with(render(changed.v6), "--dport 2001");
  ASSERT_FALSE(v4_chain.empty());
  ASSERT_FALSE(v6_chain.empty());
  must({"ip", "netns", "exec", ns.name(), fmt::format("iptables-{}", variant), "-D", v4_chain, "3"});
  must({"ip", "netns", "exec", ns.name(), fmt::format("ip6tables-{}", variant), "-D", v6_chain, "3"});
  ASSERT_TRUE(b.status()->drift);
  rec->restores.clear();
  auto a3 = b.apply(changed);
  ASSERT_TRUE(a3) << a3.error().str();
  EXPECT_EQ(ruleset(variant, ns.name()), changed_rules);
  ASSERT_EQ(rec->restores.size(), 2u);
  EXPECT_NE(rec->restores[0].find(":" + v4_chain + " - [0:0]\n"), std::string::npos) << rec->restores[0];
  EXPECT_NE(rec->restores[1].find(":" + v6_chain + " - [0:0]\n"), std::string::npos) << rec->restores[1];
  EXPECT_FALSE(b.status()->drift);

  ASSERT_TRUE(b.flush());
  ASSERT_TRUE(reference.flush());
  fs::remove_all(state);
  fs::remove_all(fresh_state);
}

// A one-rule change inside a folded run is made on the live set in the kernel (no iptables-restore), real traffic
// follows it at once in both families, `status` sees no drift, and rollback puts the old member back the same way.
TEST_P(PolicyConformance, FoldedOneRuleChangeIsMadeOnTheLiveSet) {
  HS_REQUIRE_THAT(missing_privileges());
  Lab lab(GetParam());
  auto ctx = lab.context();
  auto rec = std::make_shared<RecordingRunner>();
  auto backend = lab.backend(rec);
  auto policy = [&](uint16_t port) {
    return "apiVersion: hostscope.io/v1\nkind: PolicyTest\nmetadata: {name: none}\ncases: []\n" + yaml_header("x-out", "service: x") +
           "failsafe: false\negress:\n" + one_peer_one_port_rules("deny", {{"10.88.2.2", "fd88:2::2", port}});
  };
  auto verdicts = [&] {
    std::string v;
    for (const char* dst : {"10.88.2.2", "fd88:2::2"})
      for (uint16_t port : {80, 81}) v += fmt::format("{}:{}={} ", dst, port, lab.probe_ok("x", "", dst, port, Protocol::Tcp) ? "allow" : "deny");
    return v;
  };
  auto first = compile_or_die(policy(80), ctx);
  ASSERT_TRUE(backend.apply(first));
  EXPECT_EQ(render(first.v4).folded.size(), 1u);
  EXPECT_EQ(verdicts(), "10.88.2.2:80=deny 10.88.2.2:81=allow fd88:2::2:80=deny fd88:2::2:81=allow ");

  rec->restores.clear();
  auto a2 = backend.apply(compile_or_die(policy(81), ctx));
  ASSERT_TRUE(a2) << a2.error().str();
  EXPECT_TRUE(rec->restores.empty()) << rec->restores[0];
  EXPECT_EQ(a2->plan.sets_changed.size(), 2u) << a2->plan.text();
  EXPECT_EQ(verdicts(), "10.88.2.2:80=allow 10.88.2.2:81=deny fd88:2::2:80=allow fd88:2::2:81=deny ");
  auto st = backend.status();
  ASSERT_TRUE(st) << st.error().str();
  EXPECT_FALSE(st->drift) << st->text();
  EXPECT_EQ(st->generation, 2);

  auto rb = backend.rollback();
  ASSERT_TRUE(rb) << rb.error().str();
  EXPECT_TRUE(rec->restores.empty());
  EXPECT_EQ(verdicts(), "10.88.2.2:80=deny 10.88.2.2:81=allow fd88:2::2:80=deny fd88:2::2:81=allow ");
  EXPECT_FALSE(backend.status()->drift);
  ASSERT_TRUE(backend.flush());
  EXPECT_EQ(sh({"ip", "netns", "exec", lab.ns("r"), "ipset", "list", "-n"}).out, "");
}

INSTANTIATE_TEST_SUITE_P(Variants, PolicyConformance, ::testing::Values("nft", "legacy"));

}  // namespace
}  // namespace hostscope::policy
