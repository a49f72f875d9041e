#include "agent/cli/signals.h"

#include <signal.h>
#include <time.h>

namespace hostscope::cli {

static sigset_t shutdown_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}

void block_shutdown_signals() {
  sigset_t s = shutdown_set();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int wait_for_shutdown(const std::function<bool()>& done, std::chrono::milliseconds tick) {
  sigset_t s = shutdown_set();
  timespec ts{time_t(tick.count() / 1000), long(tick.count() % 1000) * 1'000'000L};
  for (;;) {
    int sig = sigtimedwait(&s, nullptr, &ts);
    if (sig > 0) return sig;
    if (done && done()) return 0;
  }
}

}  // namespace hostscope::cli
