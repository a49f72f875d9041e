#include "agent/identity/process_json.h"

namespace hostscope::identity {

nlohmann::json process_to_json(const ProcessIdentity& p) {
  nlohmann::json j = {
      {"pid", p.pid},
      {"ppid", p.ppid},
      {"uid", p.uid},
      {"comm", p.comm},
      {"exe", p.exe},
      {"cmdline", p.cmdline},
      {"start_boottime_ns", p.start_boottime_ns},
      {"service", p.service},
      {"service_source", service_source_name(p.service_source)},
      {"cgroup", p.cgroup},
      {"cgroup_id", p.cgroup_id},
      {"unit", p.systemd_unit},
      {"container_id", p.container_id},
      {"pod_uid", p.pod_uid},
      {"pod", p.pod},
      {"namespace", p.k8s_namespace},
      {"container", p.container},
      {"workload", p.workload},
  };
  if (p.go) {
    const auto& g = *p.go;
    nlohmann::json go = {
        {"version", g.version},           {"path", g.path},         {"module", g.module},
        {"module_version", g.module_version}, {"vcs_revision", g.vcs_revision}, {"vcs_time", g.vcs_time},
        {"goos", g.goos},                 {"goarch", g.goarch},
    };
    go["vcs_modified"] = g.vcs_modified ? nlohmann::json(*g.vcs_modified) : nlohmann::json(nullptr);
    if (g.offsets) {
      go["goid_offset"] = g.offsets->goid_offset;
      go["g_tls_offset"] = g.offsets->g_tls_offset;
      go["offsets_source"] = g.offsets->source;
    } else {
      go["offsets_error"] = g.offsets_error;
    }
    j["go"] = std::move(go);
  }
  return j;
}

}  // namespace hostscope::identity
