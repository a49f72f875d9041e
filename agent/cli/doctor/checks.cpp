#include "agent/cli/doctor/checks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

#include "agent/history/store.h"

namespace hostscope::doctor {

std::string_view level_name(Level l) {
  switch (l) {
    case Level::Ok: return "ok";
    case Level::Warn: return "warn";
    case Level::Fail: return "fail";
  }
  return "?";
}

std::string predicted_hook_mode(const HookSpec& h, const NodeFacts& f) {
  HookFacts hf;
  if (auto it = f.hooks.find(h.category + "/" + h.event); it != f.hooks.end()) hf = it->second;
  if (h.has_btf && f.btf_present && hf.btf) return "tp_btf";
  if (hf.classic == Tri::Yes) return "tracepoint";
  if (hf.classic == Tri::Unknown) return "unknown";
  return "off";
}

namespace {
bool accept_hook_needed(const NodeFacts& f) {
  auto btf = [&](const char* key) {
    auto it = f.hooks.find(key);
    return f.btf_present && it != f.hooks.end() && it->second.btf;
  };
  return !btf("sock/sock_send_length") && !btf("sock/sock_recv_length");
}
}  // namespace

std::string predicted_accept_mode(const NodeFacts& f) {
  return accept_hook_needed(f) && f.fexit_accept_error.empty() ? "fexit" : "off";
}

const std::vector<HookSpec>& agent_hooks() {
  static const std::vector<HookSpec> hooks = {
      {"sock", "inet_sock_set_state", true, true, "TCP connections are seen from open to close",
       "no TCP connection can be traced"},
      {"tcp", "tcp_send_reset", true, false, "resets this host sends are reported", "resets are reported as plain closes"},
      {"tcp", "tcp_receive_reset", true, false, "resets this host receives are reported",
       "resets are reported as plain closes"},
      {"sock", "sock_send_length", true, false, "accepted connections get their owning process when it sends",
       "the server side of accepted connections gets its owner only from a receive or its close"},
      {"sock", "sock_recv_length", true, false, "accepted connections get their owning process when it receives",
       "the server side of accepted connections gets its owner only from a send or its close"},
      {"sched", "sched_process_exec", true, false, "new processes are identified as they start",
       "new processes are identified late, by /proc scans"},
      {"sched", "sched_process_fork", true, false, "new processes are identified as they start",
       "new processes are identified late, by /proc scans"},
      {"sched", "sched_process_exit", true, false, "exited processes leave the identity table at once",
       "exited processes leave the identity table late, on the periodic sweep"},
  };
  return hooks;
}

namespace {

void add(std::vector<Check>& out, std::string name, Level l, std::string msg) {
  out.push_back({std::move(name), l, std::move(msg)});
}

void kernel_checks(const NodeFacts& f, std::vector<Check>& out) {
  if (f.btf_present)
    add(out, "btf", Level::Ok, "kernel BTF is available: the agent's CO-RE programs load on this kernel as built");
  else
    add(out, "btf", Level::Fail,
        fmt::format("no usable kernel BTF at /sys/kernel/btf/vmlinux ({}): the agent cannot load its BPF programs; "
                    "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
                    f.btf_error.empty() ? "missing" : f.btf_error));
  if (!f.bpf_load_error)
    add(out, "bpf", Level::Ok, "BPF tracing programs load (CAP_BPF and CAP_PERFMON are effective)");
  else if (!f.root)
    add(out, "bpf", Level::Warn,
        fmt::format("this user cannot load BPF programs ({}): the agent runs as root; run doctor as root to check it",
                    *f.bpf_load_error));
  else
    add(out, "bpf", Level::Fail,
        fmt::format("BPF tracing programs do not load ({}): the agent cannot trace anything", *f.bpf_load_error));
}

void hook_checks(const NodeFacts& f, std::vector<Check>& out) {
  for (const auto& h : agent_hooks()) {
    std::string key = h.category + "/" + h.event;
    HookFacts hf;
    if (auto it = f.hooks.find(key); it != f.hooks.end()) hf = it->second;
    std::string name = "hook " + key;
    std::string mode = predicted_hook_mode(h, f);
    if (mode == "tp_btf") {
      add(out, name, Level::Ok, fmt::format("tp_btf/{} is available: {}", h.event, h.gives));
    } else if (hf.classic == Tri::Yes) {
      if (h.has_btf)
        add(out, name, Level::Warn,
            fmt::format("only the classic tracepoint {} is available: {}, at a higher cost per event", key, h.gives));
      else
        add(out, name, Level::Ok, fmt::format("tracepoint {} is available: {}", key, h.gives));
    } else if (hf.classic == Tri::Unknown) {
      add(out, name, Level::Warn,
          fmt::format("tracepoint {} cannot be checked: tracefs is not mounted yet (the agent mounts it at start) or "
                      "this user cannot read it; run doctor as root once the agent runs. Without it {}",
                      key, h.lost));
    } else {
      // The agent's own note for the send/receive hooks when fexit/inet_csk_accept stands in (6.1).
      const bool owner_hook = h.event == "sock_send_length" || h.event == "sock_recv_length";
      std::string lost = owner_hook && predicted_accept_mode(f) == "fexit"
                             ? "the owner of accepted connections is taken at accept() instead (fexit/inet_csk_accept)"
                             : h.lost;
      add(out, name, h.required ? Level::Fail : Level::Warn,
          fmt::format("neither tp_btf/{} nor tracepoint {} exists on this kernel: {}", h.event, key, lost));
    }
  }
  // Without both send/receive hooks (6.1), the agent takes the passive owner at accept() with fexit, where the
  // kernel runs BPF trampolines; predicted exactly as the agent decides (agent/bpf/tcp_tracer.cpp).
  if (!accept_hook_needed(f)) return;
  if (predicted_accept_mode(f) == "fexit")
    add(out, "hook fexit/inet_csk_accept", Level::Ok,
        "fexit/inet_csk_accept loads: accepted connections get their owning process at accept()");
  else
    add(out, "hook fexit/inet_csk_accept", Level::Warn,
        fmt::format("fexit/inet_csk_accept does not load ({}): without sock_send_length/sock_recv_length either, the "
                    "server side of accepted connections gets its owner only when it closes",
                    f.fexit_accept_error));
}

void mount_check(std::vector<Check>& out, const char* name, const std::string& mount, bool supported,
                 const char* fstype, const char* where, const char* needed_for) {
  if (!mount.empty())
    add(out, name, Level::Ok, fmt::format("{} is mounted at {}", fstype, mount));
  else if (supported)
    add(out, name, Level::Ok,
        fmt::format("{} is not mounted yet; the agent (or the hostscope service before it starts) mounts it at {}",
                    fstype, where));
  else
    add(out, name, Level::Warn, fmt::format("the kernel has no {}: {}", fstype, needed_for));
}

void filesystem_checks(const NodeFacts& f, std::vector<Check>& out) {
  mount_check(out, "tracefs", f.tracefs_mount, f.tracefs_supported, "tracefs", "/sys/kernel/tracing",
              "classic tracepoints (the fallback where tp_btf cannot attach) are unavailable");
  mount_check(out, "bpffs", f.bpffs_mount, f.bpffs_supported, "bpffs", "/sys/fs/bpf",
              "BPF objects cannot be pinned");
  if (!f.cgroup2_mount.empty())
    add(out, "cgroup v2", Level::Ok,
        fmt::format("cgroup v2 is mounted at {}: connections are tied to systemd units, containers and pods by cgroup",
                    f.cgroup2_mount));
  else
    add(out, "cgroup v2", Level::Warn,
        "cgroup v2 is not mounted: cgroup ids are unknown, so policy cannot match services by cgroup; names still "
        "come from /proc/<pid>/cgroup");
}

void policy_tool_checks(const NodeFacts& f, std::vector<Check>& out) {
  std::vector<std::string> present, missing;
  std::string default_version;
  for (const auto& t : f.iptables) {
    (t.present ? present : missing).push_back(t.binary);
    if (t.binary == "iptables" && t.present) default_version = t.version;
  }
  if (present.empty())
    add(out, "iptables", Level::Warn, "no iptables tools are installed: `hostscope policy apply` cannot enforce policy");
  else if (missing.empty())
    add(out, "iptables", Level::Ok,
        fmt::format("{}; policy can use every variant ({})",
                    default_version.empty() ? "iptables is installed" : default_version + " is the default",
                    fmt::join(present, ", ")));
  else
    add(out, "iptables", Level::Warn,
        fmt::format("{} missing: policy with `iptables:` set to that variant (or IPv6 rules) cannot be applied; "
                    "present: {}",
                    fmt::join(missing, ", "), fmt::join(present, ", ")));
  if (f.ipset_present)
    add(out, "ipset", Level::Ok, "ipset is installed: long peer lists become ipsets");
  else
    add(out, "ipset", Level::Warn,
        "ipset is not installed: policies whose peer lists exceed --ipset-threshold cannot be applied");
}

std::string under(const std::string& root, const char* rel) { return (std::filesystem::path(root) / rel).string(); }

void config_and_kube_checks(const NodeFacts& f, std::vector<Check>& out) {
  if (f.config_error)
    add(out, "config", Level::Fail, fmt::format("the agent refuses its configuration: {}", *f.config_error));
  else
    add(out, "config", Level::Ok, fmt::format("configuration {} is valid", f.config_path));
  bool logs = f.log_pods_dir || f.log_containers_dir;
  if (logs)
    add(out, "kubelet", Level::Ok,
        fmt::format("kubelet log directories found under {}: containers are named by pod, namespace and container",
                    f.kubelet_root));
  else if (f.kubelet_pods_dir)
    add(out, "kubelet", Level::Warn,
        fmt::format("{} exists but {} does not: pods will show as bare container ids; set identity.kubelet_root if "
                    "the kubelet's files are under another root",
                    under(f.kubelet_root, "var/lib/kubelet/pods"), under(f.kubelet_root, "var/log/pods")));
  else
    add(out, "kubelet", Level::Ok,
        fmt::format("no kubelet under {} (not a Kubernetes node): services are named from systemd units, containers "
                    "and executables",
                    f.kubelet_root));
}

// The kernel edge table (kernel.edge_table_size) as the agent's health reply shows it: off, its occupancy, and the
// connections it had no room for (sent as events instead; nothing lost, but the table should be larger).
void add_edge_table_check(std::vector<Check>& out, const nlohmann::json& h) {
  if (!h.contains("edge_table") || !h["edge_table"].is_object()) return;  // an agent from before the table
  const auto& t = h["edge_table"];
  const uint64_t cap = t.value("capacity", uint64_t{0}), n = t.value("entries", uint64_t{0}),
                 overflow = t.value("overflow", uint64_t{0});
  if (!cap) {
    add(out, "agent edge table", Level::Ok, "kernel edge aggregation is off (kernel.edge_table_size: 0)");
    return;
  }
  std::string usage = fmt::format("kernel edge table: {} of {} entries", n, cap);
  if (overflow)
    add(out, "agent edge table", Level::Warn,
        fmt::format("{}; {} connection opens or closes found no room and were sent as events instead: raise "
                    "kernel.edge_table_size",
                    usage, overflow));
  else if (n * 10 >= cap * 9)
    add(out, "agent edge table", Level::Warn, fmt::format("{} (90% or more): raise kernel.edge_table_size", usage));
  else
    add(out, "agent edge table", Level::Ok, usage + ", none overflowed");
}

void socket_checks(const NodeFacts& f, std::vector<Check>& out) {
  if (!f.group_exists)
    add(out, "group", Level::Warn,
        fmt::format("group {} does not exist: only root can use the agent's socket", f.group));
  else if (f.root || f.caller_in_group)
    add(out, "group", Level::Ok,
        fmt::format("group {} exists and this user may use the agent's socket", f.group));
  else
    add(out, "group", Level::Warn,
        fmt::format("this user is not in group {}: add it (`adduser $USER {}`) to use the agent without root",
                    f.group, f.group));

  if (!f.health) {
    std::string why = f.daemon_error.empty() ? "no answer" : f.daemon_error;
    add(out, "agent", Level::Warn,
        fmt::format("no agent answers on {} ({}): start it (`systemctl start hostscope`); until then CLI commands load "
                    "the BPF programs themselves",
                    f.socket_path, why));
    return;
  }
  const auto& h = *f.health;
  auto num = [&](const char* section, const char* key) -> uint64_t {
    if (!h.contains(section) || !h[section].is_object()) return 0;
    return h[section].value(key, uint64_t{0});
  };
  uint64_t lost = num("kernel", "lost_ringbuf") + num("kernel", "lost_reentry");
  add(out, "agent", Level::Ok,
      fmt::format("agent {} is running on {} with {} hooks; {} events delivered", h.value("version", std::string("?")),
                  f.socket_path, h.value("attach_mode", std::string("?")), h.value("events_delivered", uint64_t{0})));
  if (lost)
    add(out, "agent events", Level::Warn,
        fmt::format("the agent lost {} events ({} ring buffer full, {} hook re-entered): raise kernel.ring_buffer_mb",
                    lost, num("kernel", "lost_ringbuf"), num("kernel", "lost_reentry")));
  else
    add(out, "agent events", Level::Ok, "the agent has lost no events");
  add_edge_table_check(out, h);
  if (h.contains("degraded") && h["degraded"].is_array())
    for (const auto& d : h["degraded"])
      if (d.is_string()) add(out, "agent degraded", Level::Warn, d.get<std::string>());
  // The agent reports the hook each program got; it must be what the checks above predicted for this kernel.
  if (h.contains("hooks") && h["hooks"].is_object()) {
    std::vector<std::string> differ;
    for (const auto& spec : agent_hooks()) {
      std::string key = spec.category + "/" + spec.event;
      if (!h["hooks"].contains(key) || !h["hooks"][key].is_string()) continue;
      std::string got = h["hooks"][key].get<std::string>(), want = predicted_hook_mode(spec, f);
      if (want != "unknown" && got != want) differ.push_back(fmt::format("{} is {} (predicted {})", key, got, want));
    }
    if (h["hooks"].contains("fexit/inet_csk_accept") && h["hooks"]["fexit/inet_csk_accept"].is_string()) {
      std::string got = h["hooks"]["fexit/inet_csk_accept"].get<std::string>(), want = predicted_accept_mode(f);
      if (got != want) differ.push_back(fmt::format("fexit/inet_csk_accept is {} (predicted {})", got, want));
    }
    if (differ.empty())
      add(out, "agent hooks", Level::Ok, "the agent attached every hook as predicted for this kernel");
    else
      add(out, "agent hooks", Level::Warn,
          fmt::format("the agent's hooks differ from the prediction: {}; the agent may have been started with a "
                      "forced attach mode (kernel.attach in its config), or fell back after a load failure (see its log)",
                      fmt::join(differ, "; ")));
  }
}

// The history file as `topology --at/--between`, `topology diff`, `top --replay` and `policy ... --since` read it, and
// as the running agent writes it (its health reply says whether its writer gave up).
void history_checks(const NodeFacts& f, std::vector<Check>& out) {
  if (!f.history_enabled) {
    add(out, "history", Level::Ok,
        f.history_exists
            ? fmt::format("history is off (history.enabled: false); {} still holds an older history to query", f.history_path)
            : "history is off (history.enabled: false): `topology --at`, `topology diff` and `top --replay` have no "
              "history to read");
    return;
  }
  if (!f.history_error.empty()) {
    add(out, "history", Level::Fail,
        fmt::format("history file {}: {}: the agent runs without history until it is moved away", f.history_path,
                    f.history_error));
    return;
  }
  if (!f.history_writable) {
    add(out, "history", Level::Fail,
        fmt::format("history file {} (or its directory) is not writable: the agent runs without history", f.history_path));
    return;
  }
  if (f.history_older_schema) {
    add(out, "history", Level::Warn,
        fmt::format("history file {} has schema v{} (this hostscope writes v{}): the agent migrates it when it next "
                    "opens it (restart the agent after an upgrade); until then `topology --at` and `history status` "
                    "cannot read it",
                    f.history_path, f.history_older_schema, history::kSchemaVersion));
    return;
  }
  if (f.health && f.health->contains("history") && (*f.health)["history"].is_object() &&
      !(*f.health)["history"].value("ok", true)) {
    add(out, "history", Level::Fail,
        fmt::format("the agent stopped writing history to {}: {}", f.history_path,
                    (*f.health)["history"].value("error", std::string("unknown error"))));
    return;
  }
  if (!f.history_exists) {
    add(out, "history", Level::Ok, fmt::format("history is on; the agent creates {} with its first minute", f.history_path));
    return;
  }
  const double used = f.history_max_bytes ? 100.0 * double(f.history_used_bytes) / double(f.history_max_bytes) : 0;
  const uint64_t stale_ns = 10ull * 60 * 1'000'000'000;
  if (f.health && f.history_last_write_ns && f.now_ns > f.history_last_write_ns + stale_ns) {
    add(out, "history", Level::Warn,
        fmt::format("the agent runs but last wrote history {} min ago ({})", (f.now_ns - f.history_last_write_ns) / 60'000'000'000ull,
                    f.history_path));
    return;
  }
  add(out, "history", Level::Ok,
      fmt::format("history {}: {} rows, {:.1f} MiB ({:.0f}% of history.max_bytes; the oldest rows go first beyond it){}",
                  f.history_path, f.history_rows, double(f.history_used_bytes) / (1 << 20), used,
                  f.history_oldest_ns ? fmt::format(", from {} s ago", (f.now_ns - std::min(f.now_ns, f.history_oldest_ns)) / 1'000'000'000ull) : ""));
}

}  // namespace

std::vector<Check> evaluate(const NodeFacts& f) {
  std::vector<Check> out;
  kernel_checks(f, out);
  hook_checks(f, out);
  filesystem_checks(f, out);
  policy_tool_checks(f, out);
  config_and_kube_checks(f, out);
  socket_checks(f, out);
  history_checks(f, out);
  return out;
}

int exit_code(const std::vector<Check>& checks) {
  for (const auto& c : checks)
    if (c.level != Level::Ok) return 1;
  return 0;
}

std::string render_text(const std::vector<Check>& checks) {
  std::string s;
  size_t warn = 0, fail = 0;
  for (const auto& c : checks) {
    std::string tag = c.level == Level::Ok ? "OK" : c.level == Level::Warn ? "WARN" : "FAIL";
    s += fmt::format("{:<5} {:<32} {}\n", tag, c.name, c.message);
    warn += c.level == Level::Warn;
    fail += c.level == Level::Fail;
  }
  if (!fail && !warn)
    s += "hostscope can run fully on this node.\n";
  else
    s += fmt::format("{} failing, {} degraded: {}\n", fail, warn,
                     fail ? "the agent cannot run as it should" : "the agent runs with the degradations above");
  return s;
}

nlohmann::json render_json(const std::vector<Check>& checks) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : checks) arr.push_back({{"name", c.name}, {"status", level_name(c.level)}, {"message", c.message}});
  return {{"checks", arr}, {"exit_code", exit_code(checks)}};
}

}  // namespace hostscope::doctor
