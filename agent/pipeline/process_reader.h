#pragma once
// The process events reader: one thread drains the process ring buffer on a short timer (the kernel never wakes
// it, see bpf/lib/common.bpf.h), applies each event to the table (cheap), then does the table's slow work
// (/proc reads, Go binary parsing, go_procs map updates) and a periodic sweep. catch_up() lets another thread
// (the TCP reader, on an unknown pid) apply what is already queued without waiting for the next tick.
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "agent/bpf/libbpf_util.h"
#include "agent/bpf/process_tracer.h"
#include "agent/identity/process_table.h"

namespace hostscope::pipeline {

struct ProcessReaderOptions {
  std::chrono::milliseconds poll_interval{20};
  std::chrono::milliseconds sweep_interval{10000};  // look for processes gone without an exit event
  bool scan_at_start = true;                         // /proc scan in the reader thread before the first poll
};

class ProcessReader {
 public:
  ProcessReader(bpf::ProcessTracer& tracer, identity::ProcessTable& table, ProcessReaderOptions opts = {});
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

  bpf::ProcessTracer& tracer_;
  identity::ProcessTable& table_;
  ProcessReaderOptions opts_;
  bpf::RingBufferPtr rb_;
  std::mutex consume_mu_;  // libbpf's ring_buffer consumer is single-threaded
  std::atomic<bool> stop_{false};
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> short_samples_{0};
  std::thread thread_;
};

}  // namespace hostscope::pipeline
