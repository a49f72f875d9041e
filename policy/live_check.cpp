#include "policy/live_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "policy/command.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/iptables.h"

namespace hostscope::policy {
namespace fs = std::filesystem;

namespace {

// The node's address towards every address namespace (link-local, so policies rarely name it), and for
// IPv6 one from the discard-only prefix 100::/64 (RFC 6666), which no real peer has.
constexpr const char* kNodeAddr = "169.254.77.1";
constexpr const char* kNodeAddr6 = "100::77:1";
constexpr const char* kLoopback = "127.0.0.1";

// Probe exit codes.
enum ProbeExit { kConnected = 0, kTimeout = 1, kRefused = 2, kSetupFailed = 3, kOtherError = 4 };

// ---- signals: SIGINT/SIGTERM/SIGHUP interrupt the run; cleanup happens in the destructors. ----
volatile sig_atomic_t g_signal = 0;

class SignalGuard {
 public:
  SignalGuard() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = [](int s) { g_signal = s; };
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking waits return EINTR so the run can stop
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~SignalGuard() {
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &old_[i], nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;
  static void reset_in_child() {
    for (int s : kSignals) signal(s, SIG_DFL);
  }

 private:
  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> old_{};
};

bool interrupted() { return g_signal != 0; }
Error interrupted_failure() {
  return Error{fmt::format("interrupted by signal {}; scratch namespaces and cgroups were removed", static_cast<int>(g_signal))};
}

// ---- small OS helpers ----
bool have_tool(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate(dir);
    candidate += '/';
    candidate += tool;
    if (access(candidate.c_str(), X_OK) == 0) return true;
  }
  return false;
}

// The cgroup2 mount point from /proc/self/mountinfo ("" when there is none).
std::string cgroup2_root() {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  while (std::getline(f, line)) {
    auto sep = line.find(" - ");
    if (sep == std::string::npos || line.compare(sep + 3, 8, "cgroup2 ") != 0) continue;
    std::stringstream ss(line.substr(0, sep));
    std::string field, mount;
    for (int i = 0; i < 5 && ss >> field; ++i) mount = field;
    if (!mount.empty()) return mount;
  }
  return "";
}

std::string tool_name(const std::string& variant, const char* tool) {
  std::string bin = std::string("iptables-") + tool;
  if (variant == "nft" || variant == "legacy") bin = "iptables-" + variant + "-" + tool;
  return bin;
}

pid_t wait_pid(pid_t pid, int* status) {
  for (;;) {
    pid_t r = waitpid(pid, status, 0);
    if (r >= 0 || errno != EINTR) return r;
  }
}

void kill_and_reap(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGKILL);
  int st = 0;
  wait_pid(pid, &st);
}

[[noreturn]] void child_setup_failed() { _exit(kSetupFailed); }

void enter_netns(const std::string& ns) {
  int fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) child_setup_failed();
  close(fd);
}

void child_common() {
  SignalGuard::reset_in_child();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
}

// One attempt from the current process: TCP connect, or a UDP request answered by the echo.
ProbeExit connect_once(const std::string& dst, uint16_t port, Protocol proto, int timeout_ms) {
  bool tcp = proto == Protocol::Tcp;
  SockAddr a = sock_addr(dst, port);
  int s = socket(a.family(), (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s < 0) return kOtherError;
  ProbeExit result = kTimeout;
  int r = connect(s, a.ptr(), a.len);
  if (tcp) {
    if (r == 0) {
      result = kConnected;
    } else if (errno == EINPROGRESS) {
      pollfd p{s, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) == 1) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &l);
        result = err == 0 ? kConnected : err == ECONNREFUSED ? kRefused : kOtherError;
      }
    } else {
      result = errno == ECONNREFUSED ? kRefused : kOtherError;
    }
  } else if (r == 0) {
    // Connected UDP socket: an ICMP port unreachable (REJECT) shows up as ECONNREFUSED.
    for (int attempt = 0; attempt < 2 && result == kTimeout; ++attempt) {
      if (send(s, "hs-live", 7, 0) < 0) {
        result = errno == ECONNREFUSED ? kRefused : kOtherError;
        break;
      }
      pollfd p{s, POLLIN, 0};
      if (poll(&p, 1, timeout_ms / 2) != 1) continue;
      char buf[16];
      ssize_t n = recv(s, buf, sizeof buf, 0);
      result = n == 7 ? kConnected : n < 0 && errno == ECONNREFUSED ? kRefused : kOtherError;
    }
  } else {
    result = kOtherError;
  }
  close(s);
  return result;
}

// ---- the scratch topology ----
struct Listener {
  std::set<std::pair<Protocol, uint16_t>> sockets;
  std::vector<std::string> udp_addrs;  // UDP is bound per address so replies come from the address asked
  bool v6 = false;                     // some probe reaches it over IPv6: TCP listens on :: too
};

// Child: TCP accept-and-close and UDP echo servers in `ns`; reports readiness on `ready_fd`.
[[noreturn]] void serve(const std::string& ns, const Listener& l, int ready_fd) {
  child_common();
  enter_netns(ns);
  std::vector<pollfd> fds;
  std::vector<bool> is_tcp;
  auto open_socket = [&](bool tcp, const std::string& addr, uint16_t port) {
    SockAddr a = sock_addr(addr, port);
    int s = socket(a.family(), (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a.family() == AF_INET6) setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (s < 0 || bind(s, a.ptr(), a.len) != 0 || (tcp && listen(s, 512) != 0)) {
      (void)!write(ready_fd, "E", 1);
      child_setup_failed();
    }
    fds.push_back({s, POLLIN, 0});
    is_tcp.push_back(tcp);
  };
  for (const auto& [proto, port] : l.sockets) {
    if (proto == Protocol::Tcp) {
      open_socket(true, "0.0.0.0", port);
      if (l.v6) open_socket(true, "::", port);
    } else
      for (const auto& a : l.udp_addrs) open_socket(false, a, port);
  }
  (void)!write(ready_fd, "R", 1);
  close(ready_fd);
  for (;;) {
    if (poll(fds.data(), fds.size(), -1) < 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      if (is_tcp[i]) {
        int c = accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) close(c);
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

// Everything a live run (its cgroups) or one of its batches (namespaces, processes, rules, state directory)
// creates; the destructor removes it in reverse order, whatever happened.
class Scratch {
 public:
  Scratch(std::string id, std::string variant) : id_(std::move(id)), variant_(std::move(variant)), run_(make_process_runner()) {}
  ~Scratch() {
    for (pid_t p : children_) kill_and_reap(p);
    if (backend_) (void)backend_->flush();
    for (auto it = netns_.rbegin(); it != netns_.rend(); ++it) run_->run({"ip", "netns", "del", *it}, "");
    // A cgroup can be removed once its last process has been reaped; retry briefly for the kernel.
    for (auto it = cgroup_dirs_.rbegin(); it != cgroup_dirs_.rend(); ++it)
      for (int i = 0; i < 50 && rmdir(it->c_str()) != 0 && errno == EBUSY; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!state_dir_.empty()) {
      std::error_code ec;
      fs::remove_all(state_dir_, ec);
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  Status run(const std::vector<std::string>& argv) {
    if (interrupted()) return interrupted_failure();
    auto r = run_->run(argv, "");
    if (!r.ok()) return Error{fmt::format("{} failed (exit {}): {}", join_command(argv), r.exit_code, r.err)};
    return {};
  }
  Status add_netns(const std::string& name) {
    auto r = run({"ip", "netns", "add", name});
    if (r) netns_.push_back(name);
    return r;
  }
  // mkdir -p of `rel` below `base` (the cgroup2 mount), remembering every directory it created.
  Status make_cgroup(const fs::path& base, const std::string& rel) {
    fs::path cur = base;
    for (const auto& part : fs::path(rel).relative_path()) {
      cur /= part;
      if (mkdir(cur.c_str(), 0755) == 0) cgroup_dirs_.push_back(cur.string());
      else if (errno != EEXIST) return Error{fmt::format("mkdir {} failed: {}", cur.string(), std::strerror(errno))};
    }
    return {};
  }
  // The scratch parent must be new: never adopt (or later remove) a cgroup somebody else made.
  Status make_parent_cgroup(const fs::path& dir) {
    if (mkdir(dir.c_str(), 0755) != 0) return Error{fmt::format("mkdir {} failed: {}", dir.string(), std::strerror(errno))};
    cgroup_dirs_.push_back(dir.string());
    return {};
  }
  Status make_state_dir() {
    std::string tmpl = (fs::temp_directory_path() / "hostscope-live-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) return Error{fmt::format("mkdtemp {} failed: {}", tmpl, std::strerror(errno))};
    state_dir_ = tmpl;
    return {};
  }
  void adopt_child(pid_t pid) { children_.insert(pid); }
  void reaped(pid_t pid) { children_.erase(pid); }  // its pid may be reused: never signal it again
  IptablesBackend& backend(const std::string& node_ns) {
    IptablesOptions io;
    io.variant = variant_;
    io.command_prefix = {"ip", "netns", "exec", node_ns};
    io.state_dir = state_dir_;
    backend_.emplace(io, run_);
    return *backend_;
  }
  const std::string& id() const { return id_; }

 private:
  std::string id_, variant_, state_dir_;
  std::shared_ptr<CommandRunner> run_;
  std::vector<std::string> netns_, cgroup_dirs_;
  std::set<pid_t> children_;
  std::optional<IptablesBackend> backend_;
};

// ---- planning: which real connection stands for each evaluator pair ----
struct Planned {
  size_t case_index = 0;
  LiveProbe probe;
  // Set when the probe is made for real. A remote end is an address, emulated by a namespace of the batch the
  // probe runs in; an empty address stands for the node (a local client joins client_cgroup_dir there).
  bool live = false;
  std::string client_addr, client_cgroup_dir, dst_addr, dst;
  uint16_t port = 0;
  Protocol proto = Protocol::Tcp;
};

// What every batch shares: the per-case results in test order, every probe in plan order, the scratch
// cgroups and the rules compiled with them.
struct Plan {
  std::vector<LiveCaseResult> results;
  std::vector<Planned> probes;
  std::set<std::string> scratch_cgroups;
  Ir live_ir;
};

std::string describe(const Endpoint& e) {
  if (e.local) return "cgroup " + e.cgroup;
  return e.address ? e.address->str() : "?";
}

// Why an address cannot stand as its own scratch host ("" when it can).
std::string unusable_address(const IpAddr& a) {
  if (a.family == Family::V6) {
    const auto& b = a.bytes;
    bool low_zero = std::all_of(b.begin(), b.begin() + 10, [](uint8_t x) { return x == 0; });
    if (b[0] == 0xff || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || (low_zero && ((b[10] == 0xff && b[11] == 0xff) || a.str() == "::" ||
                                                                                a.str() == "::1")))
      return "not a unicast host address the scratch topology can own (multicast, link-local, loopback, unspecified or IPv4-mapped)";
    if (a.str() == kNodeAddr6) return fmt::format("{} is the scratch node's own address", kNodeAddr6);
    return "";
  }
  uint8_t b0 = a.bytes[0];
  if (b0 == 0 || b0 == 127 || b0 >= 224) return "not a unicast host address the scratch topology can own";
  if (a.str() == kNodeAddr) return fmt::format("{} is the scratch node's own address", kNodeAddr);
  return "";
}

std::string summary(const std::vector<LiveProbe>& probes, bool live) {
  size_t allow = 0, deny = 0;
  for (const auto& p : probes) {
    if (live && !p.live_allow) continue;
    bool v = live ? *p.live_allow : p.evaluator_allow;
    (v ? allow : deny)++;
  }
  if (allow + deny == 0) return live ? "skipped" : "-";
  return allow && deny ? "mixed" : allow ? "allow" : "deny";
}

}  // namespace

bool LiveCaseResult::evaluator_matches() const {
  for (const auto& p : probes)
    if (p.evaluator_allow != expect_allow) return false;
  return true;
}
bool LiveCaseResult::live_matches() const {
  for (const auto& p : probes)
    if (p.live_allow && *p.live_allow != expect_allow) return false;
  return true;
}
size_t LiveCaseResult::skipped() const {
  size_t n = 0;
  for (const auto& p : probes) n += p.live_allow ? 0 : 1;
  return n;
}
std::string LiveCaseResult::evaluator_summary() const { return summary(probes, false); }
std::string LiveCaseResult::live_summary() const { return summary(probes, true); }

std::string LiveCaseResult::explanation() const {
  if (!error.empty()) return error;
  std::string out;
  const char* want = expect_allow ? "allow" : "deny";
  for (const auto& p : probes) {
    bool eval_bad = p.evaluator_allow != expect_allow;
    bool live_bad = p.live_allow && *p.live_allow != expect_allow;
    if (!eval_bad && !live_bad) continue;
    std::string who;
    if (eval_bad && live_bad) who = "the expectation is not what the policy does: evaluator and kernel agree";
    else if (eval_bad) who = "the evaluator disagrees with the expectation but the kernel does what was expected: evaluator/backend mismatch";
    else who = "the kernel disagrees with the evaluator: backend or environment difference";
    out += fmt::format("\n    {} -> {}: expected {}, evaluator {}, live {} ({}); {}", p.from, p.to, want,
                       p.evaluator_allow ? "allow" : "deny", p.live_allow ? (*p.live_allow ? "allow" : "deny") : "skipped",
                       p.live_detail, who);
  }
  return out;
}

bool print_live_results(const LiveRun& run, std::ostream& out) {
  const auto& results = run.cases;
  size_t failed = 0, made = 0, skipped = 0;
  for (const auto& r : results) {
    made += r.probes.size() - r.skipped();
    skipped += r.skipped();
    failed += r.passed() ? 0 : 1;
    std::string note;
    if (r.passed() && r.skipped())
      for (const auto& p : r.probes)
        if (!p.live_allow) note += fmt::format("\n    not tried live: {} -> {}: {}", p.from, p.to, p.live_detail);
    out << fmt::format("{} {}: {} — expect {}, evaluator {}, live {}{}{}\n", r.passed() ? "PASS" : "FAIL", r.loc.str(), r.case_name,
                       r.expect_allow ? "allow" : "deny", r.evaluator_summary(), r.live_summary(),
                       r.passed() ? "" : r.error.empty() ? r.explanation() : " — " + r.error,
                       note);
  }
  out << fmt::format("{} passed, {} failed; {} connections made live, {} not tried live; {} remote {} in {} {}\n", results.size() - failed,
                     failed, made, skipped, run.addresses, run.addresses == 1 ? "address" : "addresses", run.batches,
                     run.batches == 1 ? "batch" : "batches");
  return failed == 0;
}

std::optional<std::string> mirror_cgroup(const std::string& parent, const std::string& cgroup) {
  if (cgroup.empty() || cgroup.front() != '/') return std::nullopt;
  for (const auto& part : fs::path(cgroup))
    if (part == "." || part == "..") return std::nullopt;
  std::string rest = cgroup;
  while (rest.size() > 1 && rest.back() == '/') rest.pop_back();
  return rest == "/" ? parent : parent + rest;
}

std::string live_requirements(const LiveOptions& o) {
  std::vector<std::string> missing;
  if (geteuid() != 0) missing.push_back("root (network namespaces, iptables and cgroups)");
  std::string root = cgroup2_root();
  if (root.empty() || access((root + "/cgroup.procs").c_str(), W_OK) != 0) missing.push_back("a writable cgroup v2 mount");
  std::vector<std::string> tools = {"ip", "ipset"};
  for (const char* t : {"restore", "save"}) {
    tools.push_back(tool_name(o.variant, t));
    tools.push_back("ip6" + tool_name(o.variant, t).substr(2));
  }
  for (const auto& t : tools)
    if (!have_tool(t)) missing.push_back("the `" + t + "` tool");
  if (o.timeout_ms < 50 || o.timeout_ms > 60000) missing.push_back("--timeout-ms between 50 and 60000");
  std::string s;
  for (const auto& m : missing) s += (s.empty() ? "" : ", ") + m;
  return s;
}

namespace {

// Mirrors the cgroups under `parent`, compiles the set with them, and plans every (case, from endpoint, to
// endpoint) pair the evaluator (`ir`) looks at, in test order.
Result<Plan> plan_live(const LoadResult& loaded, const Context& ctx, const Ir& ir, const std::string& parent, const fs::path& cg_root) {
  Plan plan;
  // Kernel view: every cgroup (catalogue and literal subjects) mirrored under the scratch parent.
  auto mirror = [&](const std::string& cg) -> Result<std::string> {
    auto m = mirror_cgroup(parent, cg);
    if (!m) return Error{fmt::format("cgroup path '{}' cannot be mirrored under {} (it has . or .. components)", cg, parent)};
    return *m;
  };
  LoadResult live_set = loaded;
  Context live_ctx = ctx;
  for (auto& p : live_set.set.policies)
    if (p.subject.cgroup && safe_cgroup_path(*p.subject.cgroup)) {
      auto m = mirror(*p.subject.cgroup);
      if (!m) return m.error();
      p.subject.cgroup = *m;
      plan.scratch_cgroups.insert(*m);
    }
  for (auto& s : live_ctx.services)
    for (auto& cg : s.cgroups)
      if (safe_cgroup_path(cg)) {
        auto m = mirror(cg);
        if (!m) return m.error();
        cg = *m;
        plan.scratch_cgroups.insert(*m);
      }
  auto live_compiled = compile(live_set, live_ctx);
  if (!live_compiled.ok()) return Error{"the policy set with mirrored cgroups does not validate"};
  plan.live_ir = std::move(*live_compiled.ir);

  for (const auto& t : loaded.set.tests)
    for (const auto& c : t.cases) {
      LiveCaseResult r;
      r.test = t.name;
      r.case_name = c.name;
      r.loc = c.loc;
      r.expect_allow = c.expect_allow;
      auto froms = endpoints_for(c.from, ctx), tos = endpoints_for(c.to, ctx);
      size_t pairs = 0;
      if (froms.empty() || tos.empty()) r.error = fmt::format("'{}' has no cgroups or addresses to test with", froms.empty() ? c.from : c.to);
      for (const auto& f : froms)
        for (const auto& to : tos) {
          if (f.address && to.address && f.address->family != to.address->family) continue;
          ++pairs;
          Planned p;
          p.case_index = plan.results.size();
          p.probe.from = describe(f);
          p.probe.to = to.local ? "local" : describe(to);
          p.probe.evaluator_allow = evaluate_connection(ir, f, to, c.protocol, c.port) != Verdict::Deny;
          p.port = c.port;
          p.proto = c.protocol;
          std::string skip;
          for (const Endpoint* e : {&f, &to})
            if (!e->local && skip.empty()) skip = unusable_address(*e->address);
          if (skip.empty() && f.local && !safe_cgroup_path(f.cgroup)) skip = "the cgroup path is unusable";
          if (skip.empty() && !f.local && !to.local && *f.address == *to.address)
            skip = "same address on both ends: the connection never passes through the node";
          if (skip.empty() && p.proto != Protocol::Tcp && p.proto != Protocol::Udp) skip = "only tcp and udp can be tried";
          if (!skip.empty()) {
            p.probe.live_detail = "skipped: " + skip;
            plan.probes.push_back(std::move(p));
            continue;
          }
          p.live = true;
          if (f.local) p.client_cgroup_dir = (cg_root / fs::path(*mirror_cgroup(parent, f.cgroup)).relative_path()).string();
          else p.client_addr = f.address->str();
          if (to.local) {
            p.dst = f.local ? kLoopback : f.address->family == Family::V6 ? kNodeAddr6 : kNodeAddr;
          } else {
            p.dst_addr = to.address->str();
            p.dst = p.dst_addr;
          }
          plan.probes.push_back(std::move(p));
        }
      if (r.error.empty() && pairs == 0) r.error = fmt::format("'{}' and '{}' share no address family", c.from, c.to);
      plan.results.push_back(std::move(r));
    }
  if (plan.probes.size() > kLiveMaxProbes)
    return Error{fmt::format("the test cases need {} connections; live checks make at most {}", plan.probes.size(), kLiveMaxProbes)};
  return plan;
}

// The remote addresses each probe needs emulated (client and destination, none for the node), for batching.
std::vector<std::vector<std::string>> probe_addresses(const std::vector<Planned>& probes) {
  std::vector<std::vector<std::string>> needs(probes.size());
  for (size_t i = 0; i < probes.size(); ++i)
    for (const std::string* a : {&probes[i].client_addr, &probes[i].dst_addr})
      if (probes[i].live && !a->empty()) needs[i].push_back(*a);
  return needs;
}

// One scratch environment named after `id` ("<pid>-b<k>"): the node namespace, one namespace per remote
// address the probes [begin, end) use, their listeners and the rules; makes those probes and records the
// outcome in them. Everything it created is removed when it returns, whatever happened.
Status run_batch(std::vector<Planned>& probes, size_t begin, size_t end, const std::string& id, const Ir& live_ir,
                 const LiveOptions& o) {
  Scratch scratch(id, o.variant);
  const std::string node_ns = "hsl-" + scratch.id() + "-node";
  std::map<std::string, std::string> addr_ns;  // remote address -> its namespace, numbered in plan order
  std::map<std::string, Listener> listeners;   // namespace -> sockets
  auto ns_of = [&](const std::string& addr) -> const std::string& {
    if (addr.empty()) return node_ns;
    auto [it, fresh] = addr_ns.emplace(addr, "");
    if (fresh) it->second = fmt::format("hsl-{}-a{}", scratch.id(), addr_ns.size());
    return it->second;
  };
  std::vector<size_t> live;
  for (size_t i = begin; i < end; ++i) {
    const Planned& p = probes[i];
    if (!p.live) continue;
    live.push_back(i);
    ns_of(p.client_addr);
    Listener& l = listeners[ns_of(p.dst_addr)];
    l.sockets.insert({p.proto, p.port});
    l.v6 |= p.dst.find(':') != std::string::npos;
  }

  // Topology: node namespace, one namespace per address, veth h<k> <-> eth0, routed by the node.
  if (auto r = scratch.make_state_dir(); !r) return r.error();
  // No duplicate address detection: addresses are usable at once, and neighbour discovery (which the rules
  // must leave open) needs the link-local ones.
  auto no_dad = [](const std::string& ns) {
    return std::vector<std::string>{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
                                    "net.ipv6.conf.all.accept_dad=0"};
  };
  std::vector<std::vector<std::string>> setup = {
      {"ip", "-n", node_ns, "link", "set", "lo", "up"},
      {"ip", "netns", "exec", node_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}, no_dad(node_ns)};
  if (auto r = scratch.add_netns(node_ns); !r) return r.error();
  size_t k = 0;
  for (const auto& [addr, ns] : addr_ns) {
    if (auto r = scratch.add_netns(ns); !r) return r.error();
    std::string dev = fmt::format("h{}", ++k);
    bool v6 = addr.find(':') != std::string::npos;
    const std::string node_addr = v6 ? kNodeAddr6 : kNodeAddr, host = v6 ? "/128" : "/32";
    std::vector<std::vector<std::string>> cmds = {
        no_dad(ns),
        {"ip", "-n", node_ns, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns},
        {"ip", "-n", node_ns, "addr", "add", node_addr + host, "dev", dev},
        {"ip", "-n", node_ns, "link", "set", dev, "up"},
        {"ip", "-n", node_ns, v6 ? "-6" : "-4", "route", "add", addr + host, "dev", dev, "src", node_addr},
        {"ip", "-n", ns, "link", "set", "lo", "up"},
        {"ip", "-n", ns, "addr", "add", addr + host, "dev", "eth0"},
        {"ip", "-n", ns, "link", "set", "eth0", "up"},
        {"ip", "-n", ns, v6 ? "-6" : "-4", "route", "add", node_addr, "dev", "eth0"},
        {"ip", "-n", ns, v6 ? "-6" : "-4", "route", "add", "default", "via", node_addr, "dev", "eth0"}};
    setup.insert(setup.end(), cmds.begin(), cmds.end());
    listeners[ns].udp_addrs = {addr};
  }
  listeners[node_ns].udp_addrs = {kLoopback, kNodeAddr};
  if (listeners[node_ns].v6) listeners[node_ns].udp_addrs.push_back(kNodeAddr6);
  for (const auto& argv : setup)
    if (auto r = scratch.run(argv); !r) return r.error();

  // Listeners, each ready before anything is probed.
  for (const auto& [ns, l] : listeners) {
    if (l.sockets.empty()) continue;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return Error{fmt::format("pipe failed: {}", std::strerror(errno))};
    pid_t pid = fork();
    if (pid < 0) return Error{fmt::format("fork failed: {}", std::strerror(errno))};
    if (pid == 0) {
      close(pipefd[0]);
      serve(ns, l, pipefd[1]);
    }
    scratch.adopt_child(pid);
    close(pipefd[1]);
    char c = 0;
    pollfd p{pipefd[0], POLLIN, 0};
    int n = -1;
    while ((n = poll(&p, 1, 10000)) < 0 && errno == EINTR && !interrupted()) {
    }
    ssize_t got = n == 1 ? read(pipefd[0], &c, 1) : 0;
    close(pipefd[0]);
    if (interrupted()) return interrupted_failure();
    if (got != 1 || c != 'R') return Error{fmt::format("listeners in namespace {} could not be started", ns)};
  }

  // The compiled rules (with the scratch cgroups) go into the node namespace only.
  auto applied = scratch.backend(node_ns).apply(live_ir);
  if (!applied) return Error{"applying the compiled rules in the scratch namespace failed: " + applied.error().str()};

  // Probes, kLiveParallelProbes at a time; each is bounded by the timeout.
  for (size_t start = 0; start < live.size(); start += kLiveParallelProbes) {
    size_t stop = std::min(live.size(), start + kLiveParallelProbes);
    std::vector<pid_t> pids(stop - start, -1);
    for (size_t i = start; i < stop; ++i) {
      const Planned& p = probes[live[i]];
      const std::string& client_ns = ns_of(p.client_addr);
      pid_t pid = fork();
      if (pid < 0) return Error{fmt::format("fork failed: {}", std::strerror(errno))};
      if (pid == 0) {
        child_common();
        if (!p.client_cgroup_dir.empty()) {
          int fd = open((p.client_cgroup_dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
          if (fd < 0 || write(fd, "0", 1) != 1) child_setup_failed();
          close(fd);
        }
        enter_netns(client_ns);
        _exit(connect_once(p.dst, p.port, p.proto, o.timeout_ms));
      }
      pids[i - start] = pid;
      scratch.adopt_child(pid);  // killed and reaped by the scratch guard on an early return
    }
    for (size_t i = start; i < stop; ++i) {
      Planned& p = probes[live[i]];
      pid_t pid = pids[i - start];
      int st = -1;  // not WIFEXITED: an unreaped probe counts as a setup failure
      while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) break;
        if (interrupted()) return interrupted_failure();
      }
      scratch.reaped(pid);
      int code = WIFEXITED(st) ? WEXITSTATUS(st) : kSetupFailed;
      static const std::map<int, std::string> kDetail = {{kConnected, "connected"},
                                                         {kTimeout, "no answer within the timeout (dropped)"},
                                                         {kRefused, "refused (rejected)"},
                                                         {kOtherError, "connection error (rejected or unreachable)"}};
      if (code == kSetupFailed) return Error{fmt::format("a client in namespace {} could not be started", ns_of(p.client_addr))};
      p.probe.live_allow = code == kConnected;
      p.probe.live_detail = kDetail.count(code) ? kDetail.at(code) : fmt::format("exit {}", code);
      // The client is named by what it stands for, never by its namespace: the text does not depend on the batch.
      p.probe.live_detail += fmt::format(", {} -> {}:{}/{}", p.client_cgroup_dir.empty() ? p.client_addr : "node in " + p.probe.from,
                                         p.dst, p.port, to_string(p.proto));
    }
  }
  if (interrupted()) return interrupted_failure();
  return {};
}

}  // namespace

std::vector<size_t> split_live_batches(const std::vector<std::vector<std::string>>& needs, size_t max_addresses) {
  std::vector<size_t> ends;
  std::set<std::string> batch;  // distinct addresses of the batch being filled
  for (size_t i = 0; i < needs.size(); ++i) {
    std::set<std::string> fresh;
    for (const auto& a : needs[i])
      if (!batch.count(a)) fresh.insert(a);
    if (!batch.empty() && batch.size() + fresh.size() > max_addresses) {
      ends.push_back(i);
      batch.clear();
    }
    batch.insert(needs[i].begin(), needs[i].end());
  }
  ends.push_back(needs.size());
  return ends;
}

Result<LiveRun> run_live_tests(const LoadResult& loaded, const Context& ctx, const LiveOptions& o) {
  if (auto why = live_requirements(o); !why.empty()) return Error{"live checks cannot run; missing: " + why};
  auto reference = compile(loaded, ctx);
  if (!reference.ok()) return Error{"policy set does not validate"};

  SignalGuard signals;
  // The run's own scratch holds the mirrored cgroups, for all batches (the compiled rules name them); each
  // batch has a scratch of its own for namespaces, processes, rules and state, removed before the next
  // batch starts and always before the cgroups.
  Scratch scratch(std::to_string(getpid()), o.variant);
  const std::string parent = "/hostscope-live-" + scratch.id();
  const fs::path cg_root = cgroup2_root();
  auto plan = plan_live(loaded, ctx, *reference.ir, parent, cg_root);
  if (!plan) return plan.error();
  auto needs = probe_addresses(plan->probes);
  auto ends = split_live_batches(needs, kLiveMaxAddresses);

  if (auto r = scratch.make_parent_cgroup(cg_root / fs::path(parent).relative_path()); !r) return r.error();
  for (const auto& cg : plan->scratch_cgroups)
    if (auto r = scratch.make_cgroup(cg_root, cg); !r) return r.error();
  size_t begin = 0;
  for (size_t b = 0; b < ends.size(); ++b) {
    if (interrupted()) return interrupted_failure();
    if (auto r = run_batch(plan->probes, begin, ends[b], fmt::format("{}-b{}", scratch.id(), b + 1), plan->live_ir, o); !r) return r.error();
    begin = ends[b];
  }
  if (interrupted()) return interrupted_failure();

  LiveRun run;
  std::set<std::string> addresses;
  for (const auto& n : needs) addresses.insert(n.begin(), n.end());
  run.addresses = addresses.size();
  run.batches = ends.size();
  for (auto& p : plan->probes) plan->results[p.case_index].probes.push_back(std::move(p.probe));
  run.cases = std::move(plan->results);
  return run;
}

}  // namespace hostscope::policy
