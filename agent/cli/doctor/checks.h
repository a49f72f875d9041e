#pragma once
// `hostscope doctor`: what works on this node and what will degrade, in plain words.
// NodeFacts is everything probed (probe.cpp reads the real node); evaluate() turns facts into checks and is a
// pure function, so every verdict is unit-tested without touching the machine.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace hostscope::doctor {

enum class Level { Ok, Warn, Fail };
std::string_view level_name(Level l);  // "ok" | "warn" | "fail"

struct Check {
  std::string name;     // short id, e.g. "btf", "hook sock/inet_sock_set_state"
  Level level = Level::Ok;
  std::string message;  // one plain sentence: what works, or what degrades and what to do
};

// A kernel hook the agent attaches (bpf/tcp_lifecycle.bpf.c, bpf/process.bpf.c).
struct HookSpec {
  std::string category, event;  // tracepoint sock/inet_sock_set_state
  bool has_btf = true;          // the agent has a tp_btf variant (else classic tracepoint only)
  bool required = false;        // the agent cannot start without it
  std::string gives;            // what it is for
  std::string lost;             // what degrades without it
};
const std::vector<HookSpec>& agent_hooks();

enum class Tri { Yes, No, Unknown };

// What the agent will attach for a hook on this node: "tp_btf", "tracepoint", "off", or "unknown" (tracefs could
// not be read and the kernel's BTF lacks the hook). The agent chooses by the same rule (agent/bpf/tcp_tracer.cpp).
struct HookFacts;
struct NodeFacts;
std::string predicted_hook_mode(const HookSpec& h, const NodeFacts& f);
// fexit/inet_csk_accept: "fexit" where neither send/receive hook has tp_btf and a trial fexit program loads, else "off".
std::string predicted_accept_mode(const NodeFacts& f);

struct HookFacts {
  bool btf = false;             // btf_trace_<event> exists in the kernel BTF
  Tri classic = Tri::Unknown;   // <tracefs>/events/<category>/<event> exists (Unknown: not mounted or unreadable)
};

struct IptablesFacts {
  std::string binary;   // iptables-nft, iptables-legacy, ip6tables-nft, ...
  bool present = false;
  std::string version;  // first line of --version when it ran
};

struct NodeFacts {
  bool root = false;
  // Kernel
  bool btf_present = false;
  std::string btf_error;                    // why vmlinux BTF could not be loaded
  std::optional<std::string> bpf_load_error;  // nullopt: a trivial tracepoint program loaded
  std::map<std::string, HookFacts> hooks;  // key "category/event"
  std::string fexit_accept_error = "not probed";  // "" : fexit/inet_csk_accept loads (the 6.1 passive-owner hook)
  // Filesystems
  std::string tracefs_mount, bpffs_mount, cgroup2_mount;  // "" when not mounted
  bool tracefs_supported = false, bpffs_supported = false;  // listed in /proc/filesystems
  // Policy tools
  std::vector<IptablesFacts> iptables;
  bool ipset_present = false;
  // Configuration and Kubernetes
  std::string config_path;
  std::optional<std::string> config_error;  // file:line:column message
  std::string kubelet_root = "/";
  bool kubelet_pods_dir = false, log_pods_dir = false, log_containers_dir = false;
  // API socket and the daemon
  std::string socket_path, group = "hostscope";
  bool group_exists = false, caller_in_group = false;
  bool socket_exists = false;
  // Topology history (config history.*; docs/topology.md "History")
  bool history_enabled = false;
  std::string history_path;
  bool history_exists = false;
  bool history_writable = true;  // the file, or before the first write its directory, is writable by root
  std::string history_error;     // the file cannot be opened, has a newer schema or fails PRAGMA integrity_check
  int history_older_schema = 0;  // the file's schema when it is older than this hostscope's (the agent migrates it)
  uint64_t history_used_bytes = 0, history_max_bytes = 0, history_rows = 0;
  uint64_t history_oldest_ns = 0, history_last_write_ns = 0;
  uint64_t now_ns = 0;  // wall clock when probed
  std::optional<nlohmann::json> health;  // the daemon's "health" reply
  std::string daemon_error;              // why no reply (not running, permission denied, ...)
};

std::vector<Check> evaluate(const NodeFacts& f);

// 0 when every check is OK (the agent can run fully), 1 when anything is degraded or failing.
int exit_code(const std::vector<Check>& checks);
std::string render_text(const std::vector<Check>& checks);
nlohmann::json render_json(const std::vector<Check>& checks);

}  // namespace hostscope::doctor
