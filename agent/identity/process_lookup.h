#pragma once
// The process-table lookup behind the pipeline's IdentityResolver (agent/pipeline/identity_resolver.h): for each
// event, the owner's identity and, for a local peer, the peer's identity (the kernel stitches local peers and puts
// the peer's pid on the event, see bpf/tcp_lifecycle.bpf.c).
// Runs in the TCP reader's sink, so it only does hash lookups; an unknown pid first asks the
// process reader to apply what is already queued (catch_up), because the exec event of a process that
// connected right away may still wait in the process ring buffer.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "common/connection.h"
#include "agent/identity/process_table.h"

namespace hostscope::identity {

struct ConnectionProcesses {
  std::shared_ptr<const ProcessIdentity> owner;  // nullptr when the owner is unknown (pid 0, or never seen)
  std::optional<uint32_t> peer_pid;              // the other end's owner when it is on this host
  std::shared_ptr<const ProcessIdentity> peer;
};

struct ProcessLookupStats {
  uint64_t events = 0, owner_unknown = 0, catch_ups = 0, refreshes_requested = 0, peers_found = 0;
};

class ProcessLookup {
 public:
  // `catch_up` may be empty (no process tracer: lookups only).
  explicit ProcessLookup(ProcessTable& table, std::function<void()> catch_up = {});

  // Call once per batch of TCP events, before resolving them: applies the process events already queued, so an
  // exec that happened before a connection is known when the connection is resolved (one ring check per batch).
  void begin_batch();
  // Call once per event.
  ConnectionProcesses resolve(const events::ConnectionEvent& e);
  // Safe from any thread (health reads it while the reader thread resolves).
  ProcessLookupStats stats() const;

 private:
  ProcessTable& table_;
  std::function<void()> catch_up_;
  // One writer (the reader thread): a load and a release store, no locked instruction on the per-event path.
  // Release/acquire keeps the order stats() relies on (a kind's count never ahead of the total it reads after).
  struct Counter {
    std::atomic<uint64_t> v{0};
    void inc() { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
    uint64_t get() const { return v.load(std::memory_order_acquire); }
  };
  Counter events_, owner_unknown_, catch_ups_, refreshes_requested_, peers_found_;
};

}  // namespace hostscope::identity

namespace hostscope::identity {

// Identity settings shared by `hostscope services`, `hostscope connections` and the daemon:
// `kubelet_root` prefixes /var/log/containers and /var/log/pods ("/" on a node, a fake tree in tests);
// `config_file` (may be empty) is YAML whose `service_rules:` are loaded (service_name.h).
Result<ProcessTableOptions> identity_options(const std::string& kubelet_root, const std::string& config_file);

}  // namespace hostscope::identity
