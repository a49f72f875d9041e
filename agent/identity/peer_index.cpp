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
  while (!closed_order_.empty()) {
    auto it = map_.find(closed_order_.front());
    if (it != map_.end() && it->second.expires > now) break;
    if (it != map_.end()) {
      map_.erase(it);
      stats_.expired++;
    }
    closed_order_.pop_front();
  }
}

void PeerIndex::evict_one_locked() {
  bool closed = !closed_order_.empty();
  auto& order = closed ? closed_order_ : open_order_;
  if (order.empty()) return;
  map_.erase(order.front());
  order.pop_front();
  (closed ? stats_.evicted_closed : stats_.evicted_open)++;
}

PeerIndex::Entry& PeerIndex::insert_locked(const Key& k, uint32_t pid) {
  auto it = map_.find(k);
  if (it != map_.end()) {
    // The same tuple again (a reused port after the grace period, or a repeated event): it is open now.
    Entry& e = it->second;
    if (e.closed) {
      closed_order_.erase(e.pos);
      e.pos = open_order_.insert(open_order_.end(), k);
      e.closed = false;
    }
    e.pid = pid;
    return e;
  }
  while (map_.size() >= opts_.capacity) evict_one_locked();
  Entry& e = map_[k];
  e.pid = pid;
  e.pos = open_order_.insert(open_order_.end(), k);
  stats_.max_size = std::max(stats_.max_size, map_.size());
  return e;
}

void PeerIndex::on_open(const ConnTuple& t, uint32_t pid) {
  if (!pid || !t.family) return;
  std::lock_guard lk(mu_);
  expire_locked(opts_.clock());
  stats_.opens++;
  insert_locked(key_of(t), pid);
}

void PeerIndex::on_close(const ConnTuple& t, uint32_t pid) {
  if (!t.family) return;
  std::lock_guard lk(mu_);
  auto now = opts_.clock();
  expire_locked(now);
  stats_.closes++;
  Key k = key_of(t);
  auto it = map_.find(k);
  if (it == map_.end()) {
    if (!pid) return;
    insert_locked(k, pid);
    it = map_.find(k);
  } else if (it->second.closed) {
    return;  // a second close of the same tuple: keep the first deadline
  }
  Entry& e = it->second;
  if (pid) e.pid = pid;
  open_order_.erase(e.pos);
  e.pos = closed_order_.insert(closed_order_.end(), k);
  e.closed = true;
  e.expires = now + opts_.close_grace;
}

std::optional<uint32_t> PeerIndex::peer_of(const ConnTuple& t) {
  if (!t.family) return std::nullopt;
  std::lock_guard lk(mu_);
  expire_locked(opts_.clock());
  auto it = map_.find(key_of(t.reversed()));
  if (it == map_.end()) {
    stats_.misses++;
    return std::nullopt;
  }
  stats_.hits++;
  return it->second.pid;
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
