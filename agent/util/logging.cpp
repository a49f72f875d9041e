#include "agent/util/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace hostscope {

void init_logging(int verbosity) {
  auto logger = spdlog::stderr_color_mt("hostscope");
  logger->set_pattern("%^hostscope %l:%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(verbosity <= 0 ? spdlog::level::warn : verbosity == 1 ? spdlog::level::info : spdlog::level::debug);
}

}  // namespace hostscope
