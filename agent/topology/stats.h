#pragma once
// Per-edge statistics: a log-bucketed connect-latency histogram and the anomaly detector (docs/topology.md).
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/topology_model.h"

namespace hostscope::topology {

// Log-linear buckets over microseconds: exact below 4 us, then 4 sub-buckets per power of two up to 2^32 us
// (~71 min; larger values land in the last bucket). Quantiles are bucket midpoints, within ~12% of the truth.
class LatencyHistogram {
 public:
  static constexpr size_t kBuckets = 124;
  // Upper bounds (us) of the cumulative buckets exported to Prometheus (defined with the snapshot model, which
  // carries the exported buckets); each is a power of two and so a boundary of this histogram.
  static constexpr const auto& kExportBoundsUs = kLatencyExportBoundsUs;
  void add(uint64_t us);
  uint64_t count() const { return count_; }
  uint64_t sum_us() const { return sum_us_; }
  // Samples below each of kExportBoundsUs (cumulative, one entry per bound).
  std::vector<uint64_t> export_buckets() const;
  uint64_t quantile(double q) const;  // 0 when empty
  LatencySummary summary() const;

  static size_t bucket_of(uint64_t us);
  static uint64_t bucket_low(size_t b);
  static uint64_t bucket_high(size_t b);  // exclusive

  // Most edges see a few distinct latencies: up to kSparseMax buckets are kept as sorted (bucket << 24 | count)
  // words, about 80 bytes instead of the 500 of the full table, which is allocated once more are used.
  static constexpr size_t kSparseMax = 16;
  bool dense() const { return dense_ != nullptr; }

 private:
  static constexpr uint32_t kSparseCountMax = (1u << 24) - 1;
  // Calls f(bucket, count) for every non-empty bucket in ascending order.
  template <typename F>
  void each(F&& f) const;
  void make_dense();

  std::vector<uint32_t> sparse_;
  std::unique_ptr<std::array<uint32_t, kBuckets>> dense_;
  uint64_t count_ = 0;
  uint64_t sum_us_ = 0;
};

// The anomaly rule and its knobs (all configurable; defaults documented in docs/topology.md).
struct AnomalyConfig {
  bool enabled = true;
  uint64_t window_ns = 1'000'000'000;  // evaluation window
  double alpha = 0.2;                  // EWMA weight of the newest window in the baseline
  double k = 4.0;                      // deviations above the baseline that count as a jump
  uint32_t min_samples = 20;           // attempts (or latency samples) a window needs to be judged
  uint32_t baseline_windows = 5;       // judged windows before the baseline is trusted
  double failure_rate_min_delta = 0.2;  // and the failure rate must exceed the baseline by this much (absolute)
  double latency_min_ratio = 2.0;       // and the mean connect latency must be at least this multiple of it
  uint64_t new_edge_warmup_ns = 60'000'000'000;  // new edges are only flagged this long after the store started
  size_t max_flags_per_edge = 8;
};

// Per-edge windowed detector. Windows are aligned to multiples of window_ns of the injected clock.
class AnomalyDetector {
 public:
  void record_attempt(bool failed) {
    ++attempts_;
    failures_ += failed;
  }
  void record_latency(double us) {
    ++lat_n_;
    lat_sum_ += us;
  }
  // Closes the current window if `now_ns` is past it, judging it against the baseline, then judges the new
  // window as far as it has come: a window that already has min_samples and is past the threshold is flagged at
  // once, not when it ends (a burst of failures shows within its first min_samples attempts). Raised flags are
  // merged into `flags`; a window raises each reason at most once. Returns the number of new flags. Call before
  // recording samples taken at `now_ns`.
  uint32_t roll(uint64_t now_ns, const AnomalyConfig& cfg, std::vector<AnomalyFlag>& flags);

 private:
  // Judges the current window's samples so far (`closing`: the window is complete, so the baselines learn it).
  uint32_t judge(const AnomalyConfig& cfg, std::vector<AnomalyFlag>& flags, bool closing);
  struct Baseline {
    double mean = 0, dev = 0;
    uint32_t n = 0;
    void add(double x, double alpha);
  };
  uint64_t window_ = 0;  // index of the window being filled
  uint32_t attempts_ = 0, failures_ = 0, lat_n_ = 0;
  double lat_sum_ = 0;
  bool fail_flagged_ = false, lat_flagged_ = false;  // this window raised that reason already
  Baseline fail_, lat_;
};

// Appends a flag or extends the previous one when it has the same reason and directly precedes it.
// Returns true when a new flag was added.
bool merge_flag(std::vector<AnomalyFlag>& flags, AnomalyFlag f, uint64_t window_ns, size_t max_flags);

}  // namespace hostscope::topology
