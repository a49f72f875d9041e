#include "agent/identity/process_lookup.h"

#include "agent/util/file.h"

namespace hostscope::identity {

ProcessLookup::ProcessLookup(ProcessTable& table, std::function<void()> catch_up)
    : table_(table), catch_up_(std::move(catch_up)) {}

ProcessLookupStats ProcessLookup::stats() const {
  // The per-kind counters first, the total last: an event counted in between only makes the total larger, so a
  // reader that subtracts never sees a kind exceed the total.
  ProcessLookupStats s;
  s.peers_found = peers_found_.get();
  s.owner_unknown = owner_unknown_.get();
  s.refreshes_requested = refreshes_requested_.get();
  s.catch_ups = catch_ups_.get();
  s.events = events_.get();
  return s;
}

void ProcessLookup::begin_batch() {
  if (catch_up_) catch_up_();
}

ConnectionProcesses ProcessLookup::resolve(const events::ConnectionEvent& e) {
  events_.inc();
  ConnectionProcesses r;
  if (e.owner_known && e.pid) {
    r.owner = table_.lookup(e.pid);
    if (!r.owner && catch_up_) {
      catch_ups_.inc();
      catch_up_();
      r.owner = table_.lookup(e.pid);
    }
    // The kernel saw the owner in another cgroup than the table knows (moved after exec, e.g. by a container
    // runtime or systemd): have /proc read again. This event keeps the old facts; later ones get the new.
    if (r.owner && e.cgroup_id && r.owner->cgroup_id && e.cgroup_id != r.owner->cgroup_id &&
        table_.is_live(e.pid)) {
      refreshes_requested_.inc();
      table_.request_refresh(e.pid);
    }
  }
  if (!r.owner) owner_unknown_.inc();

  r.peer_pid = e.peer_pid;
  if (r.peer_pid) {
    peers_found_.inc();
    r.peer = table_.lookup(*r.peer_pid);
  }
  return r;
}

}  // namespace hostscope::identity

namespace hostscope::identity {

Result<ProcessTableOptions> identity_options(const std::string& kubelet_root, const std::string& config_file) {
  ProcessTableOptions o;
  std::filesystem::path root = kubelet_root.empty() ? "/" : kubelet_root;
  KubeMetaOptions k;
  k.roots.containers_dir = root / "var/log/containers";
  k.roots.pods_dir = root / "var/log/pods";
  o.kube = k;
  if (!config_file.empty()) {
    constexpr size_t kMaxConfig = 4 << 20;  // daemon::kMaxConfigBytes (identity cannot include daemon/)
    auto text = read_regular_file(config_file, kMaxConfig);
    if (!text) return make_error("config " + text.error().message, text.error().err);
    YAML::Node doc;
    try {
      doc = YAML::Load(*text);
    } catch (const YAML::Exception& e) {
      return errorf("config {}: {}", config_file, e.what());
    }
    if (!doc.IsNull() && !doc.IsMap()) return errorf("config {}: the top level must be a map", config_file);
    auto rules = load_service_rules(doc.IsMap() ? doc["service_rules"] : YAML::Node());
    if (!rules) return errorf("config {}: {}", config_file, rules.error().str());
    o.rules = std::move(*rules);
  }
  return o;
}

}  // namespace hostscope::identity
