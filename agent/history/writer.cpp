#include "agent/history/writer.h"

#include <time.h>

#include <spdlog/spdlog.h>

namespace hostscope::history {

namespace {
uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}
}  // namespace

Writer::Writer(WriterOptions o) : opts_(std::move(o)) {
  if (!opts_.clock) opts_.clock = realtime_ns;
  if (opts_.queue == 0) opts_.queue = 1;
}

Writer::~Writer() { stop(); }

bool Writer::start(bool thread) {
  auto s = Store::open(opts_.path, opts_.store, false);
  if (!s) {
    fail(s.error());
    return false;
  }
  store_.emplace(std::move(*s));
  spdlog::info("history: writing to {} (retention {}h, max {} MiB)", opts_.path, opts_.store.retention_ns / kHourNs,
               opts_.store.max_bytes >> 20);
  if (thread) thread_ = std::thread([this] { run(); });
  return true;
}

void Writer::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  store_.reset();
}

bool Writer::submit(Interval iv) {
  {
    std::lock_guard lk(mu_);
    if (!stats_.ok || stopping_ || queue_.size() >= opts_.queue) {
      ++stats_.intervals_dropped;
      return false;
    }
    queue_.push_back(std::move(iv));
    ++stats_.intervals_queued;
  }
  cv_.notify_one();
  return true;
}

bool Writer::process_one() {
  Interval iv;
  {
    std::lock_guard lk(mu_);
    if (queue_.empty()) return false;
    iv = std::move(queue_.front());
    queue_.pop_front();
  }
  write(iv);
  return true;
}

void Writer::run() {
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      // Intervals already queued are written before stopping: the agent's last minute survives a restart.
      if (queue_.empty()) return;
    }
    process_one();
  }
}

void Writer::write(Interval& iv) {
  if (!store_) return;
  const uint64_t now = opts_.clock();
  auto st = store_->write(iv.rows, now);
  if (st) {
    uint64_t dropped = 0;
    {
      std::lock_guard lk(mu_);
      dropped = stats_.intervals_dropped - drops_persisted_;
    }
    if (dropped)
      if (auto c = store_->add_counter("intervals_dropped", dropped); c) {
        std::lock_guard lk(mu_);
        drops_persisted_ += dropped;
      }
    st = store_->maintain(now);
  }
  if (!st) {
    fail(st.error());
    return;
  }
  std::lock_guard lk(mu_);
  ++stats_.intervals_written;
  stats_.rows_written += iv.rows.size();
  stats_.last_write_ns = now;
}

void Writer::fail(const Error& e) {
  // Logged once: the agent goes on without history; `hostscope history status` and the health reply say why.
  spdlog::error("history: {}; the agent runs on without history", e.str());
  store_.reset();
  std::lock_guard lk(mu_);
  stats_.ok = false;
  stats_.error = e.str();
  stats_.intervals_dropped += queue_.size();
  queue_.clear();
}

WriterStats Writer::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

Recorder::Recorder(SnapshotFn snap, Writer& writer, uint64_t interval_ns, std::function<uint64_t()> clock)
    : snap_(std::move(snap)), writer_(writer), interval_ns_(interval_ns ? interval_ns : kMinuteNs),
      clock_(clock ? std::move(clock) : std::function<uint64_t()>(realtime_ns)) {
  prev_ns_ = clock_();
}

Recorder::~Recorder() { stop(); }

void Recorder::start() {
  prev_ns_ = clock_();
  prev_ = snap_();
  thread_ = std::thread([this] { run(); });
}

void Recorder::stop() {
  {
    std::lock_guard lk(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    record(clock_());
  }
}

void Recorder::record(uint64_t now_ns) {
  auto cur = snap_();
  Interval iv;
  iv.start_ns = prev_ns_;
  iv.end_ns = std::max(now_ns, prev_ns_ + 1);
  iv.rows = interval_rows(prev_, cur, iv.start_ns, iv.end_ns);
  prev_ = std::move(cur);
  prev_ns_ = iv.end_ns;
  writer_.submit(std::move(iv));
}

void Recorder::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    // Sleep to the next multiple of the interval on the wall clock, so rows of all nodes line up on minutes.
    const uint64_t now = clock_();
    const uint64_t next = (now / interval_ns_ + 1) * interval_ns_;
    if (cv_.wait_for(lk, std::chrono::nanoseconds(next - now), [&] { return stopping_; })) return;
    if (clock_() < next) continue;  // woke early
    lk.unlock();
    record(next);
    lk.lock();
  }
}

}  // namespace hostscope::history
