#pragma once
// Glue between TCP events and identity: for each event, the owner's identity and, for a local peer, the peer's
// pid and identity. Runs in the TCP reader's sink, so it only does hash lookups; an unknown pid first asks the
// process reader to apply what is already queued (catch_up), because the exec event of a process that
// connected right away may still wait in the process ring buffer.
#include <functional>
#include <memory>
#include <optional>

#include "agent/events/connection.h"
#include "agent/identity/peer_index.h"
#include "agent/identity/process_table.h"

namespace hostscope::identity {

struct ResolvedConnection {
  std::shared_ptr<const ProcessIdentity> owner;  // nullptr when the owner is unknown (pid 0, or never seen)
  std::optional<uint32_t> peer_pid;              // the other end's owner when it is on this host
  std::shared_ptr<const ProcessIdentity> peer;
};

ConnTuple tuple_of(const events::ConnectionEvent& e);

struct ResolverStats {
  uint64_t events = 0, owner_unknown = 0, catch_ups = 0, refreshes_requested = 0, peers_found = 0;
};

class ConnectionResolver {
 public:
  // `catch_up` may be empty (no process tracer: lookups only).
  ConnectionResolver(ProcessTable& table, PeerIndex& peers, std::function<void()> catch_up = {});

  // Call once per batch of TCP events, before resolving them: applies the process events already queued, so an
  // exec that happened before a connection is known when the connection is resolved (one ring check per batch).
  void begin_batch();
  // Call once per event, in event order (open events feed the peer index; closes retire it).
  ResolvedConnection resolve(const events::ConnectionEvent& e);
  ResolverStats stats() const { return stats_; }

 private:
  ProcessTable& table_;
  PeerIndex& peers_;
  std::function<void()> catch_up_;
  ResolverStats stats_;
};

}  // namespace hostscope::identity

namespace hostscope::identity {

// Identity settings shared by `hostscope services`, `hostscope connections` and the daemon:
// `kubelet_root` prefixes /var/log/containers and /var/log/pods ("/" on a node, a fake tree in tests);
// `config_file` (may be empty) is YAML whose `service_rules:` are loaded (service_name.h).
Result<ProcessTableOptions> identity_options(const std::string& kubelet_root, const std::string& config_file);

}  // namespace hostscope::identity
