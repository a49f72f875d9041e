#pragma once
// ConntrackResolver over libnetfilter-conntrack: one NFCT_Q_GET per lookup on a netlink socket bound to a
// network namespace. Blocking, so it only runs on the NatWorker thread; each answer waits at most `timeout_ms`.
#include <memory>

#include "agent/topology/nat.h"
#include "common/result.h"

struct nfct_handle;

namespace hostscope::topology {

class NetfilterConntrack final : public ConntrackResolver {
 public:
  // Opens the conntrack netlink socket in the namespace of `netns_fd` (an open /proc/PID/ns/net or
  // /run/netns/NAME), or in the caller's namespace when netns_fd < 0. The socket stays in that namespace.
  static Result<std::unique_ptr<NetfilterConntrack>> open(int netns_fd = -1, int timeout_ms = 200);
  ~NetfilterConntrack() override;
  NetfilterConntrack(const NetfilterConntrack&) = delete;
  NetfilterConntrack& operator=(const NetfilterConntrack&) = delete;

  Result<std::optional<Destination>> actual_destination(const FlowTuple& original) override;

 private:
  explicit NetfilterConntrack(nfct_handle* h) : h_(h) {}
  nfct_handle* h_ = nullptr;
};

}  // namespace hostscope::topology
