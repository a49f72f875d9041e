#pragma once
// The reader: drains the kernel ring buffer in batches and hands decoded events to one sink, in the
// reader's thread. Wake-ups are batched in the kernel (TcpTracerOptions::wakeup_bytes) and the reader also
// drains on a short timer, so an event is delivered within poll_interval even when traffic is light.
#include <atomic>
#include <chrono>
#include <functional>
#include <span>
#include <thread>
#include <vector>

#include "agent/bpf/libbpf_util.h"
#include "agent/bpf/tcp_tracer.h"
#include "agent/events/connection.h"

namespace hostscope::pipeline {

using EventSink = std::function<void(std::span<const events::ConnectionEvent>)>;
// Called about once a second with the kernel counters (for lost-event reporting and health).
using HealthSink = std::function<void(const bpf::KernelCounters&)>;

struct ReaderOptions {
  std::chrono::milliseconds poll_interval{20};
  size_t max_batch = 4096;
};

class TcpReader {
 public:
  TcpReader(bpf::TcpTracer& tracer, EventSink sink, HealthSink health = {}, ReaderOptions opts = {});
  ~TcpReader();
  TcpReader(const TcpReader&) = delete;
  TcpReader& operator=(const TcpReader&) = delete;

  Status start();  // runs the loop in its own thread
  void stop();     // joins; drains what is left in the ring first
  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }

 private:
  static int on_sample(void* ctx, void* data, size_t size);
  void loop();
  void flush();

  bpf::TcpTracer& tracer_;
  EventSink sink_;
  HealthSink health_;
  ReaderOptions opts_;
  bpf::RingBufferPtr rb_;
  std::vector<events::ConnectionEvent> batch_;
  int64_t rt_offset_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> delivered_{0};
  uint64_t short_samples_ = 0;
  std::thread thread_;
};

}  // namespace hostscope::pipeline
