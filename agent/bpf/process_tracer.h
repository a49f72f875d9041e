#pragma once
// Loads and attaches bpf/process.bpf.c (exec, fork, exit) and feeds its events into an identity::ProcessTable.
// Prefers BTF-typed tracepoints and falls back to classic ones, like TcpTracer.
//
// ProcessReader runs one thread that drains the process ring buffer on a short timer (the kernel never wakes
// it, see bpf/lib/common.bpf.h), applies each event to the table (cheap), then does the table's slow work
// (/proc reads, Go binary parsing, go_procs map updates) and a periodic sweep. catch_up() lets another thread
// (the TCP reader, on an unknown pid) apply what is already queued without waiting for the next tick.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/bpf/libbpf_util.h"
#include "agent/bpf/tcp_tracer.h"
#include "agent/identity/go_offsets.h"
#include "agent/identity/process_table.h"
#include "agent/util/result.h"

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

struct ProcessReaderOptions {
  std::chrono::milliseconds poll_interval{20};
  std::chrono::milliseconds sweep_interval{10000};  // look for processes gone without an exit event
  bool scan_at_start = true;                         // /proc scan in the reader thread before the first poll
};

class ProcessReader {
 public:
  ProcessReader(ProcessTracer& tracer, identity::ProcessTable& table, ProcessReaderOptions opts = {});
  ~ProcessReader();
  ProcessReader(const ProcessReader&) = delete;
  ProcessReader& operator=(const ProcessReader&) = delete;

  Status start();
  void stop();  // joins; applies what is left in the ring first
  // Applies the events already in the ring (cheap work only). Thread-safe.
  void catch_up();
  // True once the start-up /proc scan finished.
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  uint64_t applied() const { return applied_.load(std::memory_order_relaxed); }
  uint64_t short_samples() const { return short_samples_.load(std::memory_order_relaxed); }

 private:
  static int on_sample(void* ctx, void* data, size_t size);
  void loop();

  ProcessTracer& tracer_;
  identity::ProcessTable& table_;
  ProcessReaderOptions opts_;
  RingBufferPtr rb_;
  std::mutex consume_mu_;  // libbpf's ring_buffer consumer is single-threaded
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> short_samples_{0};
  std::thread thread_;
};

}  // namespace hostscope::bpf
