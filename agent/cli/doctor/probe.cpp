#include "agent/cli/doctor/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <grp.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "agent/bpf/libbpf_util.h"
#include "agent/daemon/agent.h"
#include "agent/history/store.h"
#include "agent/util/clock.h"
#include "agent/identity/process_table.h"
#include "agent/util/mounts.h"
#include "common/api_client.h"

namespace hostscope::doctor {

namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  auto r = identity::read_small_file(p, 4 << 20);
  return r ? *r : std::string();
}

// Runs a fixed command (never user input) and returns its first output line.
std::string first_line_of(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[512];
    if (fgets(buf, sizeof(buf), p)) out = buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string find_tool(const std::string& name) {
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/local/sbin:/usr/sbin:/sbin";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      fs::path cand = fs::path(path.substr(start, end - start)) / name;
      if (::access(cand.c_str(), X_OK) == 0) return cand.string();
    }
    start = end + 1;
  }
  return "";
}

void probe_kernel(NodeFacts& f) {
  bpf::KernelHooks kernel;  // the same probe the agent chooses its hooks with
  if (!kernel.has_btf())
    f.btf_error = std::strerror(kernel.btf_errno());
  else
    f.btf_present = true;
  // The smallest tracing program: r0 = 0; exit. Needs CAP_BPF and CAP_PERFMON like the agent's programs.
  bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
  insns[1].code = BPF_JMP | BPF_EXIT;
  int fd = bpf_prog_load(BPF_PROG_TYPE_TRACEPOINT, "hs_doctor", "GPL", insns, 2, nullptr);
  if (fd >= 0)
    ::close(fd);
  else
    f.bpf_load_error = fmt::format("{} ({})", Error::errno_name(-fd), std::strerror(-fd));

  for (const auto& h : agent_hooks()) {
    HookFacts hf;
    hf.btf = h.has_btf && kernel.btf_tracepoint(h.event);
    if (!f.tracefs_mount.empty()) {
      auto classic = kernel.classic_tracepoint(h.category, h.event, f.tracefs_mount);
      hf.classic = !classic ? Tri::Unknown : *classic ? Tri::Yes : Tri::No;
    }
    f.hooks[h.category + "/" + h.event] = hf;
  }
  f.fexit_accept_error = kernel.fexit_error("inet_csk_accept");
}

void probe_tools(NodeFacts& f) {
  for (const char* bin : {"iptables", "iptables-nft", "iptables-legacy", "ip6tables", "ip6tables-nft", "ip6tables-legacy"}) {
    IptablesFacts t;
    t.binary = bin;
    std::string path = find_tool(bin);
    t.present = !path.empty();
    if (t.present && t.binary == "iptables") t.version = first_line_of(path + " --version");
    f.iptables.push_back(std::move(t));
  }
  f.ipset_present = !find_tool("ipset").empty();
}

bool caller_has_group(gid_t gid) {
  if (getegid() == gid || getgid() == gid) return true;
  int n = getgroups(0, nullptr);
  std::vector<gid_t> gids(n > 0 ? size_t(n) : 0);
  if (n > 0 && getgroups(n, gids.data()) == n)
    for (gid_t x : gids)
      if (x == gid) return true;
  return false;
}

}  // namespace

bool filesystem_supported(std::string_view text, std::string_view fstype) {
  // Lines: "nodev\ttracefs" or "\text4".
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    size_t tab = line.rfind('\t');
    if (line.substr(tab == std::string_view::npos ? 0 : tab + 1) == fstype) return true;
  }
  return false;
}

// The history file read-only (never created or changed): schema, integrity, size and span.
void probe_history(NodeFacts& f, const daemon::Config& cfg) {
  f.history_enabled = cfg.history.enabled;
  f.history_path = cfg.history.path;
  f.history_max_bytes = cfg.history.max_bytes;
  f.now_ns = clock_ns(CLOCK_REALTIME);
  std::error_code ec;
  f.history_exists = fs::exists(f.history_path, ec);
  const std::string dir = fs::path(f.history_path).parent_path().string();
  if (f.history_exists)
    f.history_writable = access(f.history_path.c_str(), W_OK) == 0;
  else if (fs::exists(dir, ec))
    f.history_writable = access(dir.c_str(), W_OK) == 0;  // a missing directory is created by the agent
  if (!f.history_exists) return;
  auto store = history::Store::open(f.history_path, {}, true);
  if (!store) {
    // An older schema (a file from before an upgrade) is not damage: the agent migrates it when it next opens it.
    if (auto db = history::Db::open(f.history_path, true)) {
      auto v = history::schema_version(*db);
      if (v && *v > 0 && *v < history::kSchemaVersion) {
        f.history_older_schema = *v;
        return;
      }
    }
    f.history_error = store.error().str();
    return;
  }
  auto check = store->integrity_check();
  if (!check || *check != "ok") {
    f.history_error = check ? "integrity check: " + *check : check.error().str();
    return;
  }
  auto st = store->status();
  if (!st) {
    f.history_error = st.error().str();
    return;
  }
  f.history_used_bytes = st->used_bytes;
  f.history_rows = st->rows;
  f.history_oldest_ns = st->oldest_ns;
  if (auto it = st->counters.find("last_write_ns"); it != st->counters.end()) f.history_last_write_ns = it->second;
}

NodeFacts probe(const ProbeOptions& o) {
  NodeFacts f;
  f.root = geteuid() == 0;

  auto mounts = parse_mountinfo(read_text("/proc/self/mountinfo"));
  auto filesystems = read_text("/proc/filesystems");
  // The agent uses the canonical paths only (agent/util/mounts.h).
  for (const auto& m : mounts) {
    if (m.fstype == "tracefs" && m.point == "/sys/kernel/tracing") f.tracefs_mount = m.point;
    if (m.fstype == "bpf" && m.point == "/sys/fs/bpf") f.bpffs_mount = m.point;
  }
  f.cgroup2_mount = first_mount_of_type(mounts, "cgroup2");
  f.tracefs_supported = filesystem_supported(filesystems, "tracefs");
  f.bpffs_supported = filesystem_supported(filesystems, "bpf");
  probe_kernel(f);
  probe_tools(f);

  f.config_path = o.config_path;
  daemon::Config cfg;
  if (auto c = daemon::load_agent_config(o.config_path, o.config_is_default))
    cfg = *c;
  else
    f.config_error = c.error().str();
  f.kubelet_root = cfg.identity.kubelet_root;
  std::error_code ec;
  f.kubelet_pods_dir = fs::is_directory(fs::path(f.kubelet_root) / "var/lib/kubelet/pods", ec);
  f.log_pods_dir = fs::is_directory(fs::path(f.kubelet_root) / "var/log/pods", ec);
  f.log_containers_dir = fs::is_directory(fs::path(f.kubelet_root) / "var/log/containers", ec);

  f.socket_path = o.socket_path.empty() ? cfg.api.socket : o.socket_path;
  f.group = cfg.api.group;
  if (group* g = getgrnam(f.group.c_str())) {
    f.group_exists = true;
    f.caller_in_group = caller_has_group(g->gr_gid);
  }
  probe_history(f, cfg);
  f.socket_exists = fs::exists(f.socket_path, ec);
  if (auto h = api::call(f.socket_path, "health", nlohmann::json::object(), 3000))
    f.health = *h;
  else
    f.daemon_error = h.error().str();
  return f;
}

}  // namespace hostscope::doctor
