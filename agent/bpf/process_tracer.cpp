#include "agent/bpf/process_tracer.h"

#include <cstring>

#include "agent/bpf/libbpf_util.h"
#include "agent/util/logging.h"
#include "agent/util/mounts.h"
#include "go_offsets.h"
#include "process.h"
#include "process.skel.h"

namespace hostscope::bpf {

static_assert(sizeof(hs_proc_event) == 64, "hs_proc_event layout changed: update both sides");
static_assert(sizeof(hs_proc_exec_event) == 64 + HS_PROC_PATH_LEN + HS_PROC_ARGS_LEN, "hs_proc_exec_event layout");
static_assert(sizeof(hs_go_offsets) == 16, "hs_go_offsets layout");

HS_SKELETON_OPS(process);
using ProcessSkel = Skeleton<process, process_ops>;

struct ProcessTracer::Impl {
  ProcessSkel skel;
  std::vector<Link> links;
};

ProcessTracer::~ProcessTracer() = default;

namespace {

std::vector<bpf_program*> btf_progs(process* s) {
  return {s->progs.btf_sched_process_exec, s->progs.btf_sched_process_fork, s->progs.btf_sched_process_exit};
}
std::vector<bpf_program*> classic_progs(process* s) {
  return {s->progs.tp_sched_process_exec, s->progs.tp_sched_process_fork, s->progs.tp_sched_process_exit};
}

// All three hooks are required: without exec the table misses short-lived processes, without exit it grows
// until the sweep finds the dead, without fork a forked child is unknown until its first miss.
Result<std::unique_ptr<ProcessTracer::Impl>> try_mode(const ProcessTracerOptions& o, AttachMode mode) {
  auto skel = ProcessSkel::open("process");
  if (!skel) return skel.error();
  auto& s = *skel;
  auto use = mode == AttachMode::Btf ? btf_progs(s.get()) : classic_progs(s.get());
  for (auto* p : mode == AttachMode::Btf ? classic_progs(s.get()) : btf_progs(s.get()))
    bpf_program__set_autoload(p, false);
  if (int err = bpf_map__set_max_entries(s->maps.proc_events, o.ring_bytes))
    return errorf_errno(err, "ring buffer proc_events resize to {}", o.ring_bytes);
  if (auto st = s.load("process"); !st) return st.error();
  auto impl = std::make_unique<ProcessTracer::Impl>();
  for (auto* p : use) {
    auto l = attach_program(p);
    if (!l) return l.error();
    impl->links.push_back(std::move(*l));
  }
  impl->skel = std::move(s);
  return impl;
}

std::string_view cstr(const char* p, size_t cap) { return {p, strnlen(p, cap)}; }

}  // namespace

Result<std::unique_ptr<ProcessTracer>> ProcessTracer::start(const ProcessTracerOptions& opts) {
  route_libbpf_logs();
  std::unique_ptr<ProcessTracer> t(new ProcessTracer());
  Status st = make_error("no attach mode tried");
  if (opts.mode != AttachMode::Classic) {
    auto r = try_mode(opts, AttachMode::Btf);
    if (r) {
      t->impl_ = std::move(*r);
      t->mode_ = AttachMode::Btf;
      st = {};
    } else {
      if (opts.mode == AttachMode::Btf) return r.error();
      t->degraded_.push_back(
          fmt::format("process hooks: BTF tracepoints unavailable ({}); using classic tracepoints", r.error().str()));
      st = r.error();
    }
  }
  if (!st) {
    if (auto m = ensure_tracefs(); !m) return errorf("process hooks: {}", m.error().str());
    auto r = try_mode(opts, AttachMode::Classic);
    if (!r) return r.error();
    t->impl_ = std::move(*r);
    t->mode_ = AttachMode::Classic;
  }
  for (auto& d : t->degraded_) spdlog::warn("degraded: {}", d);
  spdlog::info("process hooks attached with {} tracepoints", to_string(t->mode_));
  return t;
}

int ProcessTracer::events_fd() const { return bpf_map__fd(impl_->skel->maps.proc_events); }

ProcessCounters ProcessTracer::counters() const {
  auto v = read_percpu_counters(bpf_map__fd(impl_->skel->maps.counters), HS_CNT_MAX);
  return {v[HS_CNT_RB_DROPPED], v[HS_CNT_EVENTS]};
}

std::optional<identity::ProcessEvent> decode_process_event(const void* data, size_t size) {
  if (size < sizeof(hs_proc_event)) return std::nullopt;
  const auto& h = *static_cast<const hs_proc_event*>(data);
  identity::ProcessEvent ev;
  switch (h.kind) {
    case HS_PROC_EXEC: ev.kind = identity::ProcessEvent::Kind::exec; break;
    case HS_PROC_FORK: ev.kind = identity::ProcessEvent::Kind::fork; break;
    case HS_PROC_EXIT: ev.kind = identity::ProcessEvent::Kind::exit; break;
    default: return std::nullopt;
  }
  ev.pid = h.pid;
  ev.ppid = h.ppid;
  ev.uid = h.uid;
  ev.exit_code = h.exit_code;
  ev.start_boottime_ns = h.start_boottime;
  ev.cgroup_id = h.cgroup_id;
  ev.maybe_thread = h.flags & HS_PROC_F_MAYBE_THREAD;
  ev.args_truncated = h.flags & HS_PROC_F_ARGS_TRUNC;
  ev.comm = cstr(h.comm, sizeof(h.comm));
  if (h.kind == HS_PROC_EXEC) {
    if (size < sizeof(hs_proc_exec_event)) return std::nullopt;
    const auto& x = *static_cast<const hs_proc_exec_event*>(data);
    ev.filename = cstr(x.filename, sizeof(x.filename));
    ev.args = std::string_view(x.args, std::min<size_t>(h.args_len, sizeof(x.args)));
  }
  return ev;
}

Status go_procs_put(int map_fd, uint32_t pid, const identity::GoOffsets& off) {
  hs_go_offsets v{};
  v.g_tls_offset = off.g_tls_offset;
  v.goid_offset = off.goid_offset;
  if (bpf_map_update_elem(map_fd, &pid, &v, BPF_ANY) != 0)
    return errorf_errno(errno, "map go_procs update for pid {} failed", pid);
  return {};
}

void go_procs_delete(int map_fd, uint32_t pid) { bpf_map_delete_elem(map_fd, &pid); }

void connect_go_procs(identity::ProcessTableOptions& opts, int fd) {
  opts.go_add = [fd](uint32_t pid, const identity::GoOffsets& off) { return go_procs_put(fd, pid, off); };
  opts.go_remove = [fd](uint32_t pid) { go_procs_delete(fd, pid); };
}

}  // namespace hostscope::bpf
