#include "agent/daemon/agent.h"

namespace hostscope::daemon {

std::unique_ptr<IdentityResolver> make_default_resolver(const Config& cfg, Pipeline* pipeline) {
  return make_comm_resolver();
}

}  // namespace hostscope::daemon
