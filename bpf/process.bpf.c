// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Process lifecycle: exec, fork and exit, so the agent knows a process (and its image, cgroup, parent) before
 * it can vanish from /proc. Short-lived processes often exit before user space gets to read /proc/PID, so the
 * exec record carries what identifies them: execve's filename, the start of argv, comm, uid, cgroup.
 *
 * Hooks (each has a BTF-typed tp_btf program and a classic-tracepoint twin; the agent loads one set):
 *   sched_process_exec  after the new image is loaded (comm already updated), in the process's context
 *   sched_process_fork  in the parent's context; threads (CLONE_THREAD) are filtered out
 *   sched_process_exit  per exiting thread; only the thread group leader's exit is reported
 * Nothing here is on a network hot path; the counters map counts every failed ring-buffer reserve. */
#include "lib/common.bpf.h"
#include "process.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 4 * 1024 * 1024); /* resized by the agent (kernel.process_ring_buffer_mb) */
} proc_events SEC(".maps");

static __always_inline void proc__fill(struct hs_proc_event* e, struct task_struct* task, __u8 kind) {
  e->ts_ns = bpf_ktime_get_ns();
  e->kind = kind;
  e->pid = BPF_CORE_READ(task, tgid);
  e->ppid = BPF_CORE_READ(task, real_parent, tgid);
  e->uid = BPF_CORE_READ(task, cred, uid.val);
  e->start_boottime = BPF_CORE_READ(task, start_boottime);
  BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
}

/* `task` is current (exec runs in the process's own context); `filename` is a kernel string. */
static __always_inline int proc__emit_exec(struct task_struct* task, const char* filename, __u32 old_pid) {
  struct hs_proc_exec_event* e = rb__reserve(&proc_events, sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  proc__fill(&e->hdr, task, HS_PROC_EXEC);
  e->hdr.cgroup_id = bpf_get_current_cgroup_id();
  e->hdr.old_pid = old_pid;
  if (filename) bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);

  /* argv was just copied to the new stack by exec, so its pages are present. */
  __u64 start = BPF_CORE_READ(task, mm, arg_start);
  __u64 end = BPF_CORE_READ(task, mm, arg_end);
  __u64 len = end > start ? end - start : 0;
  if (len > HS_PROC_ARGS_LEN) {
    len = HS_PROC_ARGS_LEN;
    e->hdr.flags |= HS_PROC_F_ARGS_TRUNC;
  }
  if (len > 0 && len <= HS_PROC_ARGS_LEN) {
    if (bpf_probe_read_user(e->args, len, (void*)start) == 0)
      e->hdr.args_len = len;
    else
      e->hdr.flags |= HS_PROC_F_ARGS_UNREAD;
  }
  rb__submit(&proc_events, e);
  return 0;
}

static __always_inline int proc__emit_fork(struct task_struct* child, __u8 flags) {
  struct hs_proc_event* e = rb__reserve(&proc_events, sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  proc__fill(e, child, HS_PROC_FORK);
  /* The child inherits the parent's cgroup at fork (cgroup_post_fork runs before this tracepoint; the caller is
   * the parent, so read the child's own css_set rather than the current task's). */
  e->cgroup_id = BPF_CORE_READ(child, cgroups, dfl_cgrp, kn, id);
  e->flags = flags;
  rb__submit(&proc_events, e);
  return 0;
}

static __always_inline int proc__emit_exit(struct task_struct* task) {
  if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid)) return 0; /* a thread, not the process */
  struct hs_proc_event* e = rb__reserve(&proc_events, sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  proc__fill(e, task, HS_PROC_EXIT);
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->exit_code = BPF_CORE_READ(task, exit_code);
  rb__submit(&proc_events, e);
  return 0;
}

/* ---- BTF-typed raw tracepoints (preferred: no tracefs, typed arguments) ---- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(btf_sched_process_exec, struct task_struct* p, pid_t old_pid, struct linux_binprm* bprm) {
  return proc__emit_exec(p, BPF_CORE_READ(bprm, filename), old_pid);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(btf_sched_process_fork, struct task_struct* parent, struct task_struct* child) {
  if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid)) return 0; /* CLONE_THREAD */
  return proc__emit_fork(child, 0);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(btf_sched_process_exit, struct task_struct* p) { return proc__emit_exit(p); }

/* ---- classic tracepoints (fallback; need tracefs). They run in the same task context as the BTF ones. ---- */

SEC("tracepoint/sched/sched_process_exec")
int tp_sched_process_exec(struct trace_event_raw_sched_process_exec* ctx) {
  struct task_struct* task = (struct task_struct*)bpf_get_current_task();
  /* __data_loc: low 16 bits are the offset of the string from the start of the record. */
  __u32 loc = BPF_CORE_READ(ctx, __data_loc_filename);
  const char* filename = (const char*)ctx + (loc & 0xFFFF);
  return proc__emit_exec(task, filename, BPF_CORE_READ(ctx, old_pid));
}

SEC("tracepoint/sched/sched_process_fork")
int tp_sched_process_fork(struct trace_event_raw_sched_process_fork* ctx) {
  /* The record has only the child's thread id; the parent is current. Report the child as a possible thread
   * unless the parent's pid matches its tgid... which says nothing about the child, so user space checks. */
  struct hs_proc_event* e = rb__reserve(&proc_events, sizeof(*e));
  if (!e) return 0;
  __builtin_memset(e, 0, sizeof(*e));
  struct task_struct* parent = (struct task_struct*)bpf_get_current_task();
  proc__fill(e, parent, HS_PROC_FORK);
  e->pid = BPF_CORE_READ(ctx, child_pid);
  e->ppid = BPF_CORE_READ(parent, tgid);
  e->start_boottime = 0; /* unknown: the child task is not reachable from this record */
  e->cgroup_id = bpf_get_current_cgroup_id();
  e->flags = HS_PROC_F_MAYBE_THREAD;
  rb__submit(&proc_events, e);
  return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int tp_sched_process_exit(void* ctx) {
  return proc__emit_exit((struct task_struct*)bpf_get_current_task());
}
