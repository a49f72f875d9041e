#pragma once
// Live TCP connections by 4-tuple -> owning pid, so an event whose peer is on this host (loopback, or another
// network namespace of this node) can name the peer process: look the reversed tuple up.
//
// Ordering: the two ends of a connection report independently and either may close first. The end that closes
// first while the other is still open hands its pid over to the other's entry and is forgotten at once, so the
// later close still finds it and a busy host does not keep every closed tuple around; a close that finds no
// other end stays for a grace period (the other end's open may not have been seen). Bounded: at capacity the
// oldest closed tuple goes first, then the oldest open one.
// Loopback tuples are also keyed by network namespace (127.0.0.1:x -> 127.0.0.1:y in two namespaces are two
// different connections); other addresses are not, so the two ends of a veth pair in different namespaces
// meet. See docs/identity.md ("Peer stitching").
#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <unordered_map>

namespace hostscope::identity {

struct ConnTuple {
  uint8_t family = 0;  // 4 or 6 (IPv4-mapped IPv6 already normalised to 4)
  std::array<uint8_t, 16> saddr{}, daddr{};
  uint16_t sport = 0, dport = 0;
  uint32_t netns = 0;  // network namespace inode of the socket

  ConnTuple reversed() const;
  bool is_loopback() const;  // both ends in 127.0.0.0/8 or ::1
};

struct PeerIndexOptions {
  size_t capacity = 65536;
  std::chrono::milliseconds close_grace{5000};
  std::function<std::chrono::steady_clock::time_point()> clock = &std::chrono::steady_clock::now;
};

struct PeerIndexStats {
  uint64_t opens = 0, closes = 0;
  uint64_t handed_over = 0;  // closes whose other end was open: pid handed over, tuple forgotten at once
  uint64_t hits = 0, misses = 0;
  uint64_t evicted_open = 0, evicted_closed = 0, expired = 0;
  size_t size = 0, max_size = 0, capacity = 0;
};

class PeerIndex {
 public:
  explicit PeerIndex(PeerIndexOptions opts = {});

  // One event of the stream, in order. Returns the owner of the other end of `t` when it is a local
  // connection (open, or closed and still remembered), looked up before a close retires `t`.
  // pid 0: owner unknown (an open is then not recorded).
  enum class Event : uint8_t { open, close, other };
  std::optional<uint32_t> observe(Event ev, const ConnTuple& t, uint32_t pid);

  void on_open(const ConnTuple& t, uint32_t pid) { observe(Event::open, t, pid); }
  void on_close(const ConnTuple& t, uint32_t pid) { observe(Event::close, t, pid); }
  std::optional<uint32_t> peer_of(const ConnTuple& t) { return observe(Event::other, t, 0); }

  PeerIndexStats stats() const;
  size_t size() const;

 private:
  struct Key {
    std::array<uint8_t, 16> saddr, daddr;
    uint16_t sport, dport;
    uint32_t netns;  // 0 unless loopback
    uint8_t family;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const;
  };
  // Position in the open or closed order. A closed slot carries its deadline, so the expiry check looks at the
  // front of the list only and touches the map only when something is due.
  struct Slot {
    Key key;
    std::chrono::steady_clock::time_point expires;
  };
  struct Entry {
    uint32_t pid = 0;
    uint32_t peer_pid = 0;  // handed over by the other end when it closed first
    bool closed = false;
    std::list<Slot>::iterator pos;
  };
  using Map = std::unordered_map<Key, Entry, KeyHash>;
  static Key key_of(const ConnTuple& t);
  void expire_locked(std::chrono::steady_clock::time_point now);
  void evict_one_locked();
  Map::iterator insert_locked(const Key& k, uint32_t pid);
  void erase_locked(Map::iterator it);

  PeerIndexOptions opts_;
  mutable std::mutex mu_;
  Map map_;
  std::list<Slot> open_order_, closed_order_;
  PeerIndexStats stats_;
};

}  // namespace hostscope::identity
