// hostscope: one binary, many subcommands. The CLI and the daemon are the same program.
#include "agent/cli/commands.h"
#include "agent/util/logging.h"
#include "hostscope_version.h"

int main(int argc, char** argv) {
  using namespace hostscope;
  CLI::App app{"hostscope: eBPF host network observability"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("hostscope ") + HOSTSCOPE_VERSION);
  cli::GlobalOptions g;
  app.add_flag("-v,--verbose", g.verbosity, "More logging (-v info, -vv debug)");
  int exit_code = 0;
  cli::register_version(app, exit_code);
  cli::register_connections(app, g, exit_code);
  cli::register_services(app, g, exit_code);
  cli::register_agent(app, g, exit_code);
  cli::register_top(app, g, exit_code);
  cli::register_topology(app, g, exit_code);
  cli::register_policy(app);
  cli::register_doctor(app, exit_code);
  cli::register_history(app, exit_code);
  app.parse_complete_callback([&] { init_logging(g.verbosity); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // commands that report their own failure (policy lint: 1 errors, 2 usage)
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;  // usage errors exit 2
  }
  return exit_code;
}
