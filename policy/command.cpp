#include "policy/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
      r.err = std::string("fork failed: ") + std::strerror(errno);
      for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1]}) close(fd);
      return r;
    }
    if (pid == 0) {
      // A tool must not outlive us: an iptables-restore finishing after we were killed could commit rules after the
      // next hostscope process has put the previous generation back (crash recovery, docs/policy.md).
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before prctl
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(err[1], 2);
      execvp(args[0], args.data());
      const char* msg = "exec failed\n";
      (void)!write(2, msg, strlen(msg));
      _exit(127);
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
