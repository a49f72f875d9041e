#pragma once
// Kubernetes pod/container names without the API server: the kubelet's log layout on the node
// already maps container ids and pod UIDs to names.
//   <containers_dir>/<pod>_<namespace>_<container>-<64 hex container id>.log  (symlinks into pods_dir)
//   <pods_dir>/<namespace>_<pod>_<pod uid>/<container>/<restart>.log
// Lookups go through a bounded LRU cache; a miss triggers a directory rescan at most once per
// min_rescan_interval, so a flood of unknown ids (host processes, short-lived containers) costs
// at most one scan per interval.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace hostscope::identity {

struct KubeLogRoots {
  std::filesystem::path containers_dir = "/var/log/containers";
  std::filesystem::path pods_dir = "/var/log/pods";
};

struct ContainerMeta {
  std::string pod;
  std::string ns;
  std::string container;
  std::string pod_uid;  // empty when neither the symlink target nor pods_dir names it unambiguously

  bool operator==(const ContainerMeta&) const = default;
};

struct PodMeta {
  std::string pod;
  std::string ns;

  bool operator==(const PodMeta&) const = default;
};

// Parsed "<pod>_<namespace>_<container>-<id>.log"; nullopt when the name does not have that shape.
struct ContainerLogName {
  std::string pod, ns, container, container_id;
};
std::optional<ContainerLogName> parse_container_log_name(std::string_view file_name);

// Parsed "<namespace>_<pod>_<uid>" (a pods_dir entry).
struct PodDirName {
  std::string ns, pod, uid;
};
std::optional<PodDirName> parse_pod_dir_name(std::string_view dir_name);

struct KubeMetaOptions {
  KubeLogRoots roots;
  std::size_t cache_capacity = 4096;  // per map (containers and pods), entries
  std::chrono::milliseconds min_rescan_interval{2000};
  std::size_t max_scan_entries = 65536;  // directory entries read per scan: bounds time and memory
};

struct KubeMetaStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t rescans = 0;
  std::uint64_t rescans_suppressed = 0;  // misses that wanted a rescan but hit the rate limit
  std::uint64_t scan_errors = 0;         // directories that could not be listed
};

class KubeMetaCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` is injectable so the rate limit is testable without sleeping.
  explicit KubeMetaCache(KubeMetaOptions opts, Clock clock = &std::chrono::steady_clock::now);

  std::optional<ContainerMeta> by_container_id(std::string_view container_id);
  std::optional<PodMeta> by_pod_uid(std::string_view pod_uid);

  KubeMetaStats stats() const;
  std::size_t container_entries() const;
  std::size_t pod_entries() const;

 private:
  template <typename V>
  class Lru {
   public:
    const V* get(const std::string& key);
    // Inserts at the most-recent end (an existing key keeps its place, value refreshed).
    // Returns true when inserting evicted the least recently used entry.
    bool put(const std::string& key, V value, std::size_t cap);
    std::size_t size() const { return map_.size(); }

   private:
    using Order = std::list<std::pair<std::string, V>>;
    Order order_;  // front = most recently used
    std::unordered_map<std::string, typename Order::iterator> map_;
  };

  // Rescans if allowed by the rate limit; the entry for `want_container`/`want_pod` is inserted
  // last so a scan larger than the cache cannot evict the entry being looked up.
  bool maybe_rescan(std::string_view want_container, std::string_view want_pod);

  KubeMetaOptions opts_;
  Clock clock_;
  mutable std::mutex mu_;
  Lru<ContainerMeta> containers_;
  Lru<PodMeta> pods_;
  KubeMetaStats stats_;
  std::optional<std::chrono::steady_clock::time_point> last_rescan_;
};

}  // namespace hostscope::identity
