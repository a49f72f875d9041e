#include "agent/pipeline/process_reader.h"

#include "agent/util/logging.h"

namespace hostscope::pipeline {

ProcessReader::ProcessReader(bpf::ProcessTracer& tracer, identity::ProcessTable& table, ProcessReaderOptions opts)
    : tracer_(tracer), table_(table), opts_(opts) {}

ProcessReader::~ProcessReader() { stop(); }

int ProcessReader::on_sample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<ProcessReader*>(ctx);
  auto ev = bpf::decode_process_event(data, size);
  if (!ev) {
    self->short_samples_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  self->table_.apply(*ev);
  self->applied_.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

Status ProcessReader::start() {
  rb_.reset(ring_buffer__new(tracer_.events_fd(), &ProcessReader::on_sample, this, nullptr));
  if (!rb_) return errorf_errno(errno, "ring buffer proc_events open");
  thread_ = std::thread([this] { loop(); });
  return {};
}

void ProcessReader::catch_up() {
  std::lock_guard lk(consume_mu_);
  if (rb_) ring_buffer__consume(rb_.get());
}

void ProcessReader::loop() {
  if (opts_.scan_at_start) {
    // Events that arrive during the scan wait in the ring (or are applied by catch_up); both orders converge
    // because an exec replaces a scanned entry and the sweep removes scanned processes that exited meanwhile.
    size_t n = table_.scan_proc();
    spdlog::info("process table: {} processes found in /proc", n);
  }
  ready_.store(true, std::memory_order_release);
  auto next_sweep = std::chrono::steady_clock::now() + opts_.sweep_interval;
  while (!stop_.load(std::memory_order_relaxed)) {
    // The kernel never wakes this reader (BPF_RB_NO_WAKEUP), so epoll would only time out: sleep instead and
    // consume under the same lock catch_up() takes, so the TCP thread never waits for a poll.
    std::this_thread::sleep_for(opts_.poll_interval);
    catch_up();
    table_.run_pending();
    if (std::chrono::steady_clock::now() >= next_sweep) {
      table_.sweep();
      next_sweep = std::chrono::steady_clock::now() + opts_.sweep_interval;
    }
  }
  catch_up();
}

void ProcessReader::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace hostscope::pipeline
