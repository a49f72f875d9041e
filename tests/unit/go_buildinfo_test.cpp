// Go binary identity: build info, runtime offsets and the identity cache, checked against the Go
// toolchain (`go version -m`, the program's own debug.ReadBuildInfo) and against a running process.
#include "agent/identity/go_buildinfo.h"

#include <elf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "agent/identity/go_cache.h"
#include "agent/identity/go_offsets.h"
#include "support/hostile_elf.h"
#include "support/privileged.h"

namespace fs = std::filesystem;
using namespace hostscope::identity;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "hs-goid-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

struct CmdResult {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout and stderr.
CmdResult run(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  r.status = ::pclose(p);
  return r;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<uint8_t> read_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Offset of the build info header magic in an image, or the image size.
size_t find_magic(const std::vector<uint8_t>& img) {
  const void* at = ::memmem(img.data(), img.size(), "\xff Go buildinf:", 14);
  return at ? static_cast<const uint8_t*>(at) - img.data() : img.size();
}

// `go version -m FILE` turned into the text of debug.BuildInfo.String() (go line first, no indent).
std::string go_version_m(const fs::path& bin) {
  auto r = run("go version -m " + bin.string());
  if (r.status != 0) return "ERROR: " + r.out;
  std::istringstream in(r.out);
  std::string line, out;
  bool first = true;
  while (std::getline(in, line)) {
    if (first) {
      // "<file>: go1.19.8"
      const size_t colon = line.rfind(": ");
      out += "go\t" + line.substr(colon + 2) + "\n";
      first = false;
      continue;
    }
    if (!line.empty() && line[0] == '\t') line.erase(0, 1);
    out += line + "\n";
  }
  return out;
}

// Line-by-line comparison so a failure names the field that differs.
void expect_same_lines(const std::string& want, const std::string& got) {
  std::istringstream a(want), b(got);
  std::string la, lb;
  int n = 0;
  while (true) {
    const bool ha = static_cast<bool>(std::getline(a, la));
    const bool hb = static_cast<bool>(std::getline(b, lb));
    if (!ha && !hb) break;
    n++;
    EXPECT_EQ(ha ? la : "<missing>", hb ? lb : "<missing>") << "line " << n;
  }
}

// The Go binaries every test reads, built once per test run.
struct GoBuilds {
  bool ok = false;
  std::string why;
  TempDir dir;
  fs::path plain, stripped, pie, cgo, cgo_stripped, vcs_clean, vcs_dirty;
  std::string vcs_revision;
  std::string go_version;  // of the installed toolchain
};

GoBuilds* g_builds = nullptr;

// Caches live inside the suite's temp dir so the run leaves nothing behind; nothing is fetched
// (GOPROXY=off, the programs have no dependencies).
std::string go_env() {
  const std::string d = g_builds->dir.path.string();
  return "GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GO111MODULE=on GOCACHE=" + d +
         "/gocache GOPATH=" + d + "/gopath ";
}

void build_all(GoBuilds& b) {
  if (run("command -v go").status != 0) {
    b.why = "the go toolchain is not installed";
    return;
  }
  const char* src_env = std::getenv("HOSTSCOPE_SRC");
  const fs::path src =
      src_env ? fs::path(src_env) : fs::path(__FILE__).parent_path().parent_path().parent_path();
  const fs::path hello = src / "tests/go/hello", cgohello = src / "tests/go/cgohello";
  if (!fs::exists(hello / "main.go")) {
    b.why = "tests/go/hello not found (set HOSTSCOPE_SRC)";
    return;
  }
  b.go_version = trim(run("go env GOVERSION").out);
  const fs::path d = b.dir.path;
  // Copies outside the repository, so the repository's own git state never leaks into vcs.* settings.
  fs::copy(hello, d / "hello", fs::copy_options::recursive);
  fs::copy(cgohello, d / "cgohello", fs::copy_options::recursive);
  fs::copy(hello, d / "vcs", fs::copy_options::recursive);
  struct Step {
    fs::path* out;
    std::string name, dir, env, flags;
  };
  b.plain = d / "plain";
  b.stripped = d / "stripped";
  b.pie = d / "pie";
  b.cgo = d / "cgo";
  b.cgo_stripped = d / "cgo-stripped";
  const std::vector<Step> steps = {
      {&b.plain, "plain", "hello", "CGO_ENABLED=0", "-buildvcs=false"},
      {&b.stripped, "stripped", "hello", "CGO_ENABLED=0", "-buildvcs=false -ldflags='-s -w'"},
      {&b.pie, "pie", "hello", "CGO_ENABLED=1", "-buildvcs=false -buildmode=pie"},
      {&b.cgo, "cgo", "cgohello", "CGO_ENABLED=1", "-buildvcs=false"},
      {&b.cgo_stripped, "cgo-stripped", "cgohello", "CGO_ENABLED=1", "-buildvcs=false -ldflags='-s -w'"},
  };
  for (const auto& s : steps) {
    auto r = run("cd " + (d / s.dir).string() + " && " + go_env() + s.env + " go build " + s.flags + " -o " +
                 s.out->string() + " .");
    if (r.status != 0) {
      b.why = "go build " + s.name + " failed: " + r.out;
      return;
    }
  }
  // VCS stamping needs a repository with a commit; a modified file then sets vcs.modified=true.
  const std::string vcs = "cd " + (d / "vcs").string() + " && ";
  auto r = run(vcs + "git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -q -m init");
  if (r.status != 0) {
    b.why = "git commit failed: " + r.out;
    return;
  }
  b.vcs_revision = trim(run(vcs + "git rev-parse HEAD").out);
  b.vcs_clean = d / "vcs-clean";
  b.vcs_dirty = d / "vcs-dirty";
  r = run(vcs + go_env() + "CGO_ENABLED=0 go build -o " + b.vcs_clean.string() + " .");
  if (r.status != 0) {
    b.why = "go build vcs-clean failed: " + r.out;
    return;
  }
  run(vcs + "echo '// edited' >> main.go");
  r = run(vcs + go_env() + "CGO_ENABLED=0 go build -o " + b.vcs_dirty.string() + " .");
  if (r.status != 0) {
    b.why = "go build vcs-dirty failed: " + r.out;
    return;
  }
  b.ok = true;
}

class GoBinaries : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (g_builds == nullptr) {
      g_builds = new GoBuilds();
      build_all(*g_builds);
    }
  }
  static void TearDownTestSuite() {
    delete g_builds;  // removes the temp dir with the binaries and the Go caches
    g_builds = nullptr;
  }
  void SetUp() override {
    HS_REQUIRE_SETUP(g_builds->ok, "building the Go test binaries: " + g_builds->why);
  }
  const GoBuilds& b() const { return *g_builds; }
};

GoBuildInfo must_read(const fs::path& p) {
  GoErrorKind kind = GoErrorKind::kIo;
  auto r = read_go_build_info(p.string(), &kind);
  if (!r) {
    ADD_FAILURE() << r.error().str();
    return {};
  }
  EXPECT_EQ(kind, GoErrorKind::kNone);
  return *r;
}

// Every field, against `go version -m` and against the program's own view of itself.
void expect_matches_go(const fs::path& bin, bool can_run) {
  SCOPED_TRACE(bin.string());
  const GoBuildInfo bi = must_read(bin);
  expect_same_lines(go_version_m(bin), bi.to_string());
  if (can_run) expect_same_lines(run(bin.string() + " buildinfo").out, bi.to_string());
}

const std::string& setting(const GoBuildInfo& bi, std::string_view key) {
  static const std::string kMissing = "<missing>";
  const std::string* v = bi.setting(key);
  return v ? *v : kMissing;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_F(GoBinaries, PlainStaticBuildMatchesGoVersionM) {
  expect_matches_go(b().plain, true);
  const GoBuildInfo bi = must_read(b().plain);
  EXPECT_EQ(bi.go_version, b().go_version);
  EXPECT_EQ(bi.path, "example.com/hostscope/hello");
  EXPECT_EQ(bi.main.path, "example.com/hostscope/hello");
  EXPECT_EQ(bi.main.version, "(devel)");
  EXPECT_EQ(setting(bi, "CGO_ENABLED"), "0");
  EXPECT_EQ(setting(bi, "GOOS"), "linux");
  EXPECT_EQ(setting(bi, "GOARCH"), trim(run("go env GOARCH").out));
  EXPECT_EQ(bi.setting("vcs"), nullptr);
  EXPECT_EQ(bi.source, GoBuildInfoSource::kSection);
  EXPECT_TRUE(bi.inline_strings);
  EXPECT_EQ(bi.ptr_size, 8);
  EXPECT_EQ(bi.elf_machine, EM_X86_64);
}

TEST_F(GoBinaries, StrippedBuildMatchesAndKeepsLdflags) {
  expect_matches_go(b().stripped, true);
  const GoBuildInfo bi = must_read(b().stripped);
  EXPECT_EQ(setting(bi, "-ldflags"), "-s -w");  // quoted in the file, unquoted here
  EXPECT_NE(bi.to_string().find("build\t-ldflags=\"-s -w\"\n"), std::string::npos);
}

TEST_F(GoBinaries, PieBuildMatches) {
  expect_matches_go(b().pie, true);
  // go1.20+ records -buildmode; older toolchains leave it out.
  if (const std::string* mode = must_read(b().pie).setting("-buildmode")) {
    EXPECT_EQ(*mode, "pie");
  }
  const auto img = read_bytes(b().pie);
  EXPECT_EQ(reinterpret_cast<const Elf64_Ehdr*>(img.data())->e_type, ET_DYN);
  EXPECT_EQ(setting(must_read(b().pie), "CGO_ENABLED"), "1");
}

TEST_F(GoBinaries, CgoBuildsMatch) {
  expect_matches_go(b().cgo, false);
  expect_matches_go(b().cgo_stripped, false);
  EXPECT_EQ(must_read(b().cgo).path, "example.com/hostscope/cgohello");
  EXPECT_EQ(setting(must_read(b().cgo), "CGO_ENABLED"), "1");
}

TEST_F(GoBinaries, VcsStampCleanAndDirty) {
  expect_matches_go(b().vcs_clean, true);
  expect_matches_go(b().vcs_dirty, true);
  const GoBuildInfo clean = must_read(b().vcs_clean), dirty = must_read(b().vcs_dirty);
  EXPECT_EQ(setting(clean, "vcs"), "git");
  EXPECT_EQ(setting(clean, "vcs.revision"), b().vcs_revision);
  EXPECT_EQ(setting(clean, "vcs.modified"), "false");
  EXPECT_NE(setting(clean, "vcs.time"), "<missing>");
  EXPECT_EQ(setting(dirty, "vcs.revision"), b().vcs_revision);
  EXPECT_EQ(setting(dirty, "vcs.modified"), "true");
}

TEST_F(GoBinaries, ReadsThroughProcPidExeOfADeletedBinary) {
  TempDir t;
  const fs::path copy = t.path / "gone";
  fs::copy_file(b().plain, copy);
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::close(in[1]);
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::execl(copy.c_str(), copy.c_str(), "block", nullptr);
    ::_exit(127);
  }
  ::close(in[0]);
  // Wait until the new image is in place before unlinking it.
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  for (int i = 0; i < 500 && fs::read_symlink(exe).filename() != "gone"; i++) ::usleep(10000);
  fs::remove(copy);
  auto r = read_go_build_info(exe);
  ::close(in[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->to_string(), must_read(b().plain).to_string());
}

TEST_F(GoBinaries, SectionHeadersStrippedUsesSegmentScan) {
  auto img = read_bytes(b().plain);
  auto* eh = reinterpret_cast<Elf64_Ehdr*>(img.data());
  eh->e_shoff = 0;
  eh->e_shnum = 0;
  eh->e_shstrndx = 0;
  GoErrorKind kind;
  auto r = parse_go_build_info(img, &kind);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->source, GoBuildInfoSource::kSegmentScan);
  EXPECT_EQ(r->to_string(), must_read(b().plain).to_string());
}

TEST_F(GoBinaries, DestroyedHeaderFallsBackToModinfoMarkers) {
  auto img = read_bytes(b().vcs_dirty);
  const size_t at = find_magic(img);
  ASSERT_LT(at, img.size());
  std::fill(img.begin() + at, img.begin() + at + 16, 0);
  auto r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->source, GoBuildInfoSource::kModinfoMarkers);
  EXPECT_EQ(r->to_string(), must_read(b().vcs_dirty).to_string());
  // With the section headers gone too, the same answer comes from the loaded segments alone.
  reinterpret_cast<Elf64_Ehdr*>(img.data())->e_shoff = 0;
  reinterpret_cast<Elf64_Ehdr*>(img.data())->e_shnum = 0;
  r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->to_string(), must_read(b().vcs_dirty).to_string());
}

TEST_F(GoBinaries, NewerGoVersionStringStillParses) {
  auto img = read_bytes(b().stripped);
  const std::string& have = b().go_version;  // e.g. go1.19.8
  // Same length, so the varint prefix stays valid: go1.19.8 -> go1.26.1.
  std::string newer = "go1.26." + std::string(have.size() - 7, '1');
  ASSERT_EQ(newer.size(), have.size());
  const size_t at = find_magic(img);
  ASSERT_LT(at, img.size());
  auto hdr = img.begin() + at;
  auto v = std::search(hdr, hdr + 64, have.begin(), have.end());
  ASSERT_NE(v, hdr + 64);
  std::copy(newer.begin(), newer.end(), v);
  TempDir t;
  const fs::path patched = t.path / "patched";
  write_bytes(patched, img);
  fs::permissions(patched, fs::perms::owner_all);
  const GoBuildInfo bi = must_read(patched);
  EXPECT_EQ(bi.go_version, newer);
  expect_same_lines(go_version_m(patched), bi.to_string());
  auto offs = read_go_offsets(patched.string(), bi);
  ASSERT_TRUE(offs) << offs.error().str();
  EXPECT_EQ(offs->goid_offset, 152u);  // go1.25+ dropped gobuf.ret
  EXPECT_EQ(offs->source, "goid=table:" + newer + " tls=internal-link");
}

TEST_F(GoBinaries, GoidOffsetFromDwarfEqualsTable) {
  for (const auto& bin : {b().plain, b().pie, b().cgo, b().vcs_clean}) {
    SCOPED_TRACE(bin.string());
    auto dw = goid_offset_from_dwarf(bin.string());
    ASSERT_TRUE(dw) << dw.error().str();
    auto table = goid_offset_from_table(b().go_version, EM_X86_64);
    ASSERT_TRUE(table) << table.error().str();
    EXPECT_EQ(*dw, *table);
    auto offs = read_go_offsets(bin.string(), must_read(bin));
    ASSERT_TRUE(offs) << offs.error().str();
    EXPECT_EQ(offs->goid_offset, *dw);
    EXPECT_EQ(offs->source.rfind("goid=dwarf ", 0), 0u) << offs->source;
  }
}

TEST_F(GoBinaries, StrippedBinaryUsesTable) {
  EXPECT_FALSE(goid_offset_from_dwarf(b().stripped.string()));
  auto offs = read_go_offsets(b().stripped.string(), must_read(b().stripped));
  ASSERT_TRUE(offs) << offs.error().str();
  EXPECT_EQ(offs->goid_offset, *goid_offset_from_table(b().go_version, EM_X86_64));
  EXPECT_EQ(offs->source, "goid=table:" + b().go_version + " tls=internal-link");
  EXPECT_EQ(offs->g_tls_offset, -8);
}

TEST_F(GoBinaries, TlsRulePerLinkMode) {
  struct Case {
    fs::path bin;
    std::string tls_source;
  };
  for (const auto& c :
       {Case{b().plain, "internal-link"}, Case{b().pie, "pt_tls"}, Case{b().cgo, "pt_tls+runtime.tlsg"}}) {
    SCOPED_TRACE(c.bin.string());
    auto offs = read_go_offsets(c.bin.string(), must_read(c.bin));
    ASSERT_TRUE(offs) << offs.error().str();
    EXPECT_NE(offs->source.find("tls=" + c.tls_source), std::string::npos) << offs->source;
  }
  // The cgo binary's TLS block also holds a C variable, so stripping symbols leaves it ambiguous.
  auto offs = read_go_offsets(b().cgo_stripped.string(), must_read(b().cgo_stripped));
  EXPECT_FALSE(offs);
}

// The real check of both offsets: stop a running Go process and follow fsbase -> g -> goid on the
// thread that runs the main goroutine (goid 1, blocked in read(0)).
void expect_goid_one_in_running_process(const fs::path& bin) {
  SCOPED_TRACE(bin.string());
  auto offs = read_go_offsets(bin.string(), must_read(bin));
  ASSERT_TRUE(offs) << offs.error().str();
  int in[2], out[2];
  ASSERT_EQ(::pipe(in), 0);
  ASSERT_EQ(::pipe(out), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[1]);
    ::close(out[0]);
    ::execl(bin.c_str(), bin.c_str(), "block", nullptr);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  struct Reaper {
    pid_t pid;
    int fd;
    ~Reaper() {
      ::close(fd);  // EOF on stdin ends the program
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);
    }
  } reaper{pid, in[1]};
  std::string seen;
  char c;
  while (seen.find("ready\n") == std::string::npos && ::read(out[0], &c, 1) == 1) seen.push_back(c);
  ::close(out[0]);
  ASSERT_NE(seen.find("ready\n"), std::string::npos) << seen;
  ::usleep(100000);  // let the main goroutine enter read(0)

  std::vector<int64_t> goids;
  bool attach_denied = false;
  for (const auto& t : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    const pid_t tid = std::stoi(t.path().filename().string());
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
      attach_denied = errno == EPERM;
      continue;
    }
    ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
    int st = 0;
    ::waitpid(tid, &st, __WALL);
    user_regs_struct regs{};
    if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) == 0) {
      uint64_t g = 0;
      int64_t goid = -1;
      iovec local{&g, sizeof(g)},
          remote{reinterpret_cast<void*>(regs.fs_base + offs->g_tls_offset), sizeof(g)};
      if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) == sizeof(g) && g != 0) {
        iovec l2{&goid, sizeof(goid)}, r2{reinterpret_cast<void*>(g + offs->goid_offset), sizeof(goid)};
        if (::process_vm_readv(pid, &l2, 1, &r2, 1, 0) != sizeof(goid)) goid = -1;
      }
      goids.push_back(goid);
    }
    ::ptrace(PTRACE_DETACH, tid, nullptr, nullptr);
  }
  HS_REQUIRE_SETUP(!(goids.empty() && attach_denied), "ptrace of a child is not permitted here");
  ASSERT_FALSE(goids.empty());
  EXPECT_NE(std::find(goids.begin(), goids.end(), 1), goids.end())
      << "no thread had g->goid == 1; goids read: " << ::testing::PrintToString(goids);
  for (int64_t id : goids) EXPECT_GE(id, 0) << "a thread's g slot did not lead to a readable g";
}

TEST_F(GoBinaries, OffsetsFollowGToGoidInRunningProcesses) {
  expect_goid_one_in_running_process(b().plain);
  expect_goid_one_in_running_process(b().pie);
  expect_goid_one_in_running_process(b().cgo);
}

// ---------------------------------------------------------------------------------------------
// Corrupt input: a clear error of the right class, never a crash (the ASan build checks the rest).
TEST_F(GoBinaries, TruncatedCopiesGiveClearErrors) {
  const auto img = read_bytes(b().plain);
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, size_t{40}, size_t{64}, size_t{200}, size_t{4096},
                     img.size() / 3, img.size() / 2, img.size() - 1}) {
    SCOPED_TRACE(cut);
    GoErrorKind kind = GoErrorKind::kNone;
    auto r = parse_go_build_info(std::span(img.data(), cut), &kind);
    ASSERT_FALSE(r);
    if (cut < 4) {
      EXPECT_EQ(kind, GoErrorKind::kNotElf);
      EXPECT_NE(r.error().message.find("not an ELF file"), std::string::npos) << r.error().message;
    } else {
      EXPECT_EQ(kind, GoErrorKind::kCorrupt) << r.error().message;
      EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
    }
  }
}

TEST_F(GoBinaries, BadOffsetsAndLengthsGiveCorrupt) {
  const auto orig = read_bytes(b().plain);
  const size_t at = find_magic(orig);
  ASSERT_LT(at, orig.size());
  {
    // Pointer format with pointers to nowhere.
    auto img = orig;
    img[at + 15] = 0;
    std::fill(img.begin() + at + 16, img.begin() + at + 32, 0xee);
    GoErrorKind kind;
    auto r = parse_go_build_info(img, &kind);
    ASSERT_FALSE(r);
    EXPECT_EQ(kind, GoErrorKind::kCorrupt) << r.error().message;
  }
  {
    // A modinfo length far past the segment.
    auto img = orig;
    const size_t vlen = img[at + 32];
    const size_t mod_varint = at + 33 + vlen;
    img[mod_varint] = 0xff;
    img[mod_varint + 1] = 0xff;
    img[mod_varint + 2] = 0x7f;
    GoErrorKind kind;
    auto r = parse_go_build_info(img, &kind);
    ASSERT_FALSE(r);
    EXPECT_EQ(kind, GoErrorKind::kCorrupt) << r.error().message;
  }
  {
    // A bad pointer size.
    auto img = orig;
    img[at + 14] = 3;
    img[at + 15] = 0;
    GoErrorKind kind;
    EXPECT_FALSE(parse_go_build_info(img, &kind));
    EXPECT_EQ(kind, GoErrorKind::kCorrupt);
  }
  {
    // Program headers pointing past the end of the file.
    auto img = orig;
    reinterpret_cast<Elf64_Ehdr*>(img.data())->e_phoff = img.size() - 8;
    GoErrorKind kind;
    auto r = parse_go_build_info(img, &kind);
    ASSERT_FALSE(r);
    EXPECT_EQ(kind, GoErrorKind::kCorrupt);
  }
}

TEST_F(GoBinaries, RandomMutationsNeverCrash) {
  const auto orig = read_bytes(b().plain);
  const size_t at = find_magic(orig);
  ASSERT_LT(at + 512, orig.size());
  std::mt19937 rng(12345);
  int ok = 0, failed = 0;
  auto img = orig;
  for (int round = 0; round < 300; round++) {
    img = orig;
    for (int k = 0; k < 8; k++) {
      // Hit the headers and the build info blob, where the parser looks.
      const size_t pos = (k % 2 == 0) ? rng() % 4096 : at + rng() % 512;
      img[pos] = static_cast<uint8_t>(rng());
    }
    GoErrorKind kind = GoErrorKind::kNone;
    auto r = parse_go_build_info(img, &kind);
    if (r) {
      ok++;
    } else {
      failed++;
      EXPECT_NE(kind, GoErrorKind::kNone);
      EXPECT_FALSE(r.error().message.empty());
    }
  }
  EXPECT_EQ(ok + failed, 300);
}

TEST(GoBuildInfoErrors, RandomBytesAndNonGoElf) {
  std::mt19937 rng(7);
  std::vector<uint8_t> junk(100000);
  for (auto& b : junk) b = static_cast<uint8_t>(rng());
  GoErrorKind kind;
  auto r = parse_go_build_info(junk, &kind);
  ASSERT_FALSE(r);
  EXPECT_EQ(kind, GoErrorKind::kNotElf);
  std::memcpy(junk.data(), ELFMAG, SELFMAG);
  r = parse_go_build_info(junk, &kind);
  ASSERT_FALSE(r);
  EXPECT_TRUE(kind == GoErrorKind::kCorrupt || kind == GoErrorKind::kNotGo) << go_error_kind_name(kind);

  r = read_go_build_info("/bin/ls", &kind);
  ASSERT_FALSE(r);
  EXPECT_EQ(kind, GoErrorKind::kNotGo) << r.error().message;
  EXPECT_NE(r.error().message.find("not a Go binary"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("/bin/ls"), std::string::npos);

  r = read_go_build_info("/nonexistent/hs-binary", &kind);
  ASSERT_FALSE(r);
  EXPECT_EQ(kind, GoErrorKind::kIo);
  EXPECT_EQ(r.error().err, ENOENT);

  r = read_go_build_info("/proc/self", &kind);  // a directory
  ASSERT_FALSE(r);
  EXPECT_NE(kind, GoErrorKind::kNone);
}

// ---------------------------------------------------------------------------------------------
// Synthesised images: the pre-1.18 pointer format, 32-bit big-endian, inline strings, and the
// limits. Set HOSTSCOPE_FUZZ_SEED_DIR to also write them out as fuzz seeds.
namespace {

const std::string kInfoStart("\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6", 16);
const std::string kInfoEnd("\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2", 16);
const std::string kModinfo =
    "path\texample.com/old/cmd/tool\n"
    "mod\texample.com/old\tv1.2.3\th1:abc=\n"
    "dep\tgolang.org/x/sys\tv0.1.0\th1:sys=\n"
    "dep\texample.com/fork\tv1.0.0\n"
    "=>\t../fork\t(devel)\t\n"
    "build\t-compiler=gc\n"
    "build\t-ldflags=\"-X main.v=1 -s\"\n"
    "build\tCGO_ENABLED=0\n";

struct Writer {
  std::vector<uint8_t> b;
  bool little = true;
  void put(uint64_t v, size_t w) {
    for (size_t i = 0; i < w; i++) b.push_back(static_cast<uint8_t>(v >> (8 * (little ? i : w - 1 - i))));
  }
  void at(size_t off, uint64_t v, size_t w) {
    for (size_t i = 0; i < w; i++) b[off + i] = static_cast<uint8_t>(v >> (8 * (little ? i : w - 1 - i)));
  }
  void str(const std::string& s) { b.insert(b.end(), s.begin(), s.end()); }
  void pad(size_t align) {
    while (b.size() % align) b.push_back(0);
  }
};

// An ELF with one writable PT_LOAD holding `data` at file offset 0x100 and vaddr base+0x100, and
// optionally section headers naming it .go.buildinfo.
std::vector<uint8_t> make_elf(bool is64, bool little, const std::vector<uint8_t>& data, uint64_t base,
                              bool with_sections) {
  Writer w{{}, little};
  const size_t word = is64 ? 8 : 4;
  const size_t ehsize = is64 ? 64 : 52, phentsize = is64 ? 56 : 32, shentsize = is64 ? 64 : 40;
  const uint64_t data_off = 0x100;
  w.b = {0x7f, 'E', 'L', 'F', static_cast<uint8_t>(is64 ? 2 : 1), static_cast<uint8_t>(little ? 1 : 2), 1};
  w.b.resize(16, 0);
  w.put(ET_EXEC, 2);
  w.put(is64 ? EM_X86_64 : EM_386, 2);
  w.put(1, 4);
  w.put(base + data_off, word);  // entry
  w.put(ehsize, word);           // phoff
  const size_t shoff_pos = w.b.size();
  w.put(0, word);  // shoff, patched below
  w.put(0, 4);
  w.put(ehsize, 2);
  w.put(phentsize, 2);
  w.put(1, 2);
  w.put(shentsize, 2);
  w.put(with_sections ? 3 : 0, 2);
  w.put(with_sections ? 2 : 0, 2);
  // PT_LOAD RW
  w.put(PT_LOAD, 4);
  if (is64) {
    w.put(PF_R | PF_W, 4);
    w.put(data_off, 8);
    w.put(base + data_off, 8);
    w.put(base + data_off, 8);
    w.put(data.size(), 8);
    w.put(data.size(), 8);
    w.put(0x1000, 8);
  } else {
    w.put(data_off, 4);
    w.put(base + data_off, 4);
    w.put(base + data_off, 4);
    w.put(data.size(), 4);
    w.put(data.size(), 4);
    w.put(PF_R | PF_W, 4);
    w.put(0x1000, 4);
  }
  w.b.resize(data_off, 0);
  w.b.insert(w.b.end(), data.begin(), data.end());
  if (with_sections) {
    w.pad(8);
    const size_t strtab_off = w.b.size();
    const std::string names("\0.go.buildinfo\0.shstrtab\0", 25);
    w.str(names);
    w.pad(8);
    const size_t shoff = w.b.size();
    w.at(shoff_pos, shoff, word);
    auto shdr = [&](uint32_t name, uint32_t type, uint64_t flags, uint64_t addr, uint64_t off,
                    uint64_t size) {
      w.put(name, 4);
      w.put(type, 4);
      w.put(flags, word);
      w.put(addr, word);
      w.put(off, word);
      w.put(size, word);
      w.put(0, 4);
      w.put(0, 4);
      w.put(16, word);
      w.put(0, word);
    };
    shdr(0, SHT_NULL, 0, 0, 0, 0);
    shdr(1, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, base + data_off, data_off, data.size());
    shdr(15, SHT_STRTAB, 0, 0, strtab_off, names.size());
  }
  return w.b;
}

// The pre-1.18 layout: the header holds pointers to Go string headers {data, len}.
std::vector<uint8_t> pointer_blob(bool is64, bool little, uint64_t vaddr, const std::string& vers,
                                  const std::string& mod) {
  Writer w{{}, little};
  const size_t p = is64 ? 8 : 4;
  w.str(std::string("\xff Go buildinf:", 14));
  w.b.push_back(static_cast<uint8_t>(p));
  w.b.push_back(little ? 0 : 1);
  const uint64_t vers_hdr = vaddr + 32, mod_hdr = vaddr + 32 + 2 * p;
  const uint64_t vers_data = vaddr + 32 + 4 * p, mod_data = vers_data + vers.size();
  w.put(vers_hdr, p);
  w.put(mod_hdr, p);
  w.b.resize(32, 0);
  w.put(vers_data, p);
  w.put(vers.size(), p);
  w.put(mod_data, p);
  w.put(mod.size(), p);
  w.str(vers);
  w.str(mod);
  return w.b;
}

std::vector<uint8_t> inline_blob(const std::string& vers, const std::string& mod) {
  Writer w;
  w.str(std::string("\xff Go buildinf:", 14));
  w.b.push_back(8);
  w.b.push_back(2);
  w.b.resize(32, 0);
  for (const std::string* s : {&vers, &mod}) {
    for (uint64_t v = s->size();; v >>= 7) {
      w.b.push_back(static_cast<uint8_t>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0)));
      if (v < 0x80) break;
    }
    w.str(*s);
  }
  return w.b;
}

void maybe_write_seed(const std::string& name, const std::vector<uint8_t>& img) {
  if (const char* dir = std::getenv("HOSTSCOPE_FUZZ_SEED_DIR")) write_bytes(fs::path(dir) / name, img);
}

void expect_old_modinfo(const GoBuildInfo& bi) {
  EXPECT_EQ(bi.go_version, "go1.16.15");
  EXPECT_EQ(bi.path, "example.com/old/cmd/tool");
  EXPECT_EQ(bi.main, (GoModule{{"example.com/old", "v1.2.3", "h1:abc="}, std::nullopt}));
  ASSERT_EQ(bi.deps.size(), 2u);
  EXPECT_EQ(bi.deps[0], (GoModule{{"golang.org/x/sys", "v0.1.0", "h1:sys="}, std::nullopt}));
  EXPECT_EQ(bi.deps[1].path, "example.com/fork");
  ASSERT_TRUE(bi.deps[1].replace.has_value());
  EXPECT_EQ(bi.deps[1].replace->path, "../fork");
  EXPECT_EQ(bi.deps[1].replace->version, "(devel)");
  EXPECT_EQ(*bi.setting("-ldflags"), "-X main.v=1 -s");
  EXPECT_EQ(*bi.setting("CGO_ENABLED"), "0");
  // Round trip: the text Go would print.
  EXPECT_EQ(bi.to_string(), "go\tgo1.16.15\n" + kModinfo);
}

}  // namespace

TEST(GoBuildInfoSynthetic, Pre118PointerFormat64LittleEndian) {
  const uint64_t base = 0x400000;
  const auto blob = pointer_blob(true, true, base + 0x100, "go1.16.15", kInfoStart + kModinfo + kInfoEnd);
  for (bool sections : {true, false}) {
    const auto img = make_elf(true, true, blob, base, sections);
    maybe_write_seed(sections ? "pointer64le-sections" : "pointer64le", img);
    GoErrorKind kind;
    auto r = parse_go_build_info(img, &kind);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_EQ(r->source, sections ? GoBuildInfoSource::kSection : GoBuildInfoSource::kSegmentScan);
    EXPECT_FALSE(r->inline_strings);
    EXPECT_EQ(r->ptr_size, 8);
    expect_old_modinfo(*r);
  }
}

TEST(GoBuildInfoSynthetic, Pre118PointerFormat32BigEndian) {
  const uint64_t base = 0x10000;
  const auto img = make_elf(
      false, false, pointer_blob(false, false, base + 0x100, "go1.16.15", kInfoStart + kModinfo + kInfoEnd),
      base, true);
  maybe_write_seed("pointer32be", img);
  auto r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->ptr_size, 4);
  expect_old_modinfo(*r);
}

TEST(GoBuildInfoSynthetic, GopathBinaryHasVersionButNoModules) {
  const auto img = make_elf(true, true, pointer_blob(true, true, 0x400100, "go1.16.15", ""), 0x400000, false);
  maybe_write_seed("pointer-gopath", img);
  auto r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->go_version, "go1.16.15");
  EXPECT_EQ(r->to_string(), "go\tgo1.16.15\n");
}

TEST(GoBuildInfoSynthetic, InlineFormatAndLimits) {
  std::string mod = kModinfo;
  for (int i = 0; i < 50; i++)
    mod += "dep\texample.com/m" + std::to_string(i) + "\tv0.0." + std::to_string(i) + "\th1:x=\n";
  const auto img = make_elf(true, true, inline_blob("go1.26.0", kInfoStart + mod + kInfoEnd), 0x400000, true);
  maybe_write_seed("inline-50deps", img);
  auto r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->deps.size(), 52u);
  EXPECT_FALSE(r->deps_truncated);

  GoParseLimits few;
  few.max_deps = 5;
  r = parse_go_build_info(img, nullptr, few);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->deps.size(), 5u);
  EXPECT_TRUE(r->deps_truncated);

  GoParseLimits small;
  small.max_modinfo_bytes = 400;  // cut inside the dep list: whole lines survive
  r = parse_go_build_info(img, nullptr, small);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_TRUE(r->deps_truncated);
  EXPECT_GT(r->deps.size(), 2u);
  EXPECT_LT(r->deps.size(), 52u);
  EXPECT_EQ(r->path, "example.com/old/cmd/tool");

  GoParseLimits tiny_version;
  tiny_version.max_version_bytes = 4;
  GoErrorKind kind;
  EXPECT_FALSE(parse_go_build_info(img, &kind, tiny_version));
  EXPECT_EQ(kind, GoErrorKind::kCorrupt);
}

TEST(GoBuildInfoSynthetic, MarkersOnly) {
  // No header at all: modinfo between its sentinels, the version elsewhere in read-only data.
  std::vector<uint8_t> data(64, 0);
  const std::string rodata = std::string("xxgo1.17.13yy") + kInfoStart + kModinfo + kInfoEnd;
  data.insert(data.end(), rodata.begin(), rodata.end());
  const auto img = make_elf(true, true, data, 0x400000, false);
  maybe_write_seed("markers-only", img);
  auto r = parse_go_build_info(img);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->source, GoBuildInfoSource::kModinfoMarkers);
  EXPECT_EQ(r->go_version, "go1.17.13");
  EXPECT_EQ(r->path, "example.com/old/cmd/tool");
}

TEST(GoBuildInfoModinfo, ParseErrorsMatchGo) {
  EXPECT_FALSE(parse_go_modinfo("mod\tonly-one-column\n"));
  EXPECT_FALSE(parse_go_modinfo("=>\ta\tb\tc\n"));  // replacement with no module
  EXPECT_FALSE(parse_go_modinfo("build\t=x\n"));
  EXPECT_FALSE(parse_go_modinfo("build\tnoequals\n"));
  EXPECT_FALSE(parse_go_modinfo("build\tk=has space\n"));
  EXPECT_FALSE(parse_go_modinfo("build\t\"unterminated=x\n"));
  auto r = parse_go_modinfo("build\t\"we ird\"=\"a\\tb\\u00e9\\x41\"\nbuild\tk=\nunknown line\npath\tp");
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(r->settings.size(), 2u);
  EXPECT_EQ(r->settings[0].key, "we ird");
  EXPECT_EQ(r->settings[0].value,
            "a\tb\xc3\xa9"
            "A");
  EXPECT_EQ(r->settings[1].value, "");
  EXPECT_EQ(r->path, "");  // Go drops an unterminated last line
  EXPECT_EQ(r->to_string(), "build\t\"we ird\"=\"a\\tbéA\"\nbuild\tk=\n");
}

TEST(GoBuildInfoModinfo, QuoteMatchesStrconv) {
  EXPECT_EQ(go_quote("-s -w"), "\"-s -w\"");
  EXPECT_EQ(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(go_quote(std::string("\x01\x7f\n\t", 4)), "\"\\x01\\x7f\\n\\t\"");
  EXPECT_EQ(go_quote("\xff"), "\"\\xff\"");
  EXPECT_EQ(go_quote("\xc2\xa0"), "\"\\u00a0\"");
  EXPECT_EQ(go_quote("\xc3\xa9"), "\"\xc3\xa9\"");
  EXPECT_EQ(go_unquote("`raw\\n`"), "raw\\n");
  EXPECT_EQ(go_unquote("\"\\101\\x42\\u0043\""), "ABC");
  EXPECT_FALSE(go_unquote("\"\\q\""));
  EXPECT_FALSE(go_unquote("\"\\ud800\""));
  EXPECT_FALSE(go_unquote("'x'"));
}

TEST(GoOffsetsTable, VersionsAndRefusals) {
  EXPECT_EQ(*goid_offset_from_table("go1.13", EM_X86_64), 152u);
  EXPECT_EQ(*goid_offset_from_table("go1.19.8", EM_X86_64), 152u);
  EXPECT_EQ(*goid_offset_from_table("go1.22.12", EM_AARCH64), 152u);
  EXPECT_EQ(*goid_offset_from_table("go1.23.0", EM_X86_64), 160u);
  EXPECT_EQ(*goid_offset_from_table("go1.24rc1", EM_X86_64), 160u);
  EXPECT_EQ(*goid_offset_from_table("go1.25.3 X:boringcrypto", EM_X86_64), 152u);
  EXPECT_EQ(*goid_offset_from_table("devel go1.26-abcdef Mon Jan 1", EM_X86_64), 152u);
  EXPECT_FALSE(goid_offset_from_table("go1.27.0", EM_X86_64));
  EXPECT_FALSE(goid_offset_from_table("go1.8", EM_X86_64));
  EXPECT_FALSE(goid_offset_from_table("devel +abc", EM_X86_64));
  EXPECT_FALSE(goid_offset_from_table("go1.21.0", EM_386));
  auto v = parse_go_version("go1.21rc2");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->minor, 21);
}

// ---------------------------------------------------------------------------------------------
TEST_F(GoBinaries, CacheParsesEachBinaryOnce) {
  std::atomic<int> parses{0};
  GoIdentityCache cache(2, [&](int fd, const std::string& name) {
    parses++;
    return GoIdentityCache::parse(fd, name);
  });
  auto a = cache.lookup(b().plain.string());
  ASSERT_TRUE(a) << a.error().str();
  ASSERT_TRUE((*a)->is_go());
  ASSERT_TRUE((*a)->offsets.has_value()) << (*a)->offsets_error;
  EXPECT_EQ((*a)->offsets->g_tls_offset, -8);
  auto a2 = cache.lookup(b().plain.string());
  ASSERT_TRUE(a2);
  EXPECT_EQ(a->get(), a2->get());  // the same cached object
  auto ls = cache.lookup("/bin/ls");
  ASSERT_TRUE(ls);
  EXPECT_FALSE((*ls)->is_go());
  EXPECT_EQ((*ls)->build_error_kind, GoErrorKind::kNotGo);
  auto ls2 = cache.lookup("/bin/ls");  // negative results are cached too
  EXPECT_EQ(parses.load(), 2);
  auto st = cache.stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 2u);
  EXPECT_EQ(st.evictions, 0u);
  EXPECT_EQ(st.size, 2u);

  // A third binary evicts the least recently used (plain, since /bin/ls was used last).
  ASSERT_TRUE(cache.lookup(b().stripped.string()));
  st = cache.stats();
  EXPECT_EQ(st.evictions, 1u);
  EXPECT_EQ(st.size, 2u);
  ASSERT_TRUE(cache.lookup("/bin/ls"));
  EXPECT_EQ(parses.load(), 3);
  ASSERT_TRUE(cache.lookup(b().plain.string()));
  EXPECT_EQ(parses.load(), 4);

  cache.set_capacity(1);
  EXPECT_EQ(cache.stats().size, 1u);

  EXPECT_FALSE(cache.lookup("/nonexistent/hs-binary"));
}

TEST_F(GoBinaries, CacheKeyChangesWithMtimeAndIsThreadSafe) {
  TempDir t;
  const fs::path copy = t.path / "bin";
  fs::copy_file(b().plain, copy);
  std::atomic<int> parses{0};
  GoIdentityCache cache(16, [&](int fd, const std::string& name) {
    parses++;
    return GoIdentityCache::parse(fd, name);
  });
  std::vector<std::thread> threads;
  std::atomic<int> go_seen{0};
  for (int i = 0; i < 8; i++) {
    threads.emplace_back([&] {
      for (int k = 0; k < 20; k++) {
        auto r = cache.lookup(copy.string());
        if (r && (*r)->is_go()) go_seen++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(go_seen.load(), 160);
  EXPECT_EQ(parses.load(), 1);
  EXPECT_EQ(cache.stats().hits, 159u);

  // A rebuilt binary at the same path (new mtime) is parsed again.
  fs::last_write_time(copy, fs::last_write_time(copy) + std::chrono::seconds(5));
  ASSERT_TRUE(cache.lookup(copy.string()));
  EXPECT_EQ(parses.load(), 2);
}

TEST_F(GoBinaries, RealBlobInAMinimalElf) {
  // The build info blob of a real binary, moved into a one-segment ELF: same answer, and a small
  // realistic fuzz seed.
  const auto img = read_bytes(b().vcs_dirty);
  const size_t at = find_magic(img);
  ASSERT_LT(at, img.size());
  const size_t blob_len = std::min<size_t>(4096, img.size() - at);
  const std::vector<uint8_t> blob(img.begin() + at, img.begin() + at + blob_len);
  const auto mini = make_elf(true, true, blob, 0x400000, false);
  maybe_write_seed("real-vcs-blob", mini);
  auto r = parse_go_build_info(mini);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->to_string(), must_read(b().vcs_dirty).to_string());
}

// ---------------------------------------------------------------------------------------------
// Hostile binaries: headers that claim gigabytes. Each read runs in a forked child that reports its
// answer and how far its peak RSS rose, so the measure is the reader's alone. Issue 15: a copy of
// /bin/sleep with e_shentsize = e_shnum = 65535, sparse to 4.29 GB, took the agent to 4.28 GB.
namespace {

struct ChildReport {
  bool exited = false;     // the child ran to the end (no crash, no abort on an allocation failure)
  long rss_growth_kb = 0;  // ru_maxrss after minus before the work
  std::string text;        // what the work returned
};

// Runs `work` in a child. Without sanitizers the child's address space is capped at 1 GiB so a reader
// that tries to allocate gigabytes aborts at once instead of taking the machine's memory.
template <typename Work>
ChildReport in_child(Work work) {
  int p[2];
  if (::pipe(p) != 0) return {};
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    struct rlimit lim {1ul << 30, 1ul << 30};
    ::setrlimit(RLIMIT_AS, &lim);
#endif
    struct rusage before {}, after {};
    ::getrusage(RUSAGE_SELF, &before);
    std::string text;
    try {
      text = work();
    } catch (...) {
      ::_exit(3);  // e.g. std::bad_alloc at the address space cap: never back into the test runner
    }
    ::getrusage(RUSAGE_SELF, &after);
    const std::string msg = std::to_string(after.ru_maxrss - before.ru_maxrss) + "\n" + text;
    size_t off = 0;
    while (off < msg.size()) {
      const ssize_t n = ::write(p[1], msg.data() + off, msg.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  ::close(p[1]);
  std::string all;
  char buf[4096];
  for (ssize_t n; (n = ::read(p[0], buf, sizeof(buf))) > 0;) all.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ChildReport r;
  r.exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  const size_t nl = all.find('\n');
  if (nl != std::string::npos) {
    r.rss_growth_kb = std::stol(all.substr(0, nl));
    r.text = all.substr(nl + 1);
  }
  return r;
}

// Every reader keeps its peak well under this, whatever the headers claim.
constexpr long kMaxGrowthKb = 16 * 1024;

// /bin/sleep whose .dynsym and .dynstr claim 200 MiB each, placed in a sparse tail of the file.
fs::path make_symbol_table_bomb(const fs::path& dir) {
  auto img = read_bytes("/bin/sleep");
  auto* eh = reinterpret_cast<Elf64_Ehdr*>(img.data());
  constexpr uint64_t kClaim = 200ull << 20;
  const uint64_t tail = (img.size() + 0xfff) & ~0xfffull;
  bool patched = false;
  for (unsigned i = 0; i < eh->e_shnum; i++) {
    auto* sh = reinterpret_cast<Elf64_Shdr*>(img.data() + eh->e_shoff + i * eh->e_shentsize);
    if (sh->sh_type != SHT_DYNSYM) continue;
    auto* strs = reinterpret_cast<Elf64_Shdr*>(img.data() + eh->e_shoff + sh->sh_link * eh->e_shentsize);
    sh->sh_offset = tail;
    sh->sh_size = kClaim;
    strs->sh_offset = tail + kClaim;
    strs->sh_size = kClaim;
    patched = true;
  }
  EXPECT_TRUE(patched) << "/bin/sleep has no .dynsym";
  const fs::path p = dir / "sleep-symbomb";
  write_bytes(p, img);
  EXPECT_EQ(::truncate(p.c_str(), static_cast<off_t>(tail + 2 * kClaim)), 0);
  return p;
}

std::string describe(const hostscope::Result<GoBuildInfo>& r, GoErrorKind kind) {
  return r ? std::string("accepted") : std::string(go_error_kind_name(kind)) + ": " + r.error().message;
}

}  // namespace

TEST(GoBuildInfoHostile, SectionHeaderBombIsRefusedCheaply) {
  TempDir dir;
  const fs::path bomb = hostscope::testing::make_section_header_bomb(dir.path);
  ASSERT_GT(fs::file_size(bomb), 4'000'000'000u);

  auto rep = in_child([&] {
    GoErrorKind kind = GoErrorKind::kNone;
    auto r = read_go_build_info(bomb.string(), &kind);
    return describe(r, kind);
  });
  std::printf("section header bomb: %s; peak RSS growth %ld kB\n", rep.text.c_str(), rep.rss_growth_kb);
  ASSERT_TRUE(rep.exited) << "the reader crashed or ran out of memory";
  EXPECT_EQ(rep.text.rfind("corrupt: ", 0), 0u) << rep.text;
  EXPECT_NE(rep.text.find("section header table"), std::string::npos) << rep.text;
  EXPECT_LT(rep.rss_growth_kb, kMaxGrowthKb);

  // The offsets reader opens the same image itself.
  rep = in_child([&] {
    GoBuildInfo info;
    info.go_version = "go1.22.0";
    auto r = read_go_offsets(bomb.string(), info);
    return r ? std::string("accepted") : r.error().message;
  });
  ASSERT_TRUE(rep.exited) << "the offsets reader crashed or ran out of memory";
  EXPECT_NE(rep.text.find("section header table"), std::string::npos) << rep.text;
  EXPECT_LT(rep.rss_growth_kb, kMaxGrowthKb);

  // The identity cache counts the refusal.
  GoIdentityCache cache(4);
  auto id = cache.lookup(bomb.string());
  ASSERT_TRUE(id);
  EXPECT_FALSE((*id)->is_go());
  EXPECT_EQ((*id)->build_error_kind, GoErrorKind::kCorrupt);
  EXPECT_EQ(cache.stats().refused, 1u);
}

TEST(GoBuildInfoHostile, SymbolTablesAreReadInBoundedChunks) {
  TempDir dir;
  const fs::path bomb = make_symbol_table_bomb(dir.path);
  auto rep = in_child([&] {
    const int fd = ::open(bomb.c_str(), O_RDONLY | O_CLOEXEC);
    auto img = goelf::Image::open(goelf::ByteSource::file(fd, fs::file_size(bomb)));
    if (!img) return "open failed: " + img.error().message;
    auto sym = img->find_symbol("runtime.tlsg");
    ::close(fd);
    return std::string(sym ? "found" : "absent");
  });
  std::printf("symbol table bomb: %s; peak RSS growth %ld kB\n", rep.text.c_str(), rep.rss_growth_kb);
  ASSERT_TRUE(rep.exited) << "find_symbol crashed or ran out of memory";
  EXPECT_EQ(rep.text, "absent");
  EXPECT_LT(rep.rss_growth_kb, kMaxGrowthKb);
}

TEST(GoBuildInfoHostile, ReadsStopAtTheBudget) {
  // A read-only segment of 1 GiB of zeros (a hole in a sparse image): the marker scan would read it
  // all; the budget stops it with an error that says so.
  const uint64_t base = 0x400000;
  auto img = make_elf(true, true, std::vector<uint8_t>(64, 0), base, false);
  auto* ph = reinterpret_cast<Elf64_Phdr*>(img.data() + sizeof(Elf64_Ehdr));
  ph->p_flags = PF_R;
  ph->p_filesz = ph->p_memsz = 1ull << 30;
  GoParseLimits limits;
  limits.max_read_bytes = 8 << 20;
  GoErrorKind kind = GoErrorKind::kNone;
  auto r = read_go_build_info(goelf::ByteSource::memory(img, 0x100 + (1ull << 30)), "sparse", &kind, limits);
  ASSERT_FALSE(r);
  EXPECT_EQ(kind, GoErrorKind::kCorrupt) << r.error().message;
  EXPECT_NE(r.error().message.find("read budget"), std::string::npos) << r.error().message;
}

TEST(GoBuildInfoHostile, FuzzSeeds) {
  // Small images whose headers claim gigabytes; the fuzzer reads each also as the start of a 4 GiB
  // sparse file (tests/fuzz/fuzz_go_buildinfo.cpp), where the claims fit inside the file.
  auto shbomb = make_elf(true, true, inline_blob("go1.22.0", kInfoStart + kModinfo + kInfoEnd), 0x400000, true);
  reinterpret_cast<Elf64_Ehdr*>(shbomb.data())->e_shentsize = 0xffff;
  reinterpret_cast<Elf64_Ehdr*>(shbomb.data())->e_shnum = 0xffff;
  maybe_write_seed("section-header-bomb", shbomb);
  GoErrorKind kind = GoErrorKind::kNone;
  auto r = read_go_build_info(goelf::ByteSource::memory(shbomb, 1ull << 32), "seed", &kind);
  ASSERT_FALSE(r);
  EXPECT_EQ(kind, GoErrorKind::kCorrupt);
  EXPECT_NE(r.error().message.find("section header table"), std::string::npos) << r.error().message;
}
