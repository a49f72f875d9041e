#pragma once
// Prometheus text exposition format 0.0.4 (what `promtool check metrics` validates): families with HELP and
// TYPE, samples with escaped label values. Families are built at scrape time from snapshots, so nothing here
// keeps state between scrapes: a series whose source is gone (an expired edge) is simply not written.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hostscope::exporters {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

class Exposition {
 public:
  // Starts a family; `type` is counter, gauge, histogram or untyped. A family must be started once per scrape.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample; `suffix` is appended to the family name (_bucket, _sum, _count for histograms).
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, const Labels& labels, uint64_t value);
  // A histogram series: cumulative counts below `bounds` (in the family's unit), then +Inf = count.
  void histogram(std::string_view name, Labels labels, const std::vector<double>& bounds,
                 const std::vector<uint64_t>& cumulative, double sum, uint64_t count);
  const std::string& text() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void labels(const Labels& l);
  std::string out_;
};

// Label value escaping (backslash, double quote, newline).
void append_escaped(std::string& out, std::string_view v);
// Go-compatible float text (+Inf, -Inf, NaN, shortest round-trip otherwise).
std::string format_value(double v);

}  // namespace hostscope::exporters
