#pragma once
// Helpers for privileged integration tests: root/BPF gating that fails under CI=true, network namespaces
// the test owns, child processes with line-oriented stdout, and shell commands.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace hostscope::testing {

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Privileged tests need root. Under CI=true they fail instead of skipping; elsewhere they skip with a reason.
#define HS_REQUIRE_ROOT()                                                                  \
  do {                                                                                     \
    if (geteuid() != 0) {                                                                  \
      if (::hostscope::testing::in_ci()) FAIL() << "this test needs root and BPF (CI=true)"; \
      GTEST_SKIP() << "needs root and BPF";                                                \
    }                                                                                      \
  } while (0)

// A test whose prerequisites are missing (`why` is a non-empty reason: no cgroup v2, a tool not installed, a
// setup step that failed) fails under CI=true and skips with the reason elsewhere. The one gate every
// privileged test goes through.
#define HS_REQUIRE_THAT(why)                                                                    \
  do {                                                                                          \
    const std::string hs_why_ = (why);                                                          \
    if (!hs_why_.empty()) {                                                                     \
      if (::hostscope::testing::in_ci()) FAIL() << "cannot run under CI=true: " << hs_why_;     \
      GTEST_SKIP() << hs_why_;                                                                  \
    }                                                                                           \
  } while (0)

// A setup step the test depends on (netns, veth, iptables, tools) must have worked.
#define HS_REQUIRE_SETUP(cond, what) HS_REQUIRE_THAT((cond) ? std::string() : std::string("setup failed: ") + (what))

// Runs a shell command; returns its exit status and captured stdout.
struct CmdResult {
  int status = -1;
  std::string out;
};
inline CmdResult sh(const std::string& cmd) {
  CmdResult r;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string random_suffix() {
  std::random_device rd;
  return std::to_string(getpid()) + "-" + std::to_string(rd() % 100000);
}

inline uint64_t inode_of(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// A network namespace created by the test and deleted when it goes out of scope.
class Netns {
 public:
  explicit Netns(const std::string& stem) : name_("hs-t-" + stem + "-" + random_suffix()) {
    ok_ = sh("ip netns add " + name_).status == 0;
    if (ok_) sh("ip netns exec " + name_ + " ip link set lo up");
  }
  ~Netns() {
    if (ok_) sh("ip netns delete " + name_);
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }
  std::string exec(const std::string& cmd) const { return "ip netns exec " + name_ + " " + cmd; }
  uint64_t inode() const { return inode_of("/run/netns/" + name_); }

 private:
  std::string name_;
  bool ok_ = false;
};

// A child process with its stdout readable line by line.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int fds[2];
    if (pipe(fds)) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> a;
      for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
      a.push_back(nullptr);
      execvp(a[0], a.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_) fclose(out_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  pid_t pid() const { return pid_; }
  // Next line of stdout without the newline; nullopt at EOF.
  std::optional<std::string> line() {
    if (!out_) return std::nullopt;
    char* l = nullptr;
    size_t cap = 0;
    ssize_t n = getline(&l, &cap, out_);
    if (n < 0) {
      free(l);
      return std::nullopt;
    }
    std::string s(l, size_t(n));
    free(l);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
  int wait() {
    int st = 0;
    waitpid(pid_, &st, 0);
    reaped_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  bool reaped_ = false;
};

// Polls `pred` until it is true or `timeout` passes (for events that arrive asynchronously; not a timing assertion).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace hostscope::testing
