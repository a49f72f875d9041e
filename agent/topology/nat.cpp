#include "agent/topology/nat.h"

#include <spdlog/spdlog.h>

namespace hostscope::topology {

size_t NatWorker::TupleHash::operator()(const FlowTuple& t) const noexcept {
  size_t h = std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(t.src.bytes.data()), t.src.bytes.size()));
  h ^= std::hash<std::string_view>{}(
           std::string_view(reinterpret_cast<const char*>(t.dst.bytes.data()), t.dst.bytes.size())) +
       0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= (size_t(t.sport) << 24) ^ (size_t(t.dport) << 8) ^ size_t(t.protocol) ^ (size_t(t.src.family) << 40);
  return h;
}

NatWorker::NatWorker(std::unique_ptr<ConntrackResolver> resolver, NatWorkerConfig cfg)
    : resolver_(std::move(resolver)), cfg_(cfg) {
  thread_ = std::thread([this] { run(); });
}

NatWorker::~NatWorker() { stop(); }

void NatWorker::stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool NatWorker::submit(NatRequest r) {
  {
    std::lock_guard lk(mu_);
    if (stop_ || queue_.size() >= cfg_.queue_capacity) {
      ++counters_.dropped;
      return false;
    }
    queue_.push_back(std::move(r));
    ++counters_.submitted;
  }
  cv_.notify_one();
  return true;
}

std::vector<NatResult> NatWorker::take_results() {
  std::lock_guard lk(mu_);
  std::vector<NatResult> out(std::make_move_iterator(results_.begin()), std::make_move_iterator(results_.end()));
  results_.clear();
  return out;
}

NatCounters NatWorker::counters() const {
  std::lock_guard lk(mu_);
  return counters_;
}

void NatWorker::wait_idle() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return stop_ || (queue_.empty() && !busy_); });
}

void NatWorker::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    NatRequest req = std::move(queue_.front());
    queue_.pop_front();
    std::optional<Destination> actual;
    bool have = false;
    if (auto it = cache_.find(req.tuple); it != cache_.end()) {
      ++counters_.cache_hits;
      actual = it->second;
      have = true;
    }
    if (!have) {
      busy_ = true;
      lk.unlock();  // the netlink round trip runs without the lock so submit() stays non-blocking
      auto r = resolver_->actual_destination(req.tuple);
      lk.lock();
      busy_ = false;
      ++counters_.lookups;
      if (!r) {
        ++counters_.errors;
        spdlog::debug("conntrack lookup failed: {}", r.error().str());
      } else {
        actual = *r;
        if (!actual) ++counters_.not_found;
        // Misses are cached too: the second event of the same flow would miss again.
        if (cfg_.cache_capacity > 0) {
          if (cache_.size() >= cfg_.cache_capacity) {
            cache_.erase(cache_order_.front());
            cache_order_.pop_front();
          }
          if (cache_.emplace(req.tuple, actual).second) cache_order_.push_back(req.tuple);
        }
      }
    }
    Destination dialed{req.tuple.dst, req.tuple.dport};
    if (actual && !(*actual == dialed)) {
      ++counters_.translated;
      results_.push_back(NatResult{std::move(req.edge), dialed, *actual});
      if (results_.size() > cfg_.max_results) results_.pop_front();
    }
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

}  // namespace hostscope::topology
