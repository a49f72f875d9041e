#include "policy/diagnostic.h"

#include <algorithm>

#include <fmt/format.h>

namespace hostscope::policy {

std::string SourceLoc::str() const {
  if (line == 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

std::string Diagnostic::str() const {
  return fmt::format("{}: {}: {}", loc.str(), severity == Severity::Error ? "error" : "warning", message);
}

bool has_errors(const Diagnostics& d) {
  return std::any_of(d.begin(), d.end(), [](const Diagnostic& x) { return x.severity == Severity::Error; });
}

void sort_diagnostics(Diagnostics& d) {
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.loc.file, a.loc.line, a.loc.column) < std::tie(b.loc.file, b.loc.line, b.loc.column);
  });
}

}  // namespace hostscope::policy
