#pragma once
// What this node's pods and containers are reachable at: the addresses of each network namespace that a known
// process lives in, the TCP ports each service listens on (in its own namespace), and the node's own addresses.
// Feeds the policy catalogue (ServiceInfo.addresses/ports), and anything that names an address by its local owner.
//
// Everything is read from /proc of the host, without entering any namespace: /proc/PID/net/* shows the network
// namespace of PID. Per distinct namespace (the inode of /proc/PID/ns/net), one process is read:
//   /proc/PID/net/if_inet6          IPv6 addresses of the namespace's interfaces
//   /proc/PID/net/fib_trie          IPv4 local addresses ("/32 host LOCAL" leaves)
//   /proc/PID/net/tcp, tcp6         listening sockets (state 0A): socket inode -> port
// and per process of a service, /proc/PID/fd maps its socket inodes to those listeners. The node's own addresses
// are those of the initial namespace (of kthreadd, pid 2, or init). Loopback and link-local
// addresses are left out. Results are cached (max_age, or sooner after process exec/exit), bounded (namespaces,
// addresses and listeners per namespace, fds per process), and every read error or drop is counted, never thrown.
// See docs/identity.md ("Local endpoints").
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/process_table.h"

namespace hostscope::identity {

// ---- parsers (pure, for fixtures) ----

// Canonical text of the usable addresses in /proc/PID/net/if_inet6 (no ::1, no fe80::/10), in file order,
// without duplicates. `*malformed` counts lines that are not an address line.
std::vector<std::string> parse_if_inet6(std::string_view text, size_t* malformed = nullptr);
// IPv4 local addresses of /proc/PID/net/fib_trie: the leaves followed by "/32 host LOCAL" (no 127.0.0.0/8, no
// 169.254.0.0/16), in file order, without duplicates (the Main and Local tables both list them).
std::vector<std::string> parse_fib_trie(std::string_view text, size_t* malformed = nullptr);

struct ListeningSocket {
  uint64_t inode = 0;
  uint16_t port = 0;
};
// Listening sockets (state 0A) of /proc/PID/net/tcp or tcp6. The header line is skipped.
std::vector<ListeningSocket> parse_proc_net_tcp_listening(std::string_view text, size_t* malformed = nullptr);
// The inode of a "socket:[12345]" fd link target, 0 for anything else.
uint64_t socket_inode_of_link(std::string_view target);
// The inode of a "net:[4026531840]" /proc/PID/ns/net link target (the namespace's id), 0 for anything else.
uint64_t netns_inode_of_link(std::string_view target);

// ---- the cache ----

struct LocalEndpointsOptions {
  std::filesystem::path proc_root = "/proc";
  // The node's network namespace is the first of these processes' that can be read: kthreadd (kernel threads
  // live in the initial namespace; pid 1 may be unreadable, e.g. a non-dumpable init in a sandbox), then init.
  std::vector<uint32_t> host_pids = {2, 1};
  std::chrono::milliseconds max_age{30'000};          // a snapshot older than this is read again
  std::chrono::milliseconds min_interval{1'000};      // process exec/exit re-reads no more often than this
  size_t max_namespaces = 4096;                       // network namespaces read per refresh (host included)
  size_t max_addresses_per_namespace = 64;
  size_t max_listeners_per_namespace = 4096;
  size_t max_fds_per_process = 65536;                 // fd links inspected per process
  size_t max_file_bytes = 16u << 20;                  // per /proc/PID/net file; the rest is not parsed
  std::function<std::chrono::steady_clock::time_point()> clock = &std::chrono::steady_clock::now;
};

// The owner of an address in a network namespace other than the node's. A namespace shared by processes of
// several services gives its addresses to each of them.
struct AddressOwner {
  std::string address;  // canonical text (inet_ntop)
  std::string service, k8s_namespace, workload, pod;
  uint64_t netns = 0;   // namespace inode
  bool operator<(const AddressOwner& o) const;
};

struct LocalEndpointsSnapshot {
  std::vector<std::string> node_addresses;             // the host namespace's, sorted
  std::vector<AddressOwner> owners;                    // sorted by address, then service
  std::map<std::string, std::vector<uint16_t>> ports;  // service -> listening TCP ports, sorted
  size_t namespaces = 0;                               // namespaces read (host included)
  std::chrono::steady_clock::time_point taken{};

  // The first owner of `address` (canonical text), nullptr when it is not a local pod's/container's.
  const AddressOwner* owner_of(std::string_view address) const;
  std::vector<std::string> addresses_of(std::string_view service) const;
};

struct LocalEndpointsStats {
  uint64_t refreshes = 0;
  uint64_t namespaces_dropped = 0;   // namespaces not read: max_namespaces reached
  uint64_t addresses_dropped = 0;    // addresses beyond max_addresses_per_namespace
  uint64_t listeners_dropped = 0;    // listening sockets beyond max_listeners_per_namespace
  uint64_t fds_dropped = 0;          // fds not inspected: max_fds_per_process reached
  uint64_t files_truncated = 0;      // /proc/PID/net files larger than max_file_bytes
  uint64_t read_errors = 0;          // /proc files that could not be read (mostly processes that just exited)
  uint64_t malformed_lines = 0;      // lines the parsers did not understand
  uint64_t shared_namespaces = 0;    // namespaces holding processes of more than one service (last refresh)
  std::string last_error;            // the most recent read error, with the file and operation
};

class LocalEndpoints {
 public:
  using Processes = std::vector<std::shared_ptr<const ProcessIdentity>>;
  explicit LocalEndpoints(LocalEndpointsOptions o = {});

  // The cached snapshot; reads /proc again when it is older than max_age, or when `generation` (a count of
  // process exec/exit events, see generation_of) changed and min_interval has passed. `processes` is called
  // only when a read happens. Thread-safe: concurrent callers wait for one read.
  std::shared_ptr<const LocalEndpointsSnapshot> get(const std::function<Processes()>& processes, uint64_t generation);
  // Same, over a process table (its exec and exit counts are the generation).
  std::shared_ptr<const LocalEndpointsSnapshot> get(const ProcessTable& table);
  // Reads now, whatever the cache holds.
  std::shared_ptr<const LocalEndpointsSnapshot> read(const Processes& processes);

  LocalEndpointsStats stats() const;
  const LocalEndpointsOptions& options() const { return opts_; }

 private:
  struct Namespace;
  std::shared_ptr<LocalEndpointsSnapshot> read_locked(const Processes& processes);
  Result<std::string> read_net_file(uint32_t pid, const char* name);
  bool read_addresses(uint32_t pid, std::vector<std::string>& out);
  bool read_listeners(uint32_t pid, std::map<uint64_t, uint16_t>& out);
  void ports_of(uint32_t pid, const std::map<uint64_t, uint16_t>& listeners, std::vector<uint16_t>& out);
  void note_error(const Error& e);

  LocalEndpointsOptions opts_;
  mutable std::mutex mu_;
  std::shared_ptr<const LocalEndpointsSnapshot> cached_;
  uint64_t generation_ = 0;
  LocalEndpointsStats stats_;
};

// A count that changes when processes exec or exit (the process table's event counters).
uint64_t generation_of(const ProcessTable& table);

}  // namespace hostscope::identity
