#pragma once
// Container, pod and systemd-unit identity derived from a process's cgroup path.
// Everything except read_proc_cgroup() is a pure function over text, so the whole matrix of
// cgroup v1/v2, systemd/cgroupfs drivers and runtimes is testable without real cgroups.
// The recognised forms are listed in docs/identity.md.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hostscope::identity {

enum class ContainerRuntime : std::uint8_t {
  none,        // not in a container
  containerd,  // cri-containerd-<id>.scope
  crio,        // crio-<id>.scope, crio-<id>
  docker,      // docker-<id>.scope, /docker/<id>
  podman,      // libpod-<id>.scope
  unknown,     // a bare 64-hex directory (cgroupfs driver: containerd and dockershim look alike)
};

enum class QosClass : std::uint8_t { none, guaranteed, burstable, besteffort };

std::string_view runtime_name(ContainerRuntime r);
std::string_view qos_name(QosClass q);

// One line of /proc/PID/cgroup: "hierarchy-ID:controller-list:cgroup-path".
struct CgroupLine {
  unsigned hierarchy = 0;
  std::string controllers;  // "" for the v2 unified line, "name=systemd" for the systemd v1 tree
  std::string path;         // " (deleted)" suffix already removed

  bool is_v2() const { return hierarchy == 0 && controllers.empty(); }
};

struct CgroupIdentity {
  std::string path;          // v2 path when present, else name=systemd, else the first v1 path
  std::string systemd_unit;  // "nginx.service", "session-3.scope"; empty when none
  ContainerRuntime runtime = ContainerRuntime::none;
  std::string container_id;  // 64 lowercase hex chars, empty when not a container
  std::string pod_uid;       // dashed form ("1b2c...-..."), empty outside Kubernetes
  QosClass qos = QosClass::none;
  std::size_t malformed_lines = 0;  // lines of the input that could not be parsed and were skipped

  bool in_container() const { return !container_id.empty(); }
  bool in_pod() const { return !pod_uid.empty(); }
};

// Splits /proc/PID/cgroup content into lines; malformed lines are skipped and counted in *malformed.
std::vector<CgroupLine> parse_cgroup_lines(std::string_view text, std::size_t* malformed = nullptr);

// Derives unit, container and pod identity from one cgroup path (fields stay empty when unknown).
CgroupIdentity identity_from_path(std::string_view path);

// Full /proc/PID/cgroup interpretation. Hybrid layouts: `path` prefers the v2 line; the identity
// (container, pod, unit) comes from the first of [v2, name=systemd, other v1 lines in file order]
// that yields a container, else a pod, else a unit, so all identity fields come from one path.
CgroupIdentity parse_proc_cgroup(std::string_view text);

// Reads <proc_root>/<pid>/cgroup (bounded) and parses it.
Result<CgroupIdentity> read_proc_cgroup(int pid, const std::filesystem::path& proc_root = "/proc");

// True for exactly 64 lowercase hex chars: the id format of containerd, CRI-O and Docker.
bool is_container_id(std::string_view s);

// True for a pod UID as the kubelet writes it in paths: a dashed UUID (36 chars) or, for static
// pods, the 32-hex config hash. Lowercase only.
bool is_pod_uid(std::string_view s);

}  // namespace hostscope::identity
