#pragma once
// Loads and attaches bpf/process.bpf.c (exec, fork, exit), whose events pipeline::ProcessReader
// (agent/pipeline/process_reader.h) feeds into an identity::ProcessTable. Prefers BTF-typed tracepoints and falls
// back to classic ones, like TcpTracer.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/bpf/tcp_tracer.h"
#include "agent/identity/go_offsets.h"
#include "agent/identity/process_table.h"
#include "common/result.h"

namespace hostscope::bpf {

struct ProcessTracerOptions {
  AttachMode mode = AttachMode::Auto;
  uint32_t ring_bytes = 4u << 20;  // power of two, page multiple
};

struct ProcessCounters {
  uint64_t ringbuf_dropped = 0;  // exec/fork/exit events lost (ring buffer full)
  uint64_t events = 0;
};

class ProcessTracer {
 public:
  static Result<std::unique_ptr<ProcessTracer>> start(const ProcessTracerOptions& opts = {});
  ~ProcessTracer();
  ProcessTracer(const ProcessTracer&) = delete;
  ProcessTracer& operator=(const ProcessTracer&) = delete;

  int events_fd() const;
  AttachMode mode() const { return mode_; }
  const std::vector<std::string>& degraded() const { return degraded_; }
  ProcessCounters counters() const;

  struct Impl;

 private:
  ProcessTracer() = default;
  std::unique_ptr<Impl> impl_;
  AttachMode mode_ = AttachMode::Auto;
  std::vector<std::string> degraded_;
};

// Decodes one ring-buffer record (struct hs_proc_event / hs_proc_exec_event). The views point into `data`.
// nullopt for a short or unknown record.
std::optional<identity::ProcessEvent> decode_process_event(const void* data, size_t size);

// The go_procs BPF map (TcpTracer::go_procs_fd()): per-tgid Go runtime offsets read by the TCP hooks.
Status go_procs_put(int map_fd, uint32_t pid, const identity::GoOffsets& off);
void go_procs_delete(int map_fd, uint32_t pid);
// Options hooks that make a ProcessTable keep go_procs in step with the Go processes it identifies.
void connect_go_procs(identity::ProcessTableOptions& opts, int go_procs_fd);

}  // namespace hostscope::bpf
