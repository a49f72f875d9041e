#pragma once
// pid -> identity of every process on the host: what it runs (exe, cmdline, Go build info), where it runs
// (cgroup, systemd unit, container, pod) and the service name derived from those (service_name.h).
//
// Two kinds of work, kept apart so the TCP event path never waits on the slow one:
//   apply(ProcessEvent)  cheap: builds or updates an entry from what the kernel event carries, copies the
//                        cgroup/Kubernetes facts of a cgroup already seen, and queues the slow work. No syscall.
//   run_pending()        slow: reads /proc/PID/*, parses Go binaries (through GoIdentityCache, so one binary is
//                        parsed once), asks KubeMetaCache, pushes Go runtime offsets to the kernel. Runs in the
//                        process reader's thread.
// Lookups are thread-safe and return shared immutable snapshots. The table is bounded (capacity); an exited
// process stays resolvable for a grace period so a connection closing just after it still has an owner.
// See docs/identity.md ("Process lifecycle").
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/identity/cgroup_identity.h"
#include "agent/identity/go_cache.h"
#include "agent/identity/go_offsets.h"
#include "agent/identity/kube_meta.h"
#include "agent/identity/service_name.h"
#include "agent/identity/workload.h"
#include "common/result.h"
#include "common/topology_model.h"

namespace hostscope::identity {

// Go build facts of a process's executable (a digest of GoBuildInfo, as `go version -m` shows them).
struct GoProcessInfo {
  std::string version;         // "go1.19.8"
  std::string path;            // main package path
  std::string module;          // main module path
  std::string module_version;  // "(devel)" for a local build
  std::string vcs_revision, vcs_time;
  std::optional<bool> vcs_modified;
  std::string goos, goarch;
  std::optional<GoOffsets> offsets;  // for goroutine attribution; nullopt with offsets_error otherwise
  std::string offsets_error;
};

// The main module as one word, "path@version" ("github.com/acme/cart@v1.4.2"): the path alone when the version is
// empty or "(devel)" (a local build says nothing a version would); "" when the binary has no main module (built
// outside module mode). This is what topology edges and the history keep of a Go process (docs/topology.md).
std::string go_main_module(const GoProcessInfo& g);

// How an entry's fields were learnt.
enum class IdentityOrigin : uint8_t {
  scan,  // /proc scan at start-up (or a process first seen by a refresh)
  exec,  // exec event (fields from the event until /proc confirms them)
  fork,  // fork event: a copy of the parent until /proc says otherwise
};
std::string_view identity_origin_name(IdentityOrigin o);

struct ProcessIdentity {
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint64_t start_boottime_ns = 0;  // ns since boot (the kernel's start_boottime); 0 when unknown
  std::string comm;                // exec-time task name (a later prctl(PR_SET_NAME) shows on events, not here)
  std::string exe;                 // /proc/PID/exe target, or execve's filename when /proc was already gone
  std::string cmdline;             // arguments joined by spaces, at most ProcessTableOptions::max_cmdline bytes
  bool cmdline_truncated = false;
  uint64_t cgroup_id = 0;  // cgroup v2 id (inode of the cgroup directory); 0 when unknown
  std::string cgroup;      // cgroup path (cgroup_identity.h rules)
  std::string systemd_unit;
  std::string container_id;
  std::string pod_uid;
  std::string pod, k8s_namespace, container, workload;
  std::string service;
  ServiceSource service_source = ServiceSource::none;
  std::optional<GoProcessInfo> go;  // set when the executable is a Go binary
  // `workload` and go_main_module(*go) as topology edge ends show them; null when both are empty. Set with the
  // service (ProcessTable::decide) and kept while the pair does not change, so the processes a process forks and its
  // re-reads share one object; events carry this pointer, not copies of the strings.
  std::shared_ptr<const topology::EndIdentity> end_identity;
  IdentityOrigin origin = IdentityOrigin::scan;
  bool proc_read = false;  // /proc/PID was read for this process (false: event facts only)
};

// A process lifecycle event in user-space form (decoded from bpf/process.h by the tracer).
struct ProcessEvent {
  enum class Kind : uint8_t { exec = 1, fork = 2, exit = 3 };
  Kind kind = Kind::exec;
  uint32_t pid = 0;
  uint32_t ppid = 0;
  uint32_t uid = 0;
  uint32_t exit_code = 0;
  uint64_t start_boottime_ns = 0;
  uint64_t cgroup_id = 0;
  bool maybe_thread = false;  // fork seen by the classic tracepoint: may be a thread of `ppid`
  bool args_truncated = false;
  std::string_view comm;
  std::string_view filename;  // exec only
  std::string_view args;      // exec only: NUL-separated argv
};

struct ProcessTableOptions {
  size_t capacity = 32768;                           // entries, live and exited together
  std::chrono::milliseconds exit_grace{5000};        // an exited process stays resolvable this long
  size_t max_cmdline = 1024;                         // bytes kept of the command line
  size_t max_pending = 65536;                        // slow-work queue bound (dropped work is counted)
  std::filesystem::path proc_root = "/proc";
  std::optional<std::filesystem::path> cgroup2_root;  // nullopt: found in /proc/self/mountinfo
  std::optional<KubeMetaOptions> kube;                // nullopt: no Kubernetes names
  ServiceRules rules;
  size_t go_cache_capacity = 1024;
  GoIdentityCache::Parser go_parser;  // empty: the real parser (replaceable for tests)
  // Go runtime offsets go to the kernel through these (the tracer writes the go_procs BPF map). Called only
  // for Go processes whose offsets are known; remove only for pids that were added.
  std::function<Status(uint32_t pid, const GoOffsets&)> go_add;
  std::function<void(uint32_t pid)> go_remove;
  std::function<std::chrono::steady_clock::time_point()> clock = &std::chrono::steady_clock::now;
};

struct ProcessTableStats {
  uint64_t hits = 0, misses = 0;
  uint64_t exec_events = 0, fork_events = 0, exit_events = 0;
  uint64_t threads_skipped = 0;       // classic fork events that turned out to be threads
  uint64_t inserts = 0;
  uint64_t evicted_live = 0;          // a live process pushed out by the capacity bound
  uint64_t evicted_exited = 0;        // an exited process pushed out before its grace period ended
  uint64_t expired = 0;               // exited entries removed after their grace period
  uint64_t swept = 0;                 // processes found gone without an exit event (lost event, or a scan race)
  uint64_t proc_read_failures = 0;    // /proc/PID was gone or unreadable: event facts kept
  uint64_t pending_dropped = 0;       // slow work dropped because the queue was full
  uint64_t go_processes = 0;          // Go processes identified
  uint64_t go_offsets_added = 0, go_offsets_failed = 0, go_offsets_removed = 0;
  size_t size = 0, live = 0, max_size = 0, capacity = 0, pending = 0;
};

class ProcessTable {
 public:
  explicit ProcessTable(ProcessTableOptions opts);
  ~ProcessTable();
  ProcessTable(const ProcessTable&) = delete;
  ProcessTable& operator=(const ProcessTable&) = delete;

  // Thread-safe; nullptr when unknown. Exited processes resolve during their grace period.
  std::shared_ptr<const ProcessIdentity> lookup(uint32_t pid) const;
  // Live processes, sorted by pid (exited ones too with include_exited).
  std::vector<std::shared_ptr<const ProcessIdentity>> snapshot(bool include_exited = false) const;
  bool is_live(uint32_t pid) const;

  // Cheap: no syscall, never blocks on slow work. May run on any thread.
  void apply(const ProcessEvent& ev);
  // Asks for /proc/PID to be read again (e.g. the process moved to another cgroup). Cheap; thread-safe.
  void request_refresh(uint32_t pid);

  // Slow work; call from one thread (the process reader). Returns the number of items done.
  size_t run_pending(size_t max_items = SIZE_MAX);
  // Reads every process in proc_root now (start-up). Returns how many were added or refreshed.
  size_t scan_proc();
  // Reads one process now and stores it (also for a pid not seen before).
  Result<std::shared_ptr<const ProcessIdentity>> refresh(uint32_t pid);
  // Marks live entries whose process is gone (checks /proc/PID start time) as exited. Returns how many.
  size_t sweep();
  // Drops exited entries whose grace period is over. apply() and run_pending() do this too.
  void expire();

  ProcessTableStats stats() const;
  const ProcessTableOptions& options() const { return opts_; }
  GoIdentityCache& go_cache() { return go_cache_; }

 private:
  struct Entry;
  struct Work {
    enum class Kind : uint8_t { enrich, check_thread, go_remove } kind;
    uint32_t pid;
    uint64_t start_boottime_ns;
  };
  // Facts that depend only on the cgroup, cached by cgroup id so exec events resolve them without syscalls.
  struct CgroupFacts {
    CgroupIdentity cg;
    std::optional<std::string> ns, pod, container;
  };

  Result<std::shared_ptr<ProcessIdentity>> read_proc(uint32_t pid, const ProcessIdentity* base);
  void fill_cgroup(ProcessIdentity& id, const CgroupFacts& f) const;
  void decide(ProcessIdentity& id) const;
  void enrich(const Work& w);
  void enqueue_locked(Work w);
  void store_locked(std::shared_ptr<const ProcessIdentity> id, bool go_pushed);
  void mark_exited_locked(uint32_t pid);
  void expire_locked(std::chrono::steady_clock::time_point now);
  void evict_one_locked();
  std::optional<CgroupFacts> cgroup_facts_locked(uint64_t cgroup_id) const;
  void remember_cgroup_locked(uint64_t cgroup_id, const CgroupFacts& f);
  uint64_t cgroup_id_of(const std::string& path) const;

  ProcessTableOptions opts_;
  GoIdentityCache go_cache_;
  std::unique_ptr<KubeMetaCache> kube_;
  std::filesystem::path cgroup2_root_;

  mutable std::shared_mutex mu_;
  std::unordered_map<uint32_t, std::unique_ptr<Entry>> map_;
  std::list<uint32_t> live_order_;    // insertion order of live entries (front = oldest)
  std::list<uint32_t> exited_order_;  // exit order (front = first to expire)
  std::unordered_map<uint64_t, CgroupFacts> cgroups_;
  std::deque<Work> pending_;
  ProcessTableStats stats_;
  mutable std::mutex stats_mu_;
  mutable std::atomic<uint64_t> hits_{0}, misses_{0};  // lookups run under a shared lock: no stats_mu_ there
};

// Bounded read of a whole small file (procfs, sysfs). An error names the file.
Result<std::string> read_small_file(const std::filesystem::path& p, size_t max_bytes);

// Fields of /proc/PID/stat after the comm (which may contain spaces and parentheses).
struct ProcStat {
  std::string comm;
  char state = 0;
  uint32_t ppid = 0;
  uint64_t start_ticks = 0;  // clock ticks since boot
};
std::optional<ProcStat> parse_proc_stat(std::string_view text);

// argv (NUL-separated) joined with spaces, cut at max_bytes; *truncated set when cut.
std::string join_cmdline(std::string_view nul_separated, size_t max_bytes, bool* truncated);

}  // namespace hostscope::identity
