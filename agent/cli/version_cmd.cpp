#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "agent/cli/commands.h"
#include "hostscope_version.h"

namespace hostscope::cli {

void register_version(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("version", "Print the hostscope version");
  cmd->callback([&exit_code] {
    fmt::print("hostscope {} ({}) libbpf {}.{}\n", HOSTSCOPE_VERSION, HOSTSCOPE_GIT, libbpf_major_version(),
               libbpf_minor_version());
    exit_code = 0;
  });
}

}  // namespace hostscope::cli
