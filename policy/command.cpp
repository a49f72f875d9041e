#include "policy/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hostscope::policy {

std::string join_command(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

namespace {

constexpr size_t kMaxOutput = 256u << 20;
constexpr size_t kSpawnStack = 256u << 10;

struct SpawnArgs {
  char* const* argv;
  int in, out, err;
  pid_t parent;
  sigset_t mask;  // the caller's signal mask, restored just before exec
};

// Runs in the child, on its own stack but in the parent's memory (CLONE_VM) until exec: only async-signal-safe calls,
// no allocation (glibc's posix_spawn child does the same).
int spawn_child(void* p) {
  const auto* a = static_cast<const SpawnArgs*>(p);
  // The handler table is the child's own copy (no CLONE_SIGHAND): a handler of ours must not run here, in our memory.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction act {};
    if (sigaction(sig, nullptr, &act) != 0 || act.sa_handler == SIG_IGN || act.sa_handler == SIG_DFL) continue;
    act.sa_handler = SIG_DFL;
    act.sa_flags = 0;
    sigemptyset(&act.sa_mask);
    sigaction(sig, &act, nullptr);
  }
  // A tool must not outlive us: an iptables-restore finishing after we were killed could commit rules after the
  // next hostscope process has put the previous generation back (crash recovery, docs/policy.md).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != a->parent) _exit(127);  // the parent died before prctl
  dup2(a->in, 0);
  dup2(a->out, 1);
  dup2(a->err, 2);
  sigprocmask(SIG_SETMASK, &a->mask, nullptr);
  execvp(a->argv[0], a->argv);
  const char msg[] = "exec failed\n";
  (void)!write(2, msg, sizeof msg - 1);
  _exit(127);
}

// fork() copies the page tables of a large process (the agent, a 10k-rule apply) for every tool started; a vfork-style
// clone shares them and suspends the caller until the child has exec'd, as posix_spawn does. posix_spawn itself cannot
// set PR_SET_PDEATHSIG in the child. Every signal is blocked around the clone so none is handled in the child before
// its handlers are reset.
pid_t spawn(SpawnArgs& a) {
  void* stack = mmap(nullptr, kSpawnStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -1;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &a.mask);
  pid_t pid = clone(spawn_child, static_cast<char*>(stack) + kSpawnStack, CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &a.mask, nullptr);
  munmap(stack, kSpawnStack);
  errno = e;
  return pid;
}

class ProcessRunner : public CommandRunner {
 public:
  CommandResult run(const std::vector<std::string>& argv, const std::string& input) override {
    CommandResult r;
    if (argv.empty()) return r;
    int in[2], out[2], err[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
      r.err = std::string("pipe failed: ") + std::strerror(errno);
      return r;
    }
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    SpawnArgs sa{args.data(), in[0], out[1], err[1], getpid(), {}};
    pid_t pid = spawn(sa);
    if (pid < 0) {
      r.err = std::string("spawn failed: ") + std::strerror(errno);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      return r;
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    // Writing stdin while draining stdout/stderr avoids a pipe deadlock on large rule sets.
    size_t written = 0;
    int fds[3] = {in[1], out[0], err[0]};
    if (input.empty()) {
      close(in[1]);
      fds[0] = -1;
    } else {
      fcntl(in[1], F_SETFL, O_NONBLOCK);
    }
    signal(SIGPIPE, SIG_IGN);
    while (fds[1] >= 0 || fds[2] >= 0 || fds[0] >= 0) {
      pollfd p[3];
      for (int i = 0; i < 3; ++i) p[i] = {fds[i], static_cast<short>(i == 0 ? POLLOUT : POLLIN), 0};
      if (poll(p, 3, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[0] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = write(fds[0], input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<size_t>(n);
        if (n < 0 && errno != EAGAIN) written = input.size();
        if (written >= input.size()) {
          close(fds[0]);
          fds[0] = -1;
        }
      }
      for (int i = 1; i < 3; ++i) {
        if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        char buf[65536];
        ssize_t n = read(fds[i], buf, sizeof buf);
        if (n <= 0) {
          close(fds[i]);
          fds[i] = -1;
          continue;
        }
        std::string& dst = i == 1 ? r.out : r.err;
        if (dst.size() < kMaxOutput) dst.append(buf, static_cast<size_t>(n));
      }
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }
};

}  // namespace

std::shared_ptr<CommandRunner> make_process_runner() { return std::make_shared<ProcessRunner>(); }

}  // namespace hostscope::policy
