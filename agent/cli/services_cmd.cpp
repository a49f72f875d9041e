// `hostscope services`: every live process with its identity (service name, cgroup, container, pod, Go build).
// A one-shot /proc scan: no BPF needed (root is needed to read other users' executables).
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent/cli/commands.h"
#include "agent/identity/process_json.h"
#include "agent/identity/process_lookup.h"
#include "agent/util/logging.h"

namespace hostscope::cli {

namespace {

struct ServicesOptions {
  std::string output = "table";
  std::string kubelet_root = "/";
  std::string config;
  std::vector<uint32_t> pids;
  bool all = false;  // kernel threads too
};

std::string_view or_dash(const std::string& s) { return s.empty() ? std::string_view("-") : std::string_view(s); }

int run_services(const ServicesOptions& o) {
  auto opts = identity::identity_options(o.kubelet_root, o.config);
  if (!opts) {
    spdlog::error("{}", opts.error().str());
    return 2;
  }
  identity::ProcessTable table(std::move(*opts));
  if (o.pids.empty()) {
    table.scan_proc();
  } else {
    for (uint32_t pid : o.pids)
      if (auto r = table.refresh(pid); !r) spdlog::warn("{}", r.error().str());
  }
  if (geteuid() != 0) spdlog::warn("not root: executables of other users' processes cannot be read");
  auto procs = table.snapshot();
  // Kernel threads have no executable and no service of their own.
  std::erase_if(procs, [&](const auto& p) { return !o.all && p->exe.empty(); });

  if (o.output == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& p : procs) arr.push_back(identity::process_to_json(*p));
    fmt::print("{}\n", arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return 0;
  }
  fmt::print("{:>7} {:<15} {:<32} {:<10} {:<24} {}\n", "PID", "COMM", "SERVICE", "SOURCE", "UNIT/CONTAINER", "GO");
  for (const auto& p : procs) {
    std::string where = !p->pod.empty() ? p->k8s_namespace + "/" + p->pod + "/" + p->container
                        : !p->container_id.empty() ? p->container_id.substr(0, 12)
                                                   : p->systemd_unit;
    std::string go = p->go ? p->go->version + " " + p->go->module + "@" + p->go->module_version : "";
    fmt::print("{:>7} {:<15} {:<32} {:<10} {:<24} {}\n", p->pid, p->comm, p->service,
               identity::service_source_name(p->service_source), or_dash(where), go);
  }
  return 0;
}

}  // namespace

void register_services(CLI::App& app, const GlobalOptions& g, int& exit_code) {
  auto o = std::make_shared<ServicesOptions>();
  auto* cmd = app.add_subcommand("services", "List running processes with their service identity");
  cmd->add_option("-o,--output", o->output, "Output format")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  cmd->add_option("--kubelet-root", o->kubelet_root,
                  "Prefix of the kubelet's /var/log/containers and /var/log/pods")
      ->capture_default_str();
  cmd->add_option("--config", o->config, "YAML file with service_rules:");
  cmd->add_option("--pid", o->pids, "Only these processes");
  cmd->add_flag("--all", o->all, "Also kernel threads (no executable)");
  cmd->callback([o, &exit_code] { exit_code = run_services(*o); });
}

}  // namespace hostscope::cli
