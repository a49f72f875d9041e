#pragma once
// Loads and attaches bpf/tcp_lifecycle.bpf.c. Chooses each hook's program on its own: the BTF-typed tracepoint
// where the kernel's BTF has it, else the classic tracepoint, else the hook is off (optional hooks only). Falls
// back to classic tracepoints for everything when the tp_btf programs cannot load, and says what degrades.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include <linux/types.h>

#include "edge_agg.h"

namespace hostscope::bpf {

enum class AttachMode { Auto, Btf, Classic };
std::string_view to_string(AttachMode m);  // what was attached: "auto" | "tp_btf" | "tracepoint"
// The one parser of the attach-mode names the config (kernel.attach) and the CLI (--attach) accept.
inline constexpr std::string_view kAttachModeNames = "auto, btf, classic";
std::optional<AttachMode> parse_attach_mode(std::string_view name);

// What one hook got on this kernel (Auto chooses per hook: tp_btf where the kernel's BTF has it, else the classic
// tracepoint, else off).
enum class HookMode { Off, Btf, Classic, Fexit };
std::string_view to_string(HookMode m);  // "tp_btf" | "tracepoint" | "fexit" | "off"
struct HookChoice {
  std::string hook;  // "sock/inet_sock_set_state": the tracepoint's category/event, as doctor names it
  HookMode mode = HookMode::Off;
};

struct TcpTracerOptions {
  AttachMode mode = AttachMode::Auto;
  uint32_t socket_table_size = 65536;    // tcp_socks LRU entries: connections tracked at once
  uint32_t ring_bytes = 8u << 20;        // ring buffer size (power of two, page multiple)
  uint64_t wakeup_bytes = 0;             // wake the reader when this much is queued (0: never; it polls)
  bool emit_opens = true;                // emit open events (close events are always emitted)
  bool stitch_peers = false;             // name the local peer's owner on events (peer_pid), in the kernel
  // tcp_edges entries: count every connection per edge in the kernel (docs/aggregation.md); 0 leaves it off.
  uint32_t edge_table_size = 0;
  // With edge_table_size: send per-connection events too (switchable at run time, set_events_wanted).
  bool events_wanted = true;
};

// One entry of the kernel's edge table: its key and what it counted since it was created.
struct KernelEdge {
  hs_edge_key key{};
  hs_edge_counts counts{};
};

struct KernelCounters {
  uint64_t ringbuf_dropped = 0, events = 0, socket_table_full = 0, close_untracked = 0, passive_owner_unknown = 0,
           goid_read_failed = 0;
  uint64_t peer_evicted = 0;  // connections waiting for a local peer whose peer-table entry was evicted (LRU full)
  uint64_t edge_table_full = 0;  // connections whose edge found no room in tcp_edges (sent as events instead)
  uint64_t edges_created = 0;    // tcp_edges entries created (its occupancy: nothing deletes them yet)
  uint64_t prog_recursion_misses = 0;  // invocations the kernel skipped because the program was already running on that CPU
};

class TcpTracer {
 public:
  static Result<std::unique_ptr<TcpTracer>> start(const TcpTracerOptions& opts);
  ~TcpTracer();
  TcpTracer(const TcpTracer&) = delete;
  TcpTracer& operator=(const TcpTracer&) = delete;

  int events_fd() const;
  int go_procs_fd() const;
  int socket_table_fd() const;
  AttachMode mode() const { return mode_; }  // the state-change hook's mode
  const std::vector<HookChoice>& hooks() const { return hooks_; }
  // Human-readable notes on what is degraded on this kernel (empty when everything is on).
  const std::vector<std::string>& degraded() const { return degraded_; }
  KernelCounters counters() const;
  uint32_t socket_table_size() const { return table_size_; }

  // The kernel edge table (edge_table_size > 0): its capacity (0 when off), every entry (batch lookups), and the
  // switch for per-connection events of connections counted there.
  uint32_t edge_table_size() const { return edge_table_size_; }
  Result<std::vector<KernelEdge>> read_edges() const;
  void set_events_wanted(bool wanted);

  struct Impl;  // the skeleton and its links

 private:
  TcpTracer() = default;
  std::unique_ptr<Impl> impl_;
  AttachMode mode_ = AttachMode::Auto;
  std::vector<std::string> degraded_;
  std::vector<HookChoice> hooks_;
  uint32_t table_size_ = 0;
  uint32_t edge_table_size_ = 0;
};

}  // namespace hostscope::bpf
