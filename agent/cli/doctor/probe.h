#pragma once
// Reads the real node into doctor::NodeFacts: kernel BTF, a trivial BPF program load, tracepoints, mounts,
// iptables/ipset tools, the agent's configuration, the kubelet's directories, the API group and the daemon.
// Changes nothing on the node.
#include <string>
#include <string_view>
#include <vector>

#include "agent/cli/doctor/checks.h"
#include "agent/daemon/config.h"

namespace hostscope::doctor {

struct ProbeOptions {
  std::string config_path;
  bool config_is_default = true;  // a missing default config means defaults
  std::string socket_path;        // "" : api.socket from the configuration
};

NodeFacts probe(const ProbeOptions& o);
// The history part of probe(): the file of `cfg.history` opened read-only (schema, integrity, size, span).
void probe_history(NodeFacts& f, const daemon::Config& cfg);

// True when /proc/filesystems text lists `fstype`.
bool filesystem_supported(std::string_view proc_filesystems, std::string_view fstype);

}  // namespace hostscope::doctor
