/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle events (exec, fork, exit): the one definition shared by bpf/process.bpf.c and the agent.
 * Fixed-width types only; the C++ side static_asserts the layout. */
#ifndef HOSTSCOPE_BPF_PROCESS_H
#define HOSTSCOPE_BPF_PROCESS_H

#include "counters.h"

#define HS_PROC_COMM_LEN 16
#define HS_PROC_PATH_LEN 256 /* execve() filename, NUL-terminated, cut at this length */
#define HS_PROC_ARGS_LEN 256 /* start of argv as laid out by exec: NUL-separated strings */

enum hs_proc_event_kind {
  HS_PROC_EXEC = 1, /* a process image was replaced (record is struct hs_proc_exec_event) */
  HS_PROC_FORK = 2, /* a new process (not a thread) was created; it runs the parent's image */
  HS_PROC_EXIT = 3, /* the thread group leader exited */
};

enum hs_proc_flags {
  HS_PROC_F_MAYBE_THREAD = 1 << 0,   /* classic fork tracepoint: it cannot tell a thread from a process */
  HS_PROC_F_ARGS_TRUNC = 1 << 1,     /* argv was longer than HS_PROC_ARGS_LEN */
  HS_PROC_F_ARGS_UNREAD = 1 << 2,    /* argv could not be read from user memory */
};

/* Common record; fork and exit events are just this. */
struct hs_proc_event {
  __u64 ts_ns;          /* event time, bpf_ktime_get_ns (CLOCK_MONOTONIC) */
  __u64 start_boottime; /* task start time, ns since boot (CLOCK_BOOTTIME): with pid, identifies one process */
  __u64 cgroup_id;      /* cgroup v2 id of the task */
  __u32 pid;            /* tgid of the process the event is about (the child for fork) */
  __u32 ppid;           /* tgid of its real parent */
  __u32 uid;            /* real uid */
  __u32 exit_code;      /* exit: task->exit_code (status << 8 | signal); 0 otherwise */
  __u32 old_pid;        /* exec: the thread id that called execve (differs from pid when a non-leader thread execs) */
  __u16 args_len;       /* exec: bytes valid in args */
  __u8 kind;            /* enum hs_proc_event_kind */
  __u8 flags;           /* enum hs_proc_flags */
  char comm[HS_PROC_COMM_LEN]; /* task name after the event (exec: basename of the new image) */
};

struct hs_proc_exec_event {
  struct hs_proc_event hdr;
  char filename[HS_PROC_PATH_LEN]; /* path passed to execve (absolute when the caller resolved it, e.g. execvp) */
  char args[HS_PROC_ARGS_LEN];     /* argv[0]\0argv[1]\0..., args_len bytes */
};

#endif
