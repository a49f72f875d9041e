#include "agent/identity/peer_index.h"

#include <algorithm>
#include <cstring>

namespace hostscope::identity {

ConnTuple ConnTuple::reversed() const {
  ConnTuple r = *this;
  std::swap(r.saddr, r.daddr);
  std::swap(r.sport, r.dport);
  return r;
}

bool ConnTuple::is_loopback() const {
  auto lo = [&](const std::array<uint8_t, 16>& a) {
    if (family == 4) return a[0] == 127;
    static constexpr std::array<uint8_t, 16> v6{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return a == v6;
  };
  return lo(saddr) && lo(daddr);
}

size_t PeerIndex::KeyHash::operator()(const Key& k) const {
  // FNV-1a over the fields: cheap and good enough for ports that differ in the low bits.
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  };
  mix(k.saddr.data(), k.family == 4 ? 4 : 16);
  mix(k.daddr.data(), k.family == 4 ? 4 : 16);
  mix(&k.sport, sizeof(k.sport));
  mix(&k.dport, sizeof(k.dport));
  mix(&k.netns, sizeof(k.netns));
  return size_t(h);
}

PeerIndex::PeerIndex(PeerIndexOptions opts) : opts_(std::move(opts)) {
  if (opts_.capacity == 0) opts_.capacity = 1;
  stats_.capacity = opts_.capacity;
}

PeerIndex::Key PeerIndex::key_of(const ConnTuple& t) {
  Key k{};
  k.family = t.family;
  size_t n = t.family == 4 ? 4 : 16;
  std::memcpy(k.saddr.data(), t.saddr.data(), n);
  std::memcpy(k.daddr.data(), t.daddr.data(), n);
  k.sport = t.sport;
  k.dport = t.dport;
  k.netns = t.is_loopback() ? t.netns : 0;
  return k;
}

void PeerIndex::expire_locked(std::chrono::steady_clock::time_point now) {
  while (!closed_order_.empty() && closed_order_.front().expires <= now) {
    if (map_.erase(closed_order_.front().key)) stats_.expired++;
    closed_order_.pop_front();
  }
}

void PeerIndex::evict_one_locked() {
  bool closed = !closed_order_.empty();
  auto& order = closed ? closed_order_ : open_order_;
  if (order.empty()) return;
  map_.erase(order.front().key);
  order.pop_front();
  (closed ? stats_.evicted_closed : stats_.evicted_open)++;
}

void PeerIndex::erase_locked(Map::iterator it) {
  (it->second.closed ? closed_order_ : open_order_).erase(it->second.pos);
  map_.erase(it);
}

PeerIndex::Map::iterator PeerIndex::insert_locked(const Key& k, uint32_t pid) {
  if (map_.size() >= opts_.capacity && !map_.contains(k))
    while (map_.size() >= opts_.capacity) evict_one_locked();
  auto [it, fresh] = map_.try_emplace(k);
  Entry& e = it->second;
  if (fresh) {
    e.pos = open_order_.insert(open_order_.end(), Slot{k, {}});
    stats_.max_size = std::max(stats_.max_size, map_.size());
  } else if (e.closed) {
    // The same tuple again (a reused port after the grace period, or a repeated event): it is open now.
    closed_order_.erase(e.pos);
    e.pos = open_order_.insert(open_order_.end(), Slot{k, {}});
    e.closed = false;
    e.peer_pid = 0;
  }
  e.pid = pid;
  return it;
}

std::optional<uint32_t> PeerIndex::observe(Event ev, const ConnTuple& t, uint32_t pid) {
  if (!t.family) return std::nullopt;
  std::lock_guard lk(mu_);
  auto now = opts_.clock();
  expire_locked(now);
  const Key k = key_of(t);
  auto own = map_.end();
  if (ev == Event::open) {
    stats_.opens++;
    if (pid) own = insert_locked(k, pid);  // first: an eviction here must not leave `peer` dangling
  } else {
    own = map_.find(k);
  }
  auto peer = map_.find(key_of(t.reversed()));
  std::optional<uint32_t> found;
  if (peer != map_.end()) found = peer->second.pid;
  else if (own != map_.end() && own->second.peer_pid) found = own->second.peer_pid;
  found ? stats_.hits++ : stats_.misses++;
  if (ev != Event::close) return found;

  stats_.closes++;
  const uint32_t mine = pid ? pid : own != map_.end() ? own->second.pid : 0;
  if (peer != map_.end() && !peer->second.closed) {
    // The other end is still open: it keeps our pid for its own close, and our tuple is done.
    if (mine) peer->second.peer_pid = mine;
    if (own != map_.end()) erase_locked(own);
    stats_.handed_over++;
  } else if (found) {
    // The other end closed before us: both ends are closed, nothing more to find.
    if (own != map_.end()) erase_locked(own);
    if (peer != map_.end()) erase_locked(peer);
  } else if (own == map_.end() || !own->second.closed) {
    // No other end known (remote, or its open not seen yet): remember our end for the grace period. A close
    // whose open was not seen is inserted; a second close of the same tuple keeps the first deadline.
    if (own == map_.end()) {
      if (!mine) return found;
      own = insert_locked(k, mine);
    }
    Entry& e = own->second;
    if (pid) e.pid = pid;
    open_order_.erase(e.pos);
    e.pos = closed_order_.insert(closed_order_.end(), Slot{k, now + opts_.close_grace});
    e.closed = true;
  }
  return found;
}

PeerIndexStats PeerIndex::stats() const {
  std::lock_guard lk(mu_);
  PeerIndexStats s = stats_;
  s.size = map_.size();
  return s;
}

size_t PeerIndex::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

}  // namespace hostscope::identity
