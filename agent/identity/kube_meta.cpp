#include "agent/identity/kube_meta.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <system_error>
#include <utility>
#include <vector>

#include "agent/identity/cgroup_identity.h"

namespace hostscope::identity {
namespace {

// Kubernetes object names: namespaces and container names are DNS labels (a-z0-9 and '-', at most
// 63), pod names are DNS subdomains (also '.', at most 253). None can contain '_', which is what
// makes the kubelet's '_'-joined file names unambiguous.
bool is_name(std::string_view s, std::size_t max_len, bool allow_dot) {
  if (s.empty() || s.size() > max_len) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (allow_dot && c == '.');
  });
}

bool split3(std::string_view s, char sep, std::string_view out[3]) {
  const std::size_t a = s.find(sep);
  if (a == std::string_view::npos) return false;
  const std::size_t b = s.find(sep, a + 1);
  if (b == std::string_view::npos || s.find(sep, b + 1) != std::string_view::npos) return false;
  out[0] = s.substr(0, a);
  out[1] = s.substr(a + 1, b - a - 1);
  out[2] = s.substr(b + 1);
  return true;
}

struct ScanResult {
  std::vector<std::pair<std::string, ContainerMeta>> containers;
  std::vector<std::pair<std::string, PodMeta>> pods;
  std::uint64_t errors = 0;
};

// Lists a directory without following anything; stops after `max` entries.
template <typename F>
bool list_dir(const std::filesystem::path& dir, std::size_t max, F&& fn) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) {
    spdlog::debug("kube meta: list {} failed: {}", dir.string(), ec.message());
    return false;
  }
  for (std::size_t n = 0; it != end; ++n) {
    if (n == max) {
      spdlog::warn("kube meta: {} has more than {} entries; the rest is ignored", dir.string(), max);
      break;
    }
    fn(*it);
    it.increment(ec);
    if (ec) return false;
  }
  return true;
}

ScanResult scan(const KubeMetaOptions& opts) {
  ScanResult r;
  // (namespace, pod) -> UIDs, for log files that are not symlinks or point elsewhere.
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> uids_by_name;
  if (!list_dir(opts.roots.pods_dir, opts.max_scan_entries, [&](const std::filesystem::directory_entry& e) {
        auto p = parse_pod_dir_name(e.path().filename().native());
        if (!p) return;
        uids_by_name[{p->ns, p->pod}].push_back(p->uid);
        r.pods.emplace_back(p->uid, PodMeta{p->pod, p->ns});
      })) {
    ++r.errors;
  }
  if (!list_dir(opts.roots.containers_dir, opts.max_scan_entries,
                [&](const std::filesystem::directory_entry& e) {
                  auto c = parse_container_log_name(e.path().filename().native());
                  if (!c) return;
                  ContainerMeta m{c->pod, c->ns, c->container, {}};
                  // The symlink target names the pod directory, which carries the UID. Only the link text
                  // is read; it is never followed (on a real node it is absolute and outside our root).
                  std::error_code ec;
                  const auto target = std::filesystem::read_symlink(e.path(), ec);
                  if (!ec) {
                    for (const auto& comp : target) {
                      auto p = parse_pod_dir_name(comp.native());
                      if (p && p->ns == m.ns && p->pod == m.pod) m.pod_uid = p->uid;
                    }
                  }
                  if (m.pod_uid.empty()) {
                    auto it = uids_by_name.find({m.ns, m.pod});
                    // A recreated pod (same name, new UID) leaves two directories: ambiguous, so no UID.
                    if (it != uids_by_name.end() && it->second.size() == 1) m.pod_uid = it->second.front();
                  }
                  if (!m.pod_uid.empty()) r.pods.emplace_back(m.pod_uid, PodMeta{m.pod, m.ns});
                  r.containers.emplace_back(std::move(c->container_id), std::move(m));
                })) {
    ++r.errors;
  }
  return r;
}

}  // namespace

std::optional<ContainerLogName> parse_container_log_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() <= kSuffix.size() + 65 || name.substr(name.size() - kSuffix.size()) != kSuffix)
    return std::nullopt;
  name.remove_suffix(kSuffix.size());
  // The id is the final 64 hex chars; the container name before it may itself contain '-'.
  std::string_view id = name.substr(name.size() - 64);
  if (!is_container_id(id) || name[name.size() - 65] != '-') return std::nullopt;
  std::string_view parts[3];
  if (!split3(name.substr(0, name.size() - 65), '_', parts)) return std::nullopt;
  if (!is_name(parts[0], 253, true) || !is_name(parts[1], 63, false) || !is_name(parts[2], 63, false)) {
    return std::nullopt;
  }
  return ContainerLogName{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
                          std::string(id)};
}

std::optional<PodDirName> parse_pod_dir_name(std::string_view name) {
  std::string_view parts[3];
  if (!split3(name, '_', parts)) return std::nullopt;
  if (!is_name(parts[0], 63, false) || !is_name(parts[1], 253, true) || !is_pod_uid(parts[2]))
    return std::nullopt;
  return PodDirName{std::string(parts[0]), std::string(parts[1]), std::string(parts[2])};
}

template <typename V>
const V* KubeMetaCache::Lru<V>::get(const std::string& key) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second);
  return &it->second->second;
}

template <typename V>
bool KubeMetaCache::Lru<V>::put(const std::string& key, V value, std::size_t cap) {
  if (cap == 0) return false;
  auto it = map_.find(key);
  if (it != map_.end()) {
    // A rescan re-puts everything it sees in directory order; moving those to the front would
    // erase the recency that lookups established, so only the value is refreshed.
    it->second->second = std::move(value);
    return false;
  }
  order_.emplace_front(key, std::move(value));
  map_.emplace(key, order_.begin());
  if (map_.size() <= cap) return false;
  map_.erase(order_.back().first);
  order_.pop_back();
  return true;
}

KubeMetaCache::KubeMetaCache(KubeMetaOptions opts, Clock clock)
    : opts_(std::move(opts)), clock_(std::move(clock)) {}

bool KubeMetaCache::maybe_rescan(std::string_view want_container, std::string_view want_pod) {
  const auto now = clock_();
  if (last_rescan_ && now - *last_rescan_ < opts_.min_rescan_interval) {
    ++stats_.rescans_suppressed;
    return false;
  }
  last_rescan_ = now;
  ++stats_.rescans;
  ScanResult r = scan(opts_);
  stats_.scan_errors += r.errors;
  // Entries being looked up go in last so they are the most recently used after the scan.
  auto wanted_last = [](auto& v, std::string_view want) {
    std::stable_partition(v.begin(), v.end(), [&](const auto& kv) { return kv.first != want; });
  };
  wanted_last(r.containers, want_container);
  wanted_last(r.pods, want_pod);
  for (auto& [k, v] : r.containers)
    if (containers_.put(k, std::move(v), opts_.cache_capacity)) ++stats_.evictions;
  for (auto& [k, v] : r.pods)
    if (pods_.put(k, std::move(v), opts_.cache_capacity)) ++stats_.evictions;
  return true;
}

std::optional<ContainerMeta> KubeMetaCache::by_container_id(std::string_view container_id) {
  std::lock_guard lock(mu_);
  const std::string key(container_id);
  if (const auto* m = containers_.get(key)) {
    ++stats_.hits;
    return *m;
  }
  ++stats_.misses;
  // A malformed id can never appear in the directory: no reason to spend a scan on it.
  if (!is_container_id(container_id) || !maybe_rescan(container_id, {})) return std::nullopt;
  if (const auto* m = containers_.get(key)) return *m;
  return std::nullopt;
}

std::optional<PodMeta> KubeMetaCache::by_pod_uid(std::string_view pod_uid) {
  std::lock_guard lock(mu_);
  const std::string key(pod_uid);
  if (const auto* m = pods_.get(key)) {
    ++stats_.hits;
    return *m;
  }
  ++stats_.misses;
  if (!is_pod_uid(pod_uid) || !maybe_rescan({}, pod_uid)) return std::nullopt;
  if (const auto* m = pods_.get(key)) return *m;
  return std::nullopt;
}

KubeMetaStats KubeMetaCache::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::size_t KubeMetaCache::container_entries() const {
  std::lock_guard lock(mu_);
  return containers_.size();
}

std::size_t KubeMetaCache::pod_entries() const {
  std::lock_guard lock(mu_);
  return pods_.size();
}

}  // namespace hostscope::identity
