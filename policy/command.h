#pragma once
// Running external tools (iptables-restore, iptables-save, ipset). An interface so unit tests can
// fake the kernel side and integration tests can prefix `ip netns exec <ns>`.
#include <memory>
#include <string>
#include <vector>

namespace hostscope::policy {

struct CommandResult {
  int exit_code = -1;  // -1: could not run
  std::string out, err;
  bool ok() const { return exit_code == 0; }
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  virtual CommandResult run(const std::vector<std::string>& argv, const std::string& input) = 0;
};

// Starts the tool with a vfork-style clone (no page-table copy), PR_SET_PDEATHSIG SIGKILL, pipes for stdin/stdout/
// stderr; output capped at 256 MiB per stream.
std::shared_ptr<CommandRunner> make_process_runner();

std::string join_command(const std::vector<std::string>& argv);

}  // namespace hostscope::policy
