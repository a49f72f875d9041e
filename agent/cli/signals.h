#pragma once
// Shutdown on SIGINT/SIGTERM: the signals are blocked in every thread and waited for by the main thread,
// so no handler runs in the middle of the reader's work. SIGPIPE is ignored; a failed write stops output.
#include <chrono>
#include <functional>

namespace hostscope::cli {

void block_shutdown_signals();  // call before starting any thread
// Waits until a shutdown signal arrives or `done()` returns true (checked every `tick`); returns the signal or 0.
int wait_for_shutdown(const std::function<bool()>& done, std::chrono::milliseconds tick = std::chrono::milliseconds(100));

}  // namespace hostscope::cli
