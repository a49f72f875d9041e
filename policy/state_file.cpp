#include "policy/state_file.h"

#include <fstream>

#include <fmt/format.h>

namespace hostscope::policy {

Outcome write_file_atomic(const std::filesystem::path& p, const std::string& text) {
  auto tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return Failure{fmt::format("policy state file {} open for write failed", tmp.string())};
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      return Failure{fmt::format("policy state file {} write failed", tmp.string())};
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, p, ec);
  if (ec) return Failure{fmt::format("policy state file {} rename failed: {}", p.string(), ec.message())};
  return Done{};
}

}  // namespace hostscope::policy
