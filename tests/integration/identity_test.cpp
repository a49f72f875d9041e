// Privileged integration tests of process identity on connection events: the real process and TCP programs,
// the process table fed by exec/fork/exit events, local peers stitched in the kernel, and `hostscope services`.
//   - goroutine ids on connect/serve events equal the ids a Go test service prints itself (plain and -s -w): the
//     dialing goroutine, and the goroutine that accepted and first read the connection
//   - 1000 short-lived processes, each making one connection: every event names its process; the table stays
//     within its bound
//   - `hostscope services -o json` agrees with `go version -m` on a running Go service with a VCS stamp
//   - a process moved into a test-created Kubernetes pod cgroup, with a fake kubelet log tree, is named
//     namespace/workload on its connections and in `hostscope services`
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "agent/bpf/process_tracer.h"
#include "agent/bpf/tcp_tracer.h"
#include "agent/identity/process_lookup.h"
#include "agent/pipeline/process_reader.h"
#include "agent/pipeline/tcp_reader.h"
#include "support/fake_pod.h"
#include "support/hostile_elf.h"
#include "support/privileged.h"

using namespace hostscope;
using namespace hostscope::testing;
using events::ConnectionEvent;
using events::Kind;
using events::Role;
namespace fs = std::filesystem;

namespace {

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v ? v : def;
}
std::string peer_bin() { return env_or("HS_PEER", "hs_peer"); }
std::string hostscope_bin() { return env_or("HOSTSCOPE_BIN", "hostscope"); }
fs::path source_dir() {
  return env_or("HOSTSCOPE_SRC", fs::path(__FILE__).parent_path().parent_path().parent_path().string());
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-identity-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

// The identity stack of the pipeline, in-process: every event with what the process lookup said.
struct Resolved {
  ConnectionEvent e;
  identity::ConnectionProcesses r;
};

class IdentityStack {
 public:
  explicit IdentityStack(identity::ProcessTableOptions popts = {}) {
    auto t = bpf::TcpTracer::start({.stitch_peers = true});
    if (!t) {
      error_ = t.error().str();
      return;
    }
    tcp_ = std::move(*t);
    bpf::connect_go_procs(popts, tcp_->go_procs_fd());
    table_ = std::make_unique<identity::ProcessTable>(std::move(popts));
    auto p = bpf::ProcessTracer::start({});
    if (!p) {
      error_ = p.error().str();
      return;
    }
    proc_ = std::move(*p);
    preader_ = std::make_unique<pipeline::ProcessReader>(*proc_, *table_);
    if (auto st = preader_->start(); !st) {
      error_ = st.error().str();
      return;
    }
    while (!preader_->ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    resolver_ = std::make_unique<identity::ProcessLookup>(*table_, [this] { preader_->catch_up(); });
    reader_ = std::make_unique<pipeline::TcpReader>(*tcp_, [this](std::span<const ConnectionEvent> b) {
      resolver_->begin_batch();
      for (const auto& e : b) {
        auto r = resolver_->resolve(e);
        std::lock_guard lk(mu_);
        got_.push_back({e, std::move(r)});
      }
    });
    if (auto st = reader_->start(); !st) error_ = st.error().str();
  }
  ~IdentityStack() {
    if (reader_) reader_->stop();
    if (preader_) preader_->stop();
  }
  const std::string& error() const { return error_; }
  identity::ProcessTable& table() { return *table_; }
  bpf::ProcessTracer& proc_tracer() { return *proc_; }

  template <typename Pred>
  std::vector<Resolved> wait_for(size_t n, Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::vector<Resolved> out;
    eventually([&] {
      out.clear();
      std::lock_guard lk(mu_);
      for (const auto& x : got_)
        if (pred(x.e)) out.push_back(x);
      return out.size() >= n;
    }, timeout);
    return out;
  }

 private:
  std::string error_;
  std::unique_ptr<bpf::TcpTracer> tcp_;
  std::unique_ptr<identity::ProcessTable> table_;
  std::unique_ptr<bpf::ProcessTracer> proc_;
  std::unique_ptr<pipeline::ProcessReader> preader_;
  std::unique_ptr<identity::ProcessLookup> resolver_;
  std::unique_ptr<pipeline::TcpReader> reader_;
  std::mutex mu_;
  std::vector<Resolved> got_;
};

#define HS_START_STACK(var, ...)     \
  HS_REQUIRE_ROOT();                 \
  IdentityStack var{__VA_ARGS__};    \
  ASSERT_TRUE(var.error().empty()) << var.error();

// A child with a writable stdin and a line-readable stdout.
class Proc {
 public:
  explicit Proc(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = fdopen(out[0], "r");
  }
  ~Proc() {
    close_stdin();
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }
  pid_t pid() const { return pid_; }
  void send(const std::string& s) { (void)!write(in_, s.data(), s.size()); }
  void close_stdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  std::optional<std::string> line() {
    char* l = nullptr;
    size_t cap = 0;
    ssize_t n = out_ ? getline(&l, &cap, out_) : -1;
    std::optional<std::string> r;
    if (n >= 0) r = trim(std::string(l, size_t(n)));
    free(l);
    return r;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  FILE* out_ = nullptr;
};

// ---- Go test service builds (once per run) ----

struct GoBuilds {
  std::string why;  // non-empty: could not build
  TempDir dir;
  fs::path plain, stripped, vcs;
};
std::unique_ptr<GoBuilds> g_go;  // destroyed at exit: removes the builds and the Go caches

std::string go_env() {
  const std::string d = g_go->dir.path.string();
  return "GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on GOCACHE=" + d + "/gocache GOPATH=" + d +
         "/gopath CGO_ENABLED=0 ";
}

const GoBuilds& go_builds() {
  if (g_go) return *g_go;
  g_go = std::make_unique<GoBuilds>();
  auto& b = *g_go;
  if (sh("command -v go").status != 0) {
    b.why = "the go toolchain is not installed";
    return b;
  }
  const fs::path d = b.dir.path;
  // Built from a copy outside the repository: the repository's git state must not leak into vcs.*.
  fs::copy(source_dir() / "tests/go/goid", d / "goid", fs::copy_options::recursive);
  fs::copy(source_dir() / "tests/go/goid", d / "vcs", fs::copy_options::recursive);
  b.plain = d / "goid-plain";
  b.stripped = d / "goid-stripped";
  b.vcs = d / "goid-vcs";
  auto r = sh("cd " + (d / "goid").string() + " && " + go_env() + "go build -buildvcs=false -o " + b.plain.string() +
              " . && " + go_env() + "go build -buildvcs=false -ldflags='-s -w' -o " + b.stripped.string() + " .");
  if (r.status != 0) {
    b.why = "go build failed: " + r.out;
    return b;
  }
  r = sh("cd " + (d / "vcs").string() +
         " && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -q -m init && " + go_env() +
         "go build -o " + b.vcs.string() + " .");
  if (r.status != 0) b.why = "go build (vcs) failed: " + r.out;
  return b;
}

#define HS_REQUIRE_GO()           \
  const GoBuilds& go = go_builds(); \
  HS_REQUIRE_THAT(go.why)

// ---- goroutine ids ----

class GoroutineIds : public ::testing::TestWithParam<const char*> {};

TEST_P(GoroutineIds, ConnectAndAcceptEventsCarryTheCallersGoroutine) {
  HS_START_STACK(stack);
  HS_REQUIRE_GO();
  const fs::path bin = std::string(GetParam()) == "stripped" ? go.stripped : go.plain;
  Proc svc({bin.string(), "4"});
  auto l1 = svc.line(), l2 = svc.line();
  ASSERT_TRUE(l1 && l2 && l1->rfind("PID ", 0) == 0 && l2->rfind("LISTEN ", 0) == 0);
  const int listen_port = std::stoi(l2->substr(7));
  const uint32_t pid = uint32_t(svc.pid());

  // The service must be identified as Go, with offsets in the kernel map, before it makes connections.
  ASSERT_TRUE(eventually([&] {
    auto p = stack.table().lookup(pid);
    return p && p->proc_read && p->go && p->go->offsets;
  })) << "Go process not identified";
  auto p = stack.table().lookup(pid);
  EXPECT_EQ(p->go->module, "example.com/hostscope/goid");
  EXPECT_EQ(p->service, "example.com/hostscope/goid");
  EXPECT_GT(stack.table().stats().go_offsets_added, 0u);

  svc.send("go\n");
  std::map<int, uint64_t> dial_goid, accept_goid;  // client port -> goid printed by the program
  while (auto l = svc.line()) {
    if (*l == "DONE") break;
    std::istringstream in(*l);
    std::string what;
    uint64_t id;
    int port;
    in >> what >> id >> port;
    ASSERT_NE(what, "ERROR") << *l;
    (what == "DIAL" ? dial_goid : accept_goid)[port] = id;
  }
  ASSERT_EQ(dial_goid.size(), 4u);
  ASSERT_EQ(accept_goid.size(), 4u);

  auto opens = stack.wait_for(8, [&](const ConnectionEvent& e) {
    return e.kind == Kind::Open && e.pid == pid && (e.sport == listen_port || e.dport == listen_port);
  });
  ASSERT_EQ(opens.size(), 8u);
  std::set<uint64_t> seen;
  for (const auto& [e, r] : opens) {
    ASSERT_TRUE(e.goid.has_value()) << "no goid on " << to_string(e.role) << " port " << e.sport;
    if (e.role == Role::Active) {
      ASSERT_TRUE(dial_goid.count(e.sport));
      EXPECT_EQ(*e.goid, dial_goid[e.sport]) << "connect from port " << e.sport;
    } else {
      ASSERT_EQ(e.role, Role::Passive);
      ASSERT_TRUE(accept_goid.count(e.dport));
      EXPECT_EQ(*e.goid, accept_goid[e.dport]) << "accept of port " << e.dport;
      // Both ends are this process: the accepted side finds the dialing side as its local peer.
      EXPECT_EQ(r.peer_pid, pid);
    }
    ASSERT_TRUE(r.owner);
    EXPECT_EQ(r.owner->service, "example.com/hostscope/goid");
    seen.insert(*e.goid);
  }
  EXPECT_EQ(seen.size(), 8u);  // eight goroutines, eight ids

  // The process's exit removes its offsets from the kernel map.
  svc.close_stdin();
  ASSERT_TRUE(eventually([&] { return stack.table().stats().go_offsets_removed > 0 && !stack.table().is_live(pid); }));
}

INSTANTIATE_TEST_SUITE_P(Builds, GoroutineIds, ::testing::Values("plain", "stripped"));

// ---- short-lived processes ----

size_t live_processes() {
  size_t n = 0;
  for (auto& d : fs::directory_iterator("/proc"))
    if (std::isdigit(d.path().filename().string()[0])) n++;
  return n;
}

TEST(ShortLived, ThousandProcessesEachConnectionCarriesItsIdentity) {
  HS_REQUIRE_ROOT();
  constexpr int kProcs = 1000;
  identity::ProcessTableOptions po;
  // Tight bound: far fewer slots than processes, so the table must evict to stay within it; the grace period
  // is long so eviction, not expiry, is what keeps it bounded.
  po.capacity = live_processes() + 200;
  po.exit_grace = std::chrono::seconds(60);
  HS_START_STACK(stack, po);
  const std::string exe = fs::canonical(peer_bin()).string();

  Proc server({peer_bin(), "server", "127.0.0.1", "0", "16", std::to_string(kProcs)});
  auto ready = server.line();
  ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0);
  const int sport = std::stoi(ready->substr(6));

  // Ephemeral ports can repeat over 1000 connections: keep every (port, pid) pair.
  std::multimap<int, pid_t> clients_of_port;
  std::set<uint32_t> client_pids;
  for (int i = 0; i < kProcs; i++) {
    Child c({peer_bin(), "client", "127.0.0.1", std::to_string(sport), "16"});
    int port = 0;
    while (auto l = c.line())
      if (l->rfind("LOCAL ", 0) == 0) port = std::stoi(l->substr(6));
    ASSERT_EQ(c.wait(), 0);
    ASSERT_GT(port, 0);
    clients_of_port.emplace(port, c.pid());
    client_pids.insert(uint32_t(c.pid()));
  }
  auto is_client_of = [&](int port, uint32_t pid) {
    auto [b, e] = clients_of_port.equal_range(port);
    return std::any_of(b, e, [&](const auto& kv) { return uint32_t(kv.second) == pid; });
  };
  const uint32_t server_pid = uint32_t(server.pid());
  auto closes = stack.wait_for(2 * kProcs, [&](const ConnectionEvent& e) {
    if (e.kind != Kind::Close) return false;
    if (e.role == Role::Active) return e.dport == sport && client_pids.count(e.pid) > 0;
    return e.role == Role::Passive && e.sport == sport && e.pid == server_pid;
  }, std::chrono::seconds(60));
  ASSERT_EQ(closes.size(), size_t(2 * kProcs));
  int unknown = 0, peer_unknown = 0;
  for (const auto& [e, r] : closes) {
    if (e.role == Role::Active) {
      ASSERT_TRUE(is_client_of(e.sport, e.pid));
      if (!r.owner) {
        unknown++;
        continue;
      }
      EXPECT_EQ(r.owner->pid, e.pid);
      EXPECT_EQ(r.owner->comm, "hs_peer");
      EXPECT_EQ(r.owner->exe, exe);
      EXPECT_EQ(r.owner->service, "hs_peer");
      EXPECT_EQ(r.owner->service_source, identity::ServiceSource::exe);
      EXPECT_EQ(r.owner->cmdline.rfind(peer_bin() + " client 127.0.0.1", 0), 0u) << r.owner->cmdline;
      // The server's pid as the peer. Seen in 2026-12 runs under load: about 1 active close in 1,000 arrives without
      // the peer's owner (the kernel had none for the server's socket yet; cause not found, see the stop-27 note).
      // Counted and bounded here, never a wrong pid.
      if (!r.peer_pid) {
        peer_unknown++;
        continue;
      }
      EXPECT_EQ(*r.peer_pid, server_pid);
    } else {
      // The server's side: its peer is the short-lived client, named even though it has exited.
      ASSERT_TRUE(r.peer_pid.has_value()) << "no peer for server close from port " << e.dport;
      EXPECT_TRUE(is_client_of(e.dport, *r.peer_pid)) << "peer " << *r.peer_pid << " port " << e.dport;
      ASSERT_TRUE(r.peer) << "peer of server close from port " << e.dport << " unknown";
      EXPECT_EQ(r.peer->service, "hs_peer");
      ASSERT_TRUE(r.owner);
      EXPECT_EQ(r.owner->pid, server_pid);
    }
  }
  EXPECT_EQ(unknown, 0) << "connections of short-lived processes without identity";
  EXPECT_LE(peer_unknown, kProcs / 100) << "client closes without the server as their peer";
  auto s = stack.table().stats();
  EXPECT_LE(s.max_size, s.capacity);
  EXPECT_GT(s.evicted_exited, 0u);  // the bound was reached and held
  EXPECT_GE(s.exec_events, size_t(kProcs));
  EXPECT_EQ(stack.proc_tracer().counters().ringbuf_dropped, 0u);
}

// ---- hostscope services vs go version -m ----

std::map<std::string, std::string> go_version_m(const fs::path& bin) {
  // "\tpath\tP", "\tmod\tM\tV\t...", "\tbuild\tK=V"; the first line is "<file>: go1.x".
  std::map<std::string, std::string> m;
  auto r = sh("go version -m " + bin.string());
  std::istringstream in(r.out);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (first) {
      m["go"] = trim(line.substr(line.rfind(' ') + 1));
      first = false;
      continue;
    }
    std::vector<std::string> f;
    std::istringstream ls(line);
    for (std::string x; std::getline(ls, x, '\t');)
      if (!x.empty()) f.push_back(x);
    if (f.size() >= 2 && f[0] == "path") m["path"] = f[1];
    if (f.size() >= 3 && f[0] == "mod") {
      m["mod"] = f[1];
      m["mod_version"] = f[2];
    }
    if (f.size() >= 2 && f[0] == "build") {
      auto eq = f[1].find('=');
      m[f[1].substr(0, eq)] = f[1].substr(eq + 1);
    }
  }
  return m;
}

TEST(Services, JsonMatchesGoVersionM) {
  HS_REQUIRE_ROOT();
  HS_REQUIRE_GO();
  Proc svc({go.vcs.string()});
  auto l1 = svc.line();
  ASSERT_TRUE(l1 && l1->rfind("PID ", 0) == 0);
  auto want = go_version_m(go.vcs);
  ASSERT_TRUE(want.count("vcs.revision")) << "no VCS stamp in the test build";

  auto r = sh("(" + hostscope_bin() + " services -o json 2>/dev/null)");
  ASSERT_EQ(r.status, 0) << r.out;
  auto all = nlohmann::json::parse(r.out);
  nlohmann::json mine;
  for (auto& p : all)
    if (p["pid"] == svc.pid()) mine = p;
  ASSERT_TRUE(mine.is_object()) << "pid " << svc.pid() << " not listed";
  EXPECT_EQ(mine["comm"], "goid-vcs");
  EXPECT_EQ(mine["exe"], fs::canonical(go.vcs).string());
  EXPECT_EQ(mine["service"], "example.com/hostscope/goid");
  for (const char* k : {"cgroup", "unit", "container_id", "pod", "namespace", "container"})
    EXPECT_TRUE(mine.contains(k)) << k;
  ASSERT_TRUE(mine.contains("go"));
  const auto& g = mine["go"];
  EXPECT_EQ(g["version"], want["go"]);
  EXPECT_EQ(g["path"], want["path"]);
  EXPECT_EQ(g["module"], want["mod"]);
  EXPECT_EQ(g["module_version"], want["mod_version"]);
  EXPECT_EQ(g["vcs_revision"], want["vcs.revision"]);
  EXPECT_EQ(g["vcs_time"], want["vcs.time"]);
  EXPECT_EQ(g["vcs_modified"], want["vcs.modified"] == "true");
  EXPECT_EQ(g["goid_offset"], 152);  // go1.19 amd64, from DWARF

  // Non-Go processes carry no "go" object.
  for (auto& p : all) {
    if (p["pid"] == getpid()) {
      EXPECT_FALSE(p.contains("go"));
    }
  }
}

// Issue 15: an unprivileged user's copy of /bin/sleep whose header claims a 4.29 GB section header table
// (sparse, 44 KB on disk) took `hostscope services` to 27 s and 4.2 GB. It must cost no more than a normal
// scan: the whole run stays under 64 MiB peak RSS (about 14 MB without the bomb) and lists the process.
TEST(Services, SectionHeaderBombCostsAFewMegabytes) {
  HS_REQUIRE_ROOT();
  TempDir dir;
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                fs::perms::others_read | fs::perms::others_exec);
  const fs::path bomb = make_section_header_bomb(dir.path);
  const pid_t victim = fork();
  if (victim == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(126);  // nobody
    execl(bomb.c_str(), "sleep-shbomb", "120", nullptr);
    _exit(127);
  }
  ASSERT_GT(victim, 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reap{victim};
  // Until the kernel shows the bomb as the process's executable (the exec has happened).
  ASSERT_TRUE(eventually([&] {
    std::error_code ec;
    return fs::read_symlink("/proc/" + std::to_string(victim) + "/exe", ec) == bomb;
  })) << "the crafted sleep did not start";

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t cli = fork();
  if (cli == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execlp(hostscope_bin().c_str(), "hostscope", "services", "-o", "json", nullptr);
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;) text.append(buf, size_t(n));
  close(out[0]);
  int status = 0;
  struct rusage ru {};
  ASSERT_EQ(wait4(cli, &status, 0, &ru), cli);
  std::printf("hostscope services with the section header bomb running: exit %d, peak RSS %ld kB, %.3f s CPU\n",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1, ru.ru_maxrss,
              double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << text.substr(0, 2000);
  EXPECT_LT(ru.ru_maxrss, 64 * 1024);
  nlohmann::json mine;
  for (auto& p : nlohmann::json::parse(text))
    if (p["pid"] == victim) mine = p;
  ASSERT_TRUE(mine.is_object()) << "pid " << victim << " not listed";
  EXPECT_EQ(mine["exe"], bomb.string());
  EXPECT_FALSE(mine.contains("go"));
}

// ---- Kubernetes pod on a fake node ----

TEST(Kubernetes, PodProcessIsNamedNamespaceWorkload) {
  HS_REQUIRE_ROOT();
  const fs::path cg_root = "/sys/fs/cgroup/unified";
  HS_REQUIRE_SETUP(fs::exists(cg_root / "cgroup.procs"), cg_root.string() + " is not a cgroup2 mount");
  const std::string pod = "web-7d4b9c8f6d-x2x4z", ns = "shop", container = "app";
  FakePod fake(ns, pod, container, uint64_t(getpid()));
  const std::string uid = fake.uid(), cid = fake.container_id();
  const fs::path node = fake.kubelet_root();

  identity::ProcessTableOptions po;
  po.kube = identity::KubeMetaOptions{};
  po.kube->roots = {node / "var/log/containers", node / "var/log/pods"};
  po.kube->min_rescan_interval = std::chrono::milliseconds(0);
  HS_START_STACK(stack, po);

  const fs::path leaf = fake.leaf(cg_root);
  ASSERT_TRUE(fake.make_cgroup(cg_root)) << "mkdir " << leaf << ": " << strerror(errno);

  {
    Proc server({peer_bin(), "server", "127.0.0.1", "0", "8", "3"});  // stays up after the two below
    auto ready = server.line();
    ASSERT_TRUE(ready && ready->rfind("READY ", 0) == 0);
    const int sport = std::stoi(ready->substr(6));
    const uint32_t spid = uint32_t(server.pid());
    ASSERT_TRUE(fake.join(cg_root, pid_t(spid))) << "moving " << spid << " into " << leaf;
    // First connection: the kernel reports the server in the pod's cgroup, which the table does not know yet;
    // the resolver has /proc read again, so the identity follows the move without an exec.
    auto c1 = sh(peer_bin() + " client 127.0.0.1 " + std::to_string(sport) + " 8");
    ASSERT_EQ(c1.status, 0) << c1.out;
    ASSERT_TRUE(eventually([&] {
      auto p = stack.table().lookup(spid);
      return p && p->pod == pod;
    })) << "the moved process never got its pod";
    auto p = stack.table().lookup(spid);
    EXPECT_EQ(p->k8s_namespace, ns);
    EXPECT_EQ(p->container, container);
    EXPECT_EQ(p->container_id, cid);
    EXPECT_EQ(p->pod_uid, uid);
    EXPECT_EQ(p->workload, "web");
    EXPECT_EQ(p->service, "shop/web");
    EXPECT_EQ(p->service_source, identity::ServiceSource::kubernetes);

    auto c2 = sh(peer_bin() + " client 127.0.0.1 " + std::to_string(sport) + " 8");
    ASSERT_EQ(c2.status, 0) << c2.out;
    int cport = std::stoi(c2.out.substr(c2.out.find("LOCAL ") + 6));
    auto srv = stack.wait_for(1, [&](const ConnectionEvent& e) {
      return e.kind == Kind::Close && e.sport == sport && e.dport == cport;
    });
    auto cli = stack.wait_for(1, [&](const ConnectionEvent& e) {
      return e.kind == Kind::Close && e.sport == cport && e.dport == sport;
    });
    ASSERT_EQ(srv.size(), 1u);
    ASSERT_EQ(cli.size(), 1u);
    ASSERT_TRUE(srv[0].r.owner);
    EXPECT_EQ(srv[0].r.owner->service, "shop/web");
    EXPECT_EQ(srv[0].r.owner->pod, pod);
    EXPECT_EQ(cli[0].r.peer_pid, spid);
    ASSERT_TRUE(cli[0].r.peer);
    EXPECT_EQ(cli[0].r.peer->service, "shop/web");

    // The CLI reads the same tree.
    auto r = sh("(" + hostscope_bin() + " services -o json --pid " + std::to_string(spid) + " --kubelet-root " +
                node.string() + " 2>/dev/null)");
    ASSERT_EQ(r.status, 0) << r.out;
    auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["pod"], pod);
    EXPECT_EQ(j[0]["namespace"], ns);
    EXPECT_EQ(j[0]["container"], container);
    EXPECT_EQ(j[0]["container_id"], cid);
    EXPECT_EQ(j[0]["service"], "shop/web");
    EXPECT_EQ(j[0]["cgroup"], "/" + fs::relative(leaf, cg_root).string());
  }  // the server is killed and reaped here, so the cgroups can be removed
}

}  // namespace
