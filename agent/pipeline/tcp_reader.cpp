#include "agent/pipeline/tcp_reader.h"

#include "agent/util/clock.h"
#include "agent/util/logging.h"
#include "tcp_lifecycle.h"

namespace hostscope::pipeline {

TcpReader::TcpReader(bpf::TcpTracer& tracer, EventSink sink, HealthSink health, ReaderOptions opts)
    : tracer_(tracer), sink_(std::move(sink)), health_(std::move(health)), opts_(opts) {
  batch_.reserve(opts_.max_batch);
}

TcpReader::~TcpReader() { stop(); }

int TcpReader::on_sample(void* ctx, void* data, size_t size) {
  auto* self = static_cast<TcpReader*>(ctx);
  if (size < sizeof(hs_tcp_event)) {
    self->short_samples_++;
    return 0;
  }
  self->batch_.push_back(events::decode(*static_cast<const hs_tcp_event*>(data), self->rt_offset_));
  if (self->batch_.size() >= self->opts_.max_batch) self->flush();
  return 0;
}

void TcpReader::flush() {
  if (batch_.empty()) return;
  sink_(std::span<const events::ConnectionEvent>(batch_.data(), batch_.size()));
  delivered_.fetch_add(batch_.size(), std::memory_order_relaxed);
  batch_.clear();
}

Status TcpReader::start() {
  rt_offset_ = monotonic_to_realtime_offset();
  rb_.reset(ring_buffer__new(tracer_.events_fd(), &TcpReader::on_sample, this, nullptr));
  if (!rb_) return errorf_errno(errno, "ring buffer tcp_events open");
  thread_ = std::thread([this] { loop(); });
  return {};
}

void TcpReader::loop() {
  auto next_health = std::chrono::steady_clock::now();
  int timeout_ms = int(opts_.poll_interval.count());
  while (!stop_.load(std::memory_order_relaxed)) {
    int n = ring_buffer__poll(rb_.get(), timeout_ms);
    if (n < 0 && n != -EINTR) {
      spdlog::error("ring buffer tcp_events poll failed: {}", n);
      break;
    }
    // Wake-ups are batched in the kernel: drain whatever is queued even when poll timed out.
    ring_buffer__consume(rb_.get());
    flush();
    auto now = std::chrono::steady_clock::now();
    if (now >= next_health) {
      next_health = now + std::chrono::seconds(1);
      rt_offset_ = monotonic_to_realtime_offset();  // follows wall-clock steps
      if (health_) health_(tracer_.counters());
    }
  }
  ring_buffer__consume(rb_.get());
  flush();
  if (health_) health_(tracer_.counters());
}

void TcpReader::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

}  // namespace hostscope::pipeline
