#include "agent/topology/stats.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>

namespace hostscope::topology {

size_t LatencyHistogram::bucket_of(uint64_t us) {
  if (us < 4) return size_t(us);
  int e = 63 - std::countl_zero(us);  // floor(log2), >= 2
  if (e > 31) return kBuckets - 1;
  size_t sub = size_t(us >> (e - 2)) & 3;
  return 4 + size_t(e - 2) * 4 + sub;
}

uint64_t LatencyHistogram::bucket_low(size_t b) {
  if (b < 4) return b;
  size_t e = (b - 4) / 4 + 2, sub = (b - 4) % 4;
  return (uint64_t(4 + sub)) << (e - 2);
}

uint64_t LatencyHistogram::bucket_high(size_t b) {
  if (b < 4) return b + 1;
  size_t e = (b - 4) / 4 + 2;
  return bucket_low(b) + (uint64_t(1) << (e - 2));
}

template <typename F>
void LatencyHistogram::each(F&& f) const {
  if (dense_) {
    for (size_t b = 0; b < kBuckets; ++b)
      if ((*dense_)[b]) f(b, uint64_t((*dense_)[b]));
  } else {
    for (uint32_t w : sparse_) f(size_t(w >> 24), uint64_t(w & kSparseCountMax));
  }
}

void LatencyHistogram::make_dense() {
  dense_ = std::make_unique<std::array<uint32_t, kBuckets>>();
  for (uint32_t w : sparse_) (*dense_)[w >> 24] = w & kSparseCountMax;
  std::vector<uint32_t>().swap(sparse_);  // give the memory back, not just the size
}

void LatencyHistogram::add(uint64_t us) {
  const size_t b = bucket_of(us);
  ++count_;
  sum_us_ += us;
  if (!dense_) {
    auto it = std::lower_bound(sparse_.begin(), sparse_.end(), uint32_t(b) << 24);
    if (it != sparse_.end() && (*it >> 24) == b) {
      if ((*it & kSparseCountMax) < kSparseCountMax) {
        ++*it;
        return;
      }
    } else if (sparse_.size() < kSparseMax) {
      sparse_.insert(it, (uint32_t(b) << 24) | 1);
      return;
    }
    make_dense();
  }
  auto& c = (*dense_)[b];
  if (c != UINT32_MAX) ++c;
}

std::vector<uint64_t> LatencyHistogram::export_buckets() const {
  std::vector<uint64_t> out(kExportBoundsUs.size(), 0);
  uint64_t seen = 0;
  size_t i = 0;
  each([&](size_t b, uint64_t c) {
    while (i < out.size() && bucket_low(b) >= kExportBoundsUs[i]) out[i++] = seen;
    seen += c;
  });
  for (; i < out.size(); ++i) out[i] = seen;  // bounds above the last bucket's low edge: values capped there
  return out;
}

uint64_t LatencyHistogram::quantile(double q) const {
  uint64_t total = 0;
  each([&](size_t, uint64_t c) { total += c; });
  if (total == 0) return 0;
  uint64_t rank = std::max<uint64_t>(1, uint64_t(std::ceil(q * double(total))));
  uint64_t seen = 0;
  std::optional<uint64_t> v;
  each([&](size_t b, uint64_t c) {
    seen += c;
    if (!v && seen >= rank) v = b < 4 ? b : (bucket_low(b) + bucket_high(b) - 1) / 2;
  });
  return v ? *v : bucket_low(kBuckets - 1);
}

LatencySummary LatencyHistogram::summary() const {
  return LatencySummary{count_, quantile(0.50), quantile(0.90), quantile(0.99)};
}

void AnomalyDetector::Baseline::add(double x, double alpha) {
  if (n == 0) {
    mean = x;
    dev = 0;
  } else {
    dev = (1 - alpha) * dev + alpha * std::fabs(x - mean);
    mean = (1 - alpha) * mean + alpha * x;
  }
  ++n;
}

bool merge_flag(std::vector<AnomalyFlag>& flags, AnomalyFlag f, uint64_t window_ns, size_t max_flags) {
  for (auto it = flags.rbegin(); it != flags.rend(); ++it) {
    if (it->reason != f.reason) continue;
    if (f.last_ns <= it->last_ns + window_ns) {
      it->last_ns = f.last_ns;
      it->value = f.value;
      it->baseline = f.baseline;
      ++it->windows;
      return false;
    }
    break;
  }
  flags.push_back(std::move(f));
  if (flags.size() > max_flags) flags.erase(flags.begin(), flags.begin() + ptrdiff_t(flags.size() - max_flags));
  return true;
}

uint32_t AnomalyDetector::judge(const AnomalyConfig& cfg, std::vector<AnomalyFlag>& flags, bool closing) {
  // A window being filled (this runs for every event) can only raise a reason not raised yet, against a trusted
  // baseline: leave at once when there is none.
  if (!closing && (fail_flagged_ || fail_.n < cfg.baseline_windows) && (lat_flagged_ || lat_.n < cfg.baseline_windows))
    return 0;
  uint32_t raised = 0;
  // Flags name the window they were raised in by its end, also when raised before it ended.
  const uint64_t end_ns = (window_ + 1) * cfg.window_ns;
  if (cfg.enabled && attempts_ >= cfg.min_samples) {
    double rate = double(failures_) / double(attempts_);
    if (!fail_flagged_ && fail_.n >= cfg.baseline_windows &&
        rate > fail_.mean + std::max(cfg.k * fail_.dev, cfg.failure_rate_min_delta)) {
      raised += merge_flag(flags, AnomalyFlag{"failure_rate", end_ns, end_ns, 1, rate, fail_.mean}, cfg.window_ns,
                           cfg.max_flags_per_edge);
      fail_flagged_ = true;
    }
    if (closing) fail_.add(rate, cfg.alpha);
  }
  if (cfg.enabled && lat_n_ >= cfg.min_samples) {
    double mean = lat_sum_ / double(lat_n_);
    if (!lat_flagged_ && lat_.n >= cfg.baseline_windows && mean > lat_.mean + cfg.k * lat_.dev &&
        mean >= lat_.mean * cfg.latency_min_ratio) {
      raised += merge_flag(flags, AnomalyFlag{"connect_latency", end_ns, end_ns, 1, mean, lat_.mean}, cfg.window_ns,
                           cfg.max_flags_per_edge);
      lat_flagged_ = true;
    }
    if (closing) lat_.add(mean, cfg.alpha);
  }
  return raised;
}

uint32_t AnomalyDetector::roll(uint64_t now_ns, const AnomalyConfig& cfg, std::vector<AnomalyFlag>& flags) {
  if (cfg.window_ns == 0) return 0;
  uint64_t idx = now_ns / cfg.window_ns;
  uint32_t raised = 0;
  if (idx > window_) {
    raised += judge(cfg, flags, true);
    window_ = idx;
    attempts_ = failures_ = lat_n_ = 0;
    lat_sum_ = 0;
    fail_flagged_ = lat_flagged_ = false;
  }
  // The window so far: cheap until it has min_samples, and once it has raised both reasons.
  if (attempts_ >= cfg.min_samples || lat_n_ >= cfg.min_samples) raised += judge(cfg, flags, false);
  return raised;
}

}  // namespace hostscope::topology
