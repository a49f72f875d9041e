#include "agent/daemon/agent.h"
#include "agent/daemon/process_resolver.h"

namespace hostscope::daemon {

std::unique_ptr<IdentityResolver> make_default_resolver(const Config& cfg, Pipeline*) {
  IdentitySettings s;
  s.kubelet_root = cfg.identity.kubelet_root;
  // service_rules come from the same file (already validated by parse_config).
  if (!cfg.source.empty() && cfg.source != "(defaults)") s.config_file = cfg.source;
  s.max_processes = cfg.identity.max_processes;
  s.ring_bytes = cfg.kernel.process_ring_buffer_mb << 20;
  s.mode = cfg.kernel.attach == "btf" ? bpf::AttachMode::Btf
           : cfg.kernel.attach == "classic" ? bpf::AttachMode::Classic
                                            : bpf::AttachMode::Auto;
  return std::make_unique<ProcessResolver>(s);
}

}  // namespace hostscope::daemon
