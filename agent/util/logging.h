#pragma once
// One logging facility: spdlog to stderr. Levels: error (operation failed), warn (degraded: a feature is off or
// data was lost), info (start-up facts), debug (-v: per-decision detail, libbpf's own output).
#include <spdlog/spdlog.h>

namespace hostscope {

void init_logging(int verbosity);  // 0 = warn, 1 = info, 2+ = debug (libbpf debug output too)

}  // namespace hostscope
