#pragma once
// DNAT resolution (Kubernetes ClusterIPs, kube-proxy): the destination a client dialled is looked up in
// conntrack by the connection's original tuple; the reply tuple's source is the backend actually reached.
// Lookups never run on the event path: the store queues them to a bounded worker and applies the answers later.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/topology_model.h"
#include "common/result.h"

namespace hostscope::topology {

struct FlowTuple {
  IpAddr src, dst;  // as the client's socket sees them (dst = the dialled address)
  uint16_t sport = 0, dport = 0;
  Protocol protocol = Protocol::Tcp;
  bool operator==(const FlowTuple&) const = default;
};

struct Destination {
  IpAddr addr;
  uint16_t port = 0;
  bool operator==(const Destination&) const = default;
  std::string str() const { return format_addr_port(addr, port); }
};

// Kernel-facing interface, faked in unit tests. Implementations may block; only the worker calls them.
class ConntrackResolver {
 public:
  virtual ~ConntrackResolver() = default;
  // The actual destination (reply-tuple source) of the flow with this original tuple; nullopt when conntrack
  // has no such entry. Equal to the dialled destination when the flow was not DNATed.
  virtual Result<std::optional<Destination>> actual_destination(const FlowTuple& original) = 0;
};

struct NatRequest {
  FlowTuple tuple;
  EdgeKey edge;  // where to record the answer
};

struct NatResult {
  EdgeKey edge;
  Destination dialed, actual;
};

struct NatWorkerConfig {
  size_t queue_capacity = 1024;  // pending lookups; submissions beyond this are dropped and counted
  size_t cache_capacity = 4096;  // answers by tuple (the open and the close event of one connection ask twice)
  size_t max_results = 4096;     // translated answers waiting for the store; the oldest are dropped beyond this
};

struct NatCounters {
  uint64_t submitted = 0, dropped = 0, lookups = 0, cache_hits = 0, not_found = 0, errors = 0, translated = 0;
};

// One background thread draining a bounded queue into the resolver. submit() never blocks.
class NatWorker {
 public:
  NatWorker(std::unique_ptr<ConntrackResolver> resolver, NatWorkerConfig cfg = {});
  ~NatWorker();
  NatWorker(const NatWorker&) = delete;
  NatWorker& operator=(const NatWorker&) = delete;

  bool submit(NatRequest r);               // false when the queue is full
  std::vector<NatResult> take_results();   // translated flows only (actual != dialled)
  NatCounters counters() const;
  // Blocks until the queue is empty and no lookup is running (tests, shutdown).
  void wait_idle();
  void stop();

 private:
  void run();

  std::unique_ptr<ConntrackResolver> resolver_;
  NatWorkerConfig cfg_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<NatRequest> queue_;
  std::deque<NatResult> results_;
  struct TupleHash {
    size_t operator()(const FlowTuple& t) const noexcept;
  };
  std::unordered_map<FlowTuple, std::optional<Destination>, TupleHash> cache_;
  std::deque<FlowTuple> cache_order_;  // FIFO eviction keeps the cache bounded
  NatCounters counters_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace hostscope::topology
