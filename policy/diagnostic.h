#pragma once
// Lint findings. Every diagnostic points at file:line:column (1-based) so editors can jump to it.
#include <string>
#include <vector>

namespace hostscope::policy {

enum class Severity { Warning, Error };

struct SourceLoc {
  std::string file;  // as given to the loader (relative to the policy directory)
  int line = 0;      // 1-based; 0 = unknown
  int column = 0;    // 1-based
  std::string str() const;
};

struct Diagnostic {
  Severity severity = Severity::Error;
  SourceLoc loc;
  std::string message;
  // "file:line:col: error: message"
  std::string str() const;
};

using Diagnostics = std::vector<Diagnostic>;

bool has_errors(const Diagnostics& d);
// Stable order for output: by file, line, column, then insertion order.
void sort_diagnostics(Diagnostics& d);

}  // namespace hostscope::policy
