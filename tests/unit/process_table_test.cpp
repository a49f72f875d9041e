// Unit tests of identity::ProcessTable on a fake /proc with an injected clock.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "agent/identity/process_table.h"

using namespace hostscope::identity;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return now; };
  }
};

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-proctable-XXXXXX").string();
    path = mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << s;
}

const uint64_t kTick = 1'000'000'000ull / uint64_t(sysconf(_SC_CLK_TCK));

// A /proc/PID directory as the kernel lays it out (the fields the table reads).
void fake_proc(const fs::path& root, uint32_t pid, uint32_t ppid, const std::string& comm, const fs::path& exe,
               const std::string& cmdline, const std::string& cgroup, uint64_t start_ticks, char state = 'S') {
  fs::path d = root / std::to_string(pid);
  fs::create_directories(d);
  write(d / "stat", std::to_string(pid) + " (" + comm + ") " + state + " " + std::to_string(ppid) +
                        " 100 100 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 " + std::to_string(start_ticks) + " 0 0\n");
  write(d / "status", "Name:\t" + comm + "\nTgid:\t" + std::to_string(pid) + "\nUid:\t1234\t1234\t1234\t1234\n");
  write(d / "cmdline", cmdline);
  write(d / "cgroup", cgroup);
  fs::remove(d / "exe");
  fs::create_symlink(exe, d / "exe");
}

ProcessEvent exec_ev(uint32_t pid, std::string_view filename, uint64_t start_ns, std::string_view comm = "prog") {
  ProcessEvent e;
  e.kind = ProcessEvent::Kind::exec;
  e.pid = pid;
  e.ppid = 1;
  e.start_boottime_ns = start_ns;
  e.filename = filename;
  e.comm = comm;
  e.args = std::string_view("prog\0--flag\0", 12);
  return e;
}
ProcessEvent fork_ev(uint32_t pid, uint32_t ppid, uint64_t start_ns) {
  ProcessEvent e;
  e.kind = ProcessEvent::Kind::fork;
  e.pid = pid;
  e.ppid = ppid;
  e.start_boottime_ns = start_ns;
  return e;
}
ProcessEvent exit_ev(uint32_t pid, uint64_t start_ns) {
  ProcessEvent e;
  e.kind = ProcessEvent::Kind::exit;
  e.pid = pid;
  e.start_boottime_ns = start_ns;
  return e;
}

// Go parser stand-in: files whose content starts with "GO" are Go binaries with known offsets.
GoBinaryIdentity fake_go_parser(int fd, const std::string&) {
  char buf[2] = {};
  GoBinaryIdentity g;
  if (pread(fd, buf, 2, 0) == 2 && buf[0] == 'G' && buf[1] == 'O') {
    GoBuildInfo bi;
    bi.go_version = "go1.19.8";
    bi.path = "example.com/svc/cmd/svc";
    bi.main.path = "example.com/svc";
    bi.main.version = "(devel)";
    bi.settings = {{"vcs.revision", "abc123"}, {"vcs.modified", "true"}, {"GOOS", "linux"}};
    g.build_info = bi;
    g.offsets = GoOffsets{-8, 152, "test"};
  } else {
    g.build_error_kind = GoErrorKind::kNotGo;
  }
  return g;
}

struct Fixture : ::testing::Test {
  TempDir dir;
  FakeClock clock;
  fs::path proc = dir.path / "proc";
  fs::path go_bin = dir.path / "gosvc", c_bin = dir.path / "cprog";
  std::map<uint32_t, GoOffsets> go_map;  // what the kernel map would hold
  int go_adds = 0, go_removes = 0;

  void SetUp() override {
    fs::create_directories(proc);
    write(go_bin, "GO binary");
    write(c_bin, "ELF binary");
  }
  ProcessTableOptions opts(size_t cap = 100) {
    ProcessTableOptions o;
    o.capacity = cap;
    o.exit_grace = 5s;
    o.proc_root = proc;
    o.cgroup2_root = dir.path / "no-cgroup2";
    o.clock = clock.fn();
    o.go_parser = fake_go_parser;
    o.go_add = [this](uint32_t pid, const GoOffsets& off) {
      go_map[pid] = off;
      go_adds++;
      return hostscope::Status{};
    };
    o.go_remove = [this](uint32_t pid) {
      go_map.erase(pid);
      go_removes++;
    };
    return o;
  }
};

TEST(ProcStat, ParsesCommWithSpacesAndParens) {
  auto st = parse_proc_stat("42 (a (b) c) R 7 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0\n");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->comm, "a (b) c");
  EXPECT_EQ(st->state, 'R');
  EXPECT_EQ(st->ppid, 7u);
  EXPECT_EQ(st->start_ticks, 999u);
  EXPECT_FALSE(parse_proc_stat("42 (x) R 7"));
  EXPECT_FALSE(parse_proc_stat("garbage"));
  EXPECT_FALSE(parse_proc_stat(""));
}

TEST(Cmdline, JoinsAndTruncates) {
  bool t = false;
  EXPECT_EQ(join_cmdline(std::string_view("a\0bb\0c\0", 7), 100, &t), "a bb c");
  EXPECT_FALSE(t);
  EXPECT_EQ(join_cmdline(std::string_view("abcdef\0", 7), 3, &t), "abc");
  EXPECT_TRUE(t);
}

TEST_F(Fixture, RefreshReadsProcAndDecidesService) {
  fake_proc(proc, 100, 1, "nginx", c_bin, std::string("nginx\0-g\0daemon off;\0", 22),
            "0::/system.slice/nginx.service\n", 5000);
  ProcessTable t(opts());
  auto r = t.refresh(100);
  ASSERT_TRUE(r) << r.error().str();
  const auto& p = **r;
  EXPECT_EQ(p.pid, 100u);
  EXPECT_EQ(p.ppid, 1u);
  EXPECT_EQ(p.uid, 1234u);
  EXPECT_EQ(p.comm, "nginx");
  EXPECT_EQ(p.exe, c_bin.string());
  EXPECT_EQ(p.cmdline, "nginx -g daemon off;");
  EXPECT_EQ(p.start_boottime_ns, 5000 * kTick);
  EXPECT_EQ(p.cgroup, "/system.slice/nginx.service");
  EXPECT_EQ(p.systemd_unit, "nginx.service");
  EXPECT_EQ(p.service, "nginx");
  EXPECT_EQ(p.service_source, ServiceSource::systemd);
  EXPECT_FALSE(p.go);
  EXPECT_TRUE(p.proc_read);
  EXPECT_EQ(go_adds, 0);  // never for non-Go processes
}

TEST_F(Fixture, ScanFindsEveryProcessAndSkipsZombies) {
  fake_proc(proc, 10, 1, "a", c_bin, "a", "0::/\n", 1);
  fake_proc(proc, 11, 1, "b", c_bin, "b", "0::/\n", 2);
  fake_proc(proc, 12, 1, "z", c_bin, "z", "0::/\n", 3, 'Z');
  write(proc / "self" / "x", "");  // not a pid
  ProcessTable t(opts());
  EXPECT_EQ(t.scan_proc(), 2u);
  EXPECT_TRUE(t.lookup(10));
  EXPECT_TRUE(t.lookup(11));
  EXPECT_FALSE(t.lookup(12));
}

TEST_F(Fixture, ExecEventIdentifiesAProcessThatIsAlreadyGone) {
  ProcessTable t(opts());
  t.apply(exec_ev(200, "/usr/local/bin/worker", 77 * kTick, "worker"));
  auto p = t.lookup(200);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->exe, "/usr/local/bin/worker");
  EXPECT_EQ(p->comm, "worker");
  EXPECT_EQ(p->cmdline, "prog --flag");
  EXPECT_EQ(p->service, "worker");
  EXPECT_EQ(p->service_source, ServiceSource::exe);
  EXPECT_EQ(p->origin, IdentityOrigin::exec);
  EXPECT_EQ(t.run_pending(), 1u);  // /proc/200 does not exist: the event facts stay
  EXPECT_EQ(t.stats().proc_read_failures, 1u);
  EXPECT_EQ(t.lookup(200)->exe, "/usr/local/bin/worker");
}

TEST_F(Fixture, ExecThenProcReadKeepsExecCommAndConfirmsExe) {
  fake_proc(proc, 300, 1, "renamed-thread", c_bin, "cprog", "0::/\n", 9);
  ProcessTable t(opts());
  t.apply(exec_ev(300, "./cprog", 9 * kTick, "cprog"));
  t.run_pending();
  auto p = t.lookup(300);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->proc_read);
  EXPECT_EQ(p->exe, c_bin.string());  // canonical path from /proc instead of execve's relative one
  EXPECT_EQ(p->comm, "cprog");
}

TEST_F(Fixture, ProcOfAReusedPidIsNotMixedIn) {
  fake_proc(proc, 400, 1, "other", c_bin, "other", "0::/\n", 50);  // a newer process holds pid 400
  ProcessTable t(opts());
  t.apply(exec_ev(400, "/bin/old", 10 * kTick, "old"));
  t.run_pending();
  EXPECT_EQ(t.lookup(400)->exe, "/bin/old");
  EXPECT_FALSE(t.lookup(400)->proc_read);
}

TEST_F(Fixture, ExitedProcessResolvesDuringGraceThenExpires) {
  ProcessTable t(opts());
  t.apply(exec_ev(500, "/bin/a", 1 * kTick));
  t.apply(exit_ev(500, 1 * kTick));
  EXPECT_FALSE(t.is_live(500));
  EXPECT_TRUE(t.lookup(500));
  EXPECT_TRUE(t.snapshot().empty());
  EXPECT_EQ(t.snapshot(true).size(), 1u);
  clock.now += 4s;
  t.expire();
  EXPECT_TRUE(t.lookup(500));
  clock.now += 2s;
  t.expire();
  EXPECT_FALSE(t.lookup(500));
  EXPECT_EQ(t.stats().expired, 1u);
  EXPECT_EQ(t.stats().size, 0u);
}

TEST_F(Fixture, ExitOfAnOlderProcessWithTheSamePidIsIgnored) {
  ProcessTable t(opts());
  t.apply(exec_ev(600, "/bin/new", 20 * kTick));
  t.apply(exit_ev(600, 3 * kTick));
  EXPECT_TRUE(t.is_live(600));
}

TEST_F(Fixture, CapacityEvictsExitedBeforeLiveAndOldestFirst) {
  ProcessTable t(opts(4));
  for (uint32_t pid = 1; pid <= 4; pid++) t.apply(exec_ev(pid, "/bin/p", pid * kTick));
  t.apply(exit_ev(3, 3 * kTick));
  t.apply(exec_ev(5, "/bin/p", 5 * kTick));  // full: the exited pid 3 goes, not the oldest live one
  EXPECT_FALSE(t.lookup(3));
  EXPECT_TRUE(t.lookup(1));
  EXPECT_EQ(t.stats().evicted_exited, 1u);
  t.apply(exec_ev(6, "/bin/p", 6 * kTick));  // no exited entry: the oldest live one (pid 1) goes
  EXPECT_FALSE(t.lookup(1));
  EXPECT_TRUE(t.lookup(2));
  EXPECT_EQ(t.stats().evicted_live, 1u);
  for (uint32_t pid = 100; pid < 1100; pid++) t.apply(exec_ev(pid, "/bin/p", pid * kTick));
  auto s = t.stats();
  EXPECT_EQ(s.size, 4u);
  EXPECT_EQ(s.max_size, 4u);
  EXPECT_EQ(s.evicted_live, 1001u);
  EXPECT_TRUE(t.lookup(1099));
}

TEST_F(Fixture, ForkCopiesTheParentAndThreadsAreSkipped) {
  fake_proc(proc, 700, 1, "srv", c_bin, "srv", "0::/system.slice/srv.service\n", 5);
  ProcessTable t(opts());
  ASSERT_TRUE(t.refresh(700));
  ProcessEvent f = fork_ev(701, 700, 6 * kTick);
  t.apply(f);
  auto c = t.lookup(701);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ppid, 700u);
  EXPECT_EQ(c->service, "srv");
  EXPECT_EQ(c->systemd_unit, "srv.service");
  EXPECT_EQ(c->origin, IdentityOrigin::fork);

  // Classic tracepoint fork of a thread: /proc says its Tgid is another pid.
  fs::create_directories(proc / "702");
  write(proc / "702" / "status", "Name:\tsrv\nTgid:\t700\n");
  ProcessEvent th = f;
  th.pid = 702;
  th.maybe_thread = true;
  t.apply(th);
  t.run_pending();
  EXPECT_FALSE(t.lookup(702));
  EXPECT_EQ(t.stats().threads_skipped, 1u);
}

TEST_F(Fixture, GoOffsetsArePushedForGoProcessesAndRemovedOnExit) {
  fake_proc(proc, 800, 1, "gosvc", go_bin, "gosvc", "0::/\n", 8);
  fake_proc(proc, 801, 1, "gosvc", go_bin, "gosvc", "0::/\n", 9);  // same binary: parsed once
  fake_proc(proc, 802, 1, "cprog", c_bin, "cprog", "0::/\n", 9);
  ProcessTable t(opts());
  t.scan_proc();
  auto p = t.lookup(800);
  ASSERT_TRUE(p && p->go);
  EXPECT_EQ(p->go->module, "example.com/svc");
  EXPECT_EQ(p->go->path, "example.com/svc/cmd/svc");
  EXPECT_EQ(p->go->vcs_revision, "abc123");
  EXPECT_EQ(p->go->vcs_modified, true);
  EXPECT_EQ(p->service, "example.com/svc");
  EXPECT_EQ(p->service_source, ServiceSource::go);
  EXPECT_EQ(go_adds, 2);
  ASSERT_EQ(go_map.size(), 2u);
  EXPECT_EQ(go_map[800].goid_offset, 152u);
  EXPECT_FALSE(go_map.count(802));
  EXPECT_EQ(t.go_cache().stats().misses, 2u);  // two binaries, three processes

  t.apply(exit_ev(800, 8 * kTick));
  t.apply(exit_ev(802, 9 * kTick));
  t.run_pending();
  EXPECT_EQ(go_removes, 1);  // only the Go process that was added
  EXPECT_FALSE(go_map.count(800));
  EXPECT_TRUE(go_map.count(801));

  // A Go process pushed out by the capacity bound leaves the kernel map too.
  ProcessTable small(opts(1));
  go_map.clear();
  ASSERT_TRUE(small.refresh(801));
  EXPECT_TRUE(go_map.count(801));
  small.apply(exec_ev(900, "/bin/p", 1));
  small.run_pending();
  EXPECT_FALSE(go_map.count(801));
}

// What topology edge ends show of a process (workload, Go main module) is one shared object: made when the pair is
// first decided, kept by re-reads while it does not change and shared with forked children, so the per-event
// endpoints carry a pointer (docs/topology.md, "Workload and Go module in memory").
TEST_F(Fixture, EndIdentityIsSharedByForksAndKeptByRereads) {
  fake_proc(proc, 800, 1, "gosvc", go_bin, "gosvc", "0::/\n", 8);
  fake_proc(proc, 802, 1, "cprog", c_bin, "cprog", "0::/\n", 9);
  ProcessTable t(opts());
  t.scan_proc();
  auto p = t.lookup(800);
  ASSERT_TRUE(p && p->end_identity);
  EXPECT_EQ(p->end_identity->workload, "");  // not in a pod
  EXPECT_EQ(p->end_identity->go_module, "example.com/svc");  // a "(devel)" build: the path alone
  auto c = t.lookup(802);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->end_identity) << "neither a workload nor a Go module";

  auto again = t.refresh(800);
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_NE(again->get(), p.get()) << "a re-read is a new snapshot";
  EXPECT_EQ((*again)->end_identity, p->end_identity) << "with the same pair object";

  t.apply(fork_ev(803, 800, 10 * kTick));
  auto child = t.lookup(803);
  ASSERT_TRUE(child);
  EXPECT_EQ(child->end_identity, p->end_identity);
}

TEST_F(Fixture, SweepFindsProcessesThatExitedWithoutAnEvent) {
  fake_proc(proc, 1000, 1, "a", c_bin, "a", "0::/\n", 1);
  fake_proc(proc, 1001, 1, "b", c_bin, "b", "0::/\n", 1);
  ProcessTable t(opts());
  t.scan_proc();
  fs::remove_all(proc / "1000");
  fake_proc(proc, 1001, 1, "b2", c_bin, "b2", "0::/\n", 77);  // pid reused by a newer process
  EXPECT_EQ(t.sweep(), 2u);
  EXPECT_FALSE(t.is_live(1000));
  EXPECT_FALSE(t.is_live(1001));
  EXPECT_EQ(t.stats().swept, 2u);
}

TEST_F(Fixture, PendingWorkIsBounded) {
  auto o = opts();
  o.max_pending = 3;
  ProcessTable t(o);
  for (uint32_t pid = 1; pid <= 10; pid++) t.apply(exec_ev(pid, "/bin/p", pid));
  auto s = t.stats();
  EXPECT_EQ(s.pending, 3u);
  EXPECT_EQ(s.pending_dropped, 7u);
}

// The main module as topology edges and the history keep it (docs/topology.md): "path@version".
TEST(GoMainModule, IsPathAtVersion) {
  auto go = [](std::string module, std::string version) {
    GoProcessInfo g;
    g.version = "go1.22.1";
    g.path = module + "/cmd/server";
    g.module = std::move(module);
    g.module_version = std::move(version);
    return g;
  };
  EXPECT_EQ(go_main_module(go("github.com/acme/cart", "v1.4.2")), "github.com/acme/cart@v1.4.2");
  EXPECT_EQ(go_main_module(go("github.com/acme/cart", "v0.0.0-20240501120000-abcdef123456")),
            "github.com/acme/cart@v0.0.0-20240501120000-abcdef123456");
  // A local build's "(devel)" says nothing a version would; an unknown version is left out.
  EXPECT_EQ(go_main_module(go("github.com/acme/cart", "(devel)")), "github.com/acme/cart");
  EXPECT_EQ(go_main_module(go("github.com/acme/cart", "")), "github.com/acme/cart");
  // Built outside module mode: no main module, only a package path.
  auto gopath = go("", "");
  gopath.path = "command-line-arguments";
  EXPECT_EQ(go_main_module(gopath), "");
}

}  // namespace
