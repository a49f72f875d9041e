#include "agent/identity/process_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>

#include "agent/util/mounts.h"
#include "common/fd.h"

namespace hostscope::identity {

namespace fs = std::filesystem;

struct ProcessTable::Entry {
  std::shared_ptr<const ProcessIdentity> id;
  bool exited = false;
  bool go_pushed = false;  // offsets are in the kernel's go_procs map for this pid
  std::chrono::steady_clock::time_point expires;
  std::list<uint32_t>::iterator pos;  // in live_order_ or exited_order_
};

namespace {

constexpr size_t kMaxProcFile = 64 * 1024;

uint64_t tick_ns() {
  static const uint64_t t = [] {
    long hz = sysconf(_SC_CLK_TCK);
    return uint64_t(1'000'000'000ull / uint64_t(hz > 0 ? hz : 100));
  }();
  return t;
}

// Same process: the start times agree at clock-tick granularity (what /proc shows); unknown matches anything.
bool same_start(uint64_t a_ns, uint64_t b_ns) { return a_ns == 0 || b_ns == 0 || a_ns / tick_ns() == b_ns / tick_ns(); }

template <typename T>
bool parse_num(std::string_view s, T& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::optional<fs::path> find_cgroup2_root() {
  auto text = read_small_file("/proc/self/mountinfo", 1 << 20);
  if (!text) return std::nullopt;
  std::string mnt = first_mount_of_type(parse_mountinfo(*text), "cgroup2");
  if (mnt.empty()) return std::nullopt;
  return fs::path(mnt);
}

GoProcessInfo go_info_of(const GoBinaryIdentity& g) {
  GoProcessInfo gi;
  const auto& bi = *g.build_info;
  gi.version = bi.go_version;
  gi.path = bi.path;
  gi.module = bi.main.path;
  gi.module_version = bi.main.version;
  auto get = [&](std::string_view k) {
    const std::string* s = bi.setting(k);
    return s ? *s : std::string();
  };
  gi.vcs_revision = get("vcs.revision");
  gi.vcs_time = get("vcs.time");
  if (const std::string* m = bi.setting("vcs.modified")) gi.vcs_modified = *m == "true";
  gi.goos = get("GOOS");
  gi.goarch = get("GOARCH");
  gi.offsets = g.offsets;
  gi.offsets_error = g.offsets_error;
  return gi;
}

}  // namespace

std::string go_main_module(const GoProcessInfo& g) {
  if (g.module.empty()) return "";
  if (g.module_version.empty() || g.module_version == "(devel)") return g.module;
  return g.module + "@" + g.module_version;
}

std::string_view identity_origin_name(IdentityOrigin o) {
  switch (o) {
    case IdentityOrigin::scan: return "scan";
    case IdentityOrigin::exec: return "exec";
    case IdentityOrigin::fork: return "fork";
  }
  return "?";
}

Result<std::string> read_small_file(const fs::path& p, size_t max_bytes) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errorf_errno(errno, "open {}", p.string());
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, std::min(sizeof(buf), max_bytes - out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errorf_errno(errno, "read {}", p.string());
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

std::optional<ProcStat> parse_proc_stat(std::string_view text) {
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
  ProcStat st;
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  // Fields from 3 (state) on, space-separated; starttime is field 22.
  std::vector<std::string_view> f;
  while (!rest.empty() && f.size() < 20) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    size_t sp = rest.find_first_of(" \n");
    f.push_back(rest.substr(0, sp));
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
  }
  if (f.size() < 20 || f[0].size() != 1) return std::nullopt;
  st.state = f[0][0];
  if (!parse_num(f[1], st.ppid) || !parse_num(f[19], st.start_ticks)) return std::nullopt;
  return st;
}

std::string join_cmdline(std::string_view s, size_t max_bytes, bool* truncated) {
  while (!s.empty() && s.back() == '\0') s.remove_suffix(1);
  std::string out(s.substr(0, max_bytes));
  std::replace(out.begin(), out.end(), '\0', ' ');
  if (truncated) *truncated = s.size() > max_bytes;
  return out;
}

ProcessTable::ProcessTable(ProcessTableOptions opts)
    : opts_(std::move(opts)), go_cache_(opts_.go_cache_capacity, opts_.go_parser) {
  if (opts_.capacity == 0) opts_.capacity = 1;
  if (opts_.kube) kube_ = std::make_unique<KubeMetaCache>(*opts_.kube);
  if (opts_.cgroup2_root)
    cgroup2_root_ = *opts_.cgroup2_root;
  else if (auto r = find_cgroup2_root())
    cgroup2_root_ = *r;
  stats_.capacity = opts_.capacity;
}

ProcessTable::~ProcessTable() = default;

std::shared_ptr<const ProcessIdentity> ProcessTable::lookup(uint32_t pid) const {
  std::shared_lock lk(mu_);
  auto it = map_.find(pid);
  if (it == map_.end()) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second->id;
}

bool ProcessTable::is_live(uint32_t pid) const {
  std::shared_lock lk(mu_);
  auto it = map_.find(pid);
  return it != map_.end() && !it->second->exited;
}

std::vector<std::shared_ptr<const ProcessIdentity>> ProcessTable::snapshot(bool include_exited) const {
  std::vector<std::shared_ptr<const ProcessIdentity>> out;
  {
    std::shared_lock lk(mu_);
    out.reserve(map_.size());
    for (const auto& [pid, e] : map_)
      if (include_exited || !e->exited) out.push_back(e->id);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->pid < b->pid; });
  return out;
}

ProcessTableStats ProcessTable::stats() const {
  std::shared_lock lk(mu_);
  std::lock_guard sl(stats_mu_);
  ProcessTableStats s = stats_;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.size = map_.size();
  s.live = live_order_.size();
  s.pending = pending_.size();
  s.capacity = opts_.capacity;
  return s;
}

void ProcessTable::fill_cgroup(ProcessIdentity& id, const CgroupFacts& f) const {
  id.cgroup = f.cg.path;
  id.systemd_unit = f.cg.systemd_unit;
  id.container_id = f.cg.container_id;
  id.pod_uid = f.cg.pod_uid;
  id.k8s_namespace = f.ns.value_or("");
  id.pod = f.pod.value_or("");
  id.container = f.container.value_or("");
}

void ProcessTable::decide(ProcessIdentity& id) const {
  ProcessFacts facts;
  facts.comm = id.comm;
  facts.exe = id.exe;
  facts.cgroup_path = id.cgroup;
  facts.systemd_unit = id.systemd_unit;
  if (id.go && !id.go->module.empty()) facts.go_module = id.go->module;
  if (!id.k8s_namespace.empty()) facts.k8s_namespace = id.k8s_namespace;
  if (!id.pod.empty()) {
    facts.k8s_pod = id.pod;
    id.workload = workload_from_pod_name(id.pod).name;
    facts.k8s_workload = id.workload;
  }
  if (!id.container.empty()) facts.k8s_container = id.container;
  auto d = decide_service(facts, opts_.rules);
  id.service = std::move(d.name);
  id.service_source = d.source;
  std::string go_module = id.go ? go_main_module(*id.go) : std::string();
  if (id.workload.empty() && go_module.empty()) {
    id.end_identity.reset();
  } else if (!id.end_identity || id.end_identity->workload != id.workload || id.end_identity->go_module != go_module) {
    id.end_identity =
        std::make_shared<const topology::EndIdentity>(topology::EndIdentity{id.workload, std::move(go_module)});
  }
}

std::optional<ProcessTable::CgroupFacts> ProcessTable::cgroup_facts_locked(uint64_t cgroup_id) const {
  if (!cgroup_id) return std::nullopt;
  auto it = cgroups_.find(cgroup_id);
  if (it == cgroups_.end()) return std::nullopt;
  return it->second;
}

void ProcessTable::remember_cgroup_locked(uint64_t cgroup_id, const CgroupFacts& f) {
  if (!cgroup_id) return;
  // Bounded like the process table itself; cgroups are few, so clearing on overflow is simpler than an LRU.
  if (cgroups_.size() >= opts_.capacity && !cgroups_.count(cgroup_id)) cgroups_.clear();
  cgroups_[cgroup_id] = f;
}

void ProcessTable::enqueue_locked(Work w) {
  if (pending_.size() >= opts_.max_pending) {
    std::lock_guard sl(stats_mu_);
    stats_.pending_dropped++;
    return;
  }
  pending_.push_back(w);
}

void ProcessTable::evict_one_locked() {
  uint32_t victim;
  bool exited = !exited_order_.empty();
  if (exited) {
    victim = exited_order_.front();
  } else if (!live_order_.empty()) {
    victim = live_order_.front();
  } else {
    return;
  }
  auto it = map_.find(victim);
  if (it == map_.end()) return;  // cannot happen: lists and map change together
  if (it->second->go_pushed) enqueue_locked({Work::Kind::go_remove, victim, 0});
  (exited ? exited_order_ : live_order_).erase(it->second->pos);
  map_.erase(it);
  std::lock_guard sl(stats_mu_);
  (exited ? stats_.evicted_exited : stats_.evicted_live)++;
}

void ProcessTable::store_locked(std::shared_ptr<const ProcessIdentity> id, bool go_pushed) {
  uint32_t pid = id->pid;
  auto it = map_.find(pid);
  if (it != map_.end()) {
    // A new image or a new process with a reused pid replaces the entry; it is live again.
    auto& e = *it->second;
    if (e.exited) {
      exited_order_.erase(e.pos);
      e.pos = live_order_.insert(live_order_.end(), pid);
      e.exited = false;
    }
    e.id = std::move(id);
    e.go_pushed = e.go_pushed || go_pushed;
    return;
  }
  while (map_.size() >= opts_.capacity) evict_one_locked();
  auto e = std::make_unique<Entry>();
  e->id = std::move(id);
  e->go_pushed = go_pushed;
  e->pos = live_order_.insert(live_order_.end(), pid);
  map_.emplace(pid, std::move(e));
  std::lock_guard sl(stats_mu_);
  stats_.inserts++;
  stats_.max_size = std::max(stats_.max_size, map_.size());
}

void ProcessTable::mark_exited_locked(uint32_t pid) {
  auto it = map_.find(pid);
  if (it == map_.end() || it->second->exited) return;
  auto& e = *it->second;
  live_order_.erase(e.pos);
  e.pos = exited_order_.insert(exited_order_.end(), pid);
  e.exited = true;
  e.expires = opts_.clock() + opts_.exit_grace;
  // The kernel entry goes now: a reused pid must not inherit these offsets.
  if (e.go_pushed) {
    enqueue_locked({Work::Kind::go_remove, pid, 0});
    e.go_pushed = false;
  }
}

void ProcessTable::expire_locked(std::chrono::steady_clock::time_point now) {
  while (!exited_order_.empty()) {
    auto it = map_.find(exited_order_.front());
    if (it == map_.end()) {
      exited_order_.pop_front();
      continue;
    }
    if (it->second->expires > now) break;
    exited_order_.pop_front();
    map_.erase(it);
    std::lock_guard sl(stats_mu_);
    stats_.expired++;
  }
}

void ProcessTable::expire() {
  std::unique_lock lk(mu_);
  expire_locked(opts_.clock());
}

void ProcessTable::apply(const ProcessEvent& ev) {
  if (ev.pid == 0) return;
  std::unique_lock lk(mu_);
  expire_locked(opts_.clock());
  switch (ev.kind) {
    case ProcessEvent::Kind::exec: {
      {
        std::lock_guard sl(stats_mu_);
        stats_.exec_events++;
      }
      auto id = std::make_shared<ProcessIdentity>();
      id->pid = ev.pid;
      id->ppid = ev.ppid;
      id->uid = ev.uid;
      id->start_boottime_ns = ev.start_boottime_ns;
      id->comm = std::string(ev.comm);
      id->exe = std::string(ev.filename);
      id->cmdline = join_cmdline(ev.args, opts_.max_cmdline, &id->cmdline_truncated);
      id->cmdline_truncated = id->cmdline_truncated || ev.args_truncated;
      id->cgroup_id = ev.cgroup_id;
      id->origin = IdentityOrigin::exec;
      if (auto f = cgroup_facts_locked(ev.cgroup_id)) {
        fill_cgroup(*id, *f);
      } else if (auto pit = map_.find(ev.ppid); pit != map_.end() && pit->second->id->cgroup_id == ev.cgroup_id) {
        // Still in the parent's cgroup (the common case): its cgroup and Kubernetes facts apply.
        const auto& p = *pit->second->id;
        id->cgroup = p.cgroup;
        id->systemd_unit = p.systemd_unit;
        id->container_id = p.container_id;
        id->pod_uid = p.pod_uid;
        id->k8s_namespace = p.k8s_namespace;
        id->pod = p.pod;
        id->container = p.container;
      }
      decide(*id);
      if (auto it = map_.find(ev.pid); it != map_.end() && it->second->go_pushed) {
        // Same pid, new image: the old image's offsets do not apply to the new one.
        enqueue_locked({Work::Kind::go_remove, ev.pid, 0});
        it->second->go_pushed = false;
      }
      store_locked(std::move(id), false);
      enqueue_locked({Work::Kind::enrich, ev.pid, ev.start_boottime_ns});
      break;
    }
    case ProcessEvent::Kind::fork: {
      {
        std::lock_guard sl(stats_mu_);
        stats_.fork_events++;
      }
      if (ev.maybe_thread) {
        enqueue_locked({Work::Kind::check_thread, ev.pid, 0});
        break;
      }
      std::shared_ptr<ProcessIdentity> id;
      if (auto it = map_.find(ev.ppid); it != map_.end()) {
        id = std::make_shared<ProcessIdentity>(*it->second->id);
      } else {
        id = std::make_shared<ProcessIdentity>();
        id->comm = std::string(ev.comm);
        if (auto f = cgroup_facts_locked(ev.cgroup_id)) fill_cgroup(*id, *f);
        decide(*id);
      }
      id->pid = ev.pid;
      id->ppid = ev.ppid;
      id->uid = ev.uid;
      id->start_boottime_ns = ev.start_boottime_ns;
      id->cgroup_id = ev.cgroup_id ? ev.cgroup_id : id->cgroup_id;
      id->origin = IdentityOrigin::fork;
      id->proc_read = false;
      store_locked(std::move(id), false);
      enqueue_locked({Work::Kind::enrich, ev.pid, ev.start_boottime_ns});
      break;
    }
    case ProcessEvent::Kind::exit: {
      {
        std::lock_guard sl(stats_mu_);
        stats_.exit_events++;
      }
      auto it = map_.find(ev.pid);
      if (it != map_.end() && same_start(it->second->id->start_boottime_ns, ev.start_boottime_ns))
        mark_exited_locked(ev.pid);
      break;
    }
  }
}

void ProcessTable::request_refresh(uint32_t pid) {
  if (!pid) return;
  std::unique_lock lk(mu_);
  for (const auto& w : pending_)
    if (w.kind == Work::Kind::enrich && w.pid == pid) return;  // already queued
  auto it = map_.find(pid);
  enqueue_locked({Work::Kind::enrich, pid, it == map_.end() ? 0 : it->second->id->start_boottime_ns});
}

uint64_t ProcessTable::cgroup_id_of(const std::string& path) const {
  if (cgroup2_root_.empty() || path.empty()) return 0;
  struct stat st{};
  fs::path p = cgroup2_root_ / fs::path(path).relative_path();
  return ::stat(p.c_str(), &st) == 0 ? uint64_t(st.st_ino) : 0;
}

Result<std::shared_ptr<ProcessIdentity>> ProcessTable::read_proc(uint32_t pid, const ProcessIdentity* base) {
  const fs::path dir = opts_.proc_root / std::to_string(pid);
  auto stat_text = read_small_file(dir / "stat", 4096);
  if (!stat_text) return stat_text.error();
  auto st = parse_proc_stat(*stat_text);
  if (!st) return errorf("{}: unparsable", (dir / "stat").string());
  if (st->state == 'Z' || st->state == 'X') return errorf("process {} has exited", pid);
  const uint64_t start_ns = st->start_ticks * tick_ns();
  if (base && !same_start(base->start_boottime_ns, start_ns))
    return errorf("process {} was replaced (pid reused)", pid);

  auto id = base ? std::make_shared<ProcessIdentity>(*base) : std::make_shared<ProcessIdentity>();
  id->pid = pid;
  id->ppid = st->ppid;
  if (!id->start_boottime_ns) id->start_boottime_ns = start_ns;
  // The exec event's comm is the image's name; /proc may already show a thread name set by the program.
  if (id->comm.empty() || !base || base->origin != IdentityOrigin::exec) id->comm = st->comm;
  if (auto status = read_small_file(dir / "status", kMaxProcFile)) {
    size_t p = status->find("\nUid:");
    if (p != std::string::npos) {
      std::string_view v = std::string_view(*status).substr(p + 5);
      while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.remove_prefix(1);
      parse_num(v.substr(0, v.find_first_of("\t \n")), id->uid);
    }
  }
  std::error_code ec;
  auto exe = fs::read_symlink(dir / "exe", ec);
  if (!ec) id->exe = exe.string();  // kernel threads have no exe
  if (auto cmd = read_small_file(dir / "cmdline", opts_.max_cmdline + 1)) {
    if (!cmd->empty()) id->cmdline = join_cmdline(*cmd, opts_.max_cmdline, &id->cmdline_truncated);
  }
  if (auto cgt = read_small_file(dir / "cgroup", kMaxProcFile)) {
    CgroupFacts f;
    f.cg = parse_proc_cgroup(*cgt);
    if (kube_) {
      ProcessFacts pf;
      add_cgroup_facts(pf, f.cg, kube_.get());
      f.ns = pf.k8s_namespace;
      f.pod = pf.k8s_pod;
      f.container = pf.k8s_container;
    }
    fill_cgroup(*id, f);
    id->cgroup_id = cgroup_id_of(f.cg.path);
    std::unique_lock lk(mu_);
    // Kubernetes names may appear after the container starts: cache only complete answers for pods.
    if (!f.cg.in_pod() || f.ns) remember_cgroup_locked(id->cgroup_id, f);
  }
  id->go.reset();
  if (!ec) {
    auto g = go_cache_.lookup((dir / "exe").string());
    if (g && (*g)->is_go()) id->go = go_info_of(**g);
  }
  decide(*id);
  id->proc_read = true;
  return id;
}

void ProcessTable::enrich(const Work& w) {
  std::shared_ptr<const ProcessIdentity> base;
  {
    std::shared_lock lk(mu_);
    auto it = map_.find(w.pid);
    if (it != map_.end()) base = it->second->id;
  }
  if (base && w.start_boottime_ns && !same_start(base->start_boottime_ns, w.start_boottime_ns)) return;  // superseded
  auto r = read_proc(w.pid, base.get());
  if (!r) {
    std::lock_guard sl(stats_mu_);
    stats_.proc_read_failures++;
    return;
  }
  std::shared_ptr<ProcessIdentity> id = std::move(*r);
  bool pushed = false;
  if (id->go && id->go->offsets && opts_.go_add) {
    Status st = opts_.go_add(id->pid, *id->go->offsets);
    std::lock_guard sl(stats_mu_);
    if (st) {
      pushed = true;
      stats_.go_offsets_added++;
    } else {
      stats_.go_offsets_failed++;
      id->go->offsets_error = st.error().str();
    }
  }
  std::unique_lock lk(mu_);
  auto it = map_.find(w.pid);
  const ProcessIdentity* current = it == map_.end() ? nullptr : it->second->id.get();
  if (current != base.get()) {
    // An event (exec, fork) or another read replaced the entry while we read /proc: ours may mix the old and
    // the new image, and the newer entry's own read is queued.
    if (pushed) enqueue_locked({Work::Kind::go_remove, w.pid, 0});
    return;
  }
  if (it != map_.end() && it->second->exited) {
    // Exited while we read it: keep the richer facts for the grace period, but nothing stays in the kernel.
    if (same_start(it->second->id->start_boottime_ns, id->start_boottime_ns)) it->second->id = std::move(id);
    if (pushed) enqueue_locked({Work::Kind::go_remove, w.pid, 0});
    return;
  }
  if (it != map_.end() && !same_start(it->second->id->start_boottime_ns, id->start_boottime_ns)) {
    if (pushed) enqueue_locked({Work::Kind::go_remove, w.pid, 0});
    return;  // replaced by a newer process while we read
  }
  if (id->go) {
    std::lock_guard sl(stats_mu_);
    stats_.go_processes++;
  }
  store_locked(std::move(id), pushed);
}

size_t ProcessTable::run_pending(size_t max_items) {
  size_t done = 0;
  while (done < max_items) {
    Work w;
    {
      std::unique_lock lk(mu_);
      expire_locked(opts_.clock());
      if (pending_.empty()) break;
      w = pending_.front();
      pending_.pop_front();
    }
    done++;
    switch (w.kind) {
      case Work::Kind::enrich: enrich(w); break;
      case Work::Kind::go_remove: {
        // Skip when the pid already belongs to a new Go process whose offsets were pushed after this was queued.
        {
          std::shared_lock lk(mu_);
          auto it = map_.find(w.pid);
          if (it != map_.end() && it->second->go_pushed) break;
        }
        if (opts_.go_remove) opts_.go_remove(w.pid);
        std::lock_guard sl(stats_mu_);
        stats_.go_offsets_removed++;
        break;
      }
      case Work::Kind::check_thread: {
        auto status = read_small_file(opts_.proc_root / std::to_string(w.pid) / "status", kMaxProcFile);
        uint32_t tgid = 0;
        if (status) {
          size_t p = status->find("\nTgid:");
          if (p != std::string::npos) {
            std::string_view v = std::string_view(*status).substr(p + 6);
            while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.remove_prefix(1);
            parse_num(v.substr(0, v.find_first_of("\t \n")), tgid);
          }
        }
        if (tgid != w.pid) {
          std::lock_guard sl(stats_mu_);
          stats_.threads_skipped++;
          break;
        }
        enrich({Work::Kind::enrich, w.pid, 0});
        break;
      }
    }
  }
  return done;
}

Result<std::shared_ptr<const ProcessIdentity>> ProcessTable::refresh(uint32_t pid) {
  enrich({Work::Kind::enrich, pid, 0});
  auto id = lookup(pid);
  if (!id || !id->proc_read) return errorf("process {}: /proc/{} could not be read", pid, pid);
  return id;
}

size_t ProcessTable::scan_proc() {
  size_t n = 0;
  std::error_code ec;
  std::vector<uint32_t> pids;
  for (auto it = fs::directory_iterator(opts_.proc_root, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    uint32_t pid = 0;
    if (parse_num(it->path().filename().string(), pid) && pid) pids.push_back(pid);
  }
  for (uint32_t pid : pids) {
    enrich({Work::Kind::enrich, pid, 0});
    if (lookup(pid)) n++;
  }
  return n;
}

size_t ProcessTable::sweep() {
  std::vector<std::pair<uint32_t, uint64_t>> live;
  {
    std::shared_lock lk(mu_);
    for (uint32_t pid : live_order_) live.emplace_back(pid, map_.at(pid)->id->start_boottime_ns);
  }
  size_t gone = 0;
  for (auto [pid, start] : live) {
    auto text = read_small_file(opts_.proc_root / std::to_string(pid) / "stat", 4096);
    if (text) {
      auto st = parse_proc_stat(*text);
      if (!st || (st->state != 'Z' && st->state != 'X' && same_start(start, st->start_ticks * tick_ns()))) continue;
    } else if (text.error().err != ENOENT && text.error().err != ESRCH) {
      continue;  // unreadable is not gone
    }
    std::unique_lock lk(mu_);
    auto it = map_.find(pid);
    if (it == map_.end() || it->second->exited || it->second->id->start_boottime_ns != start) continue;
    mark_exited_locked(pid);
    gone++;
    std::lock_guard sl(stats_mu_);
    stats_.swept++;
  }
  return gone;
}

}  // namespace hostscope::identity
