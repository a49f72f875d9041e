#pragma once
// Loads the real tcp_lifecycle programs in-process and collects every decoded event, for integration tests.
#include <mutex>
#include <vector>

#include "agent/bpf/tcp_tracer.h"
#include "agent/pipeline/tcp_reader.h"
#include "support/privileged.h"

namespace hostscope::testing {

class EventCollector {
 public:
  explicit EventCollector(bpf::TcpTracerOptions opts = {}) {
    auto t = bpf::TcpTracer::start(opts);
    if (!t) {
      error_ = t.error().str();
      return;
    }
    tracer_ = std::move(*t);
    reader_ = std::make_unique<pipeline::TcpReader>(*tracer_, [this](std::span<const events::ConnectionEvent> b) {
      std::lock_guard lk(mu_);
      events_.insert(events_.end(), b.begin(), b.end());
    });
    if (auto st = reader_->start(); !st) error_ = st.error().str();
  }
  ~EventCollector() {
    if (reader_) reader_->stop();
  }
  const std::string& error() const { return error_; }
  bpf::TcpTracer& tracer() { return *tracer_; }

  std::vector<events::ConnectionEvent> snapshot() {
    std::lock_guard lk(mu_);
    return events_;
  }
  template <typename Pred>
  std::vector<events::ConnectionEvent> matching(Pred pred) {
    std::vector<events::ConnectionEvent> out;
    for (auto& e : snapshot())
      if (pred(e)) out.push_back(e);
    return out;
  }
  // Waits until at least `n` events match `pred`; returns them.
  template <typename Pred>
  std::vector<events::ConnectionEvent> wait_for(size_t n, Pred pred,
                                                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::vector<events::ConnectionEvent> got;
    eventually([&] {
      got = matching(pred);
      return got.size() >= n;
    }, timeout);
    return got;
  }

 private:
  std::string error_;
  std::unique_ptr<bpf::TcpTracer> tracer_;
  std::unique_ptr<pipeline::TcpReader> reader_;
  std::mutex mu_;
  std::vector<events::ConnectionEvent> events_;
};

}  // namespace hostscope::testing
