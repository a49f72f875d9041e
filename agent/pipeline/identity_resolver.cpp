#include "agent/pipeline/identity_resolver.h"

#include <thread>

#include "agent/identity/process_json.h"
#include "agent/util/logging.h"

namespace hostscope::pipeline {

namespace {

class CommResolver : public IdentityResolver {
 public:
  ResolvedEvent resolve(const events::ConnectionEvent& e) override {
    ResolvedEvent r;
    r.pid = e.pid;
    if (e.owner_known) r.comm = e.comm_view();
    return r;
  }
};

// The workload and Go module are the process table's shared EndIdentity: a pointer per event, not two strings.
topology::EndpointRef endpoint_of(const identity::ProcessIdentity& p) {
  return {p.service, p.k8s_namespace, p.pod, p.pid, p.end_identity ? &p.end_identity : nullptr};
}

}  // namespace

std::string_view ResolvedEvent::service() const { return owner ? std::string_view(owner->service) : comm; }

topology::EndpointRef ResolvedEvent::local_endpoint() const {
  if (owner) return endpoint_of(*owner);
  return {comm, {}, {}, pid, nullptr};
}

std::optional<topology::EndpointRef> ResolvedEvent::peer_endpoint() const {
  if (peer) return endpoint_of(*peer);
  if (peer_pid) return topology::EndpointRef{{}, {}, {}, *peer_pid, nullptr};
  return std::nullopt;
}

std::unique_ptr<IdentityResolver> make_comm_resolver() { return std::make_unique<CommResolver>(); }


ProcessIdentityResolver::~ProcessIdentityResolver() { stop(); }

Status ProcessIdentityResolver::start(int go_procs_fd) {
  auto opts = identity::identity_options(s_.kubelet_root, s_.config_file);
  if (!opts) return opts.error();
  opts->capacity = s_.max_processes;
  if (go_procs_fd >= 0) bpf::connect_go_procs(*opts, go_procs_fd);
  table_ = std::make_unique<identity::ProcessTable>(std::move(*opts));
  bpf::ProcessTracerOptions pto;
  pto.mode = mode_;
  pto.ring_bytes = s_.ring_bytes;
  auto pt = bpf::ProcessTracer::start(pto);
  if (pt) {
    tracer_ = std::move(*pt);
    reader_ = std::make_unique<ProcessReader>(*tracer_, *table_);
    if (auto st = reader_->start(); !st) return st;
    // The /proc scan must finish first: it pushes Go offsets for Go processes already running.
    while (!reader_->ready()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } else {
    degraded_.push_back(fmt::format("{}: processes are identified from a /proc scan only (short-lived ones may be missed)",
                                    pt.error().str()));
    spdlog::warn("degraded: {}", degraded_.back());
    table_->scan_proc();
  }
  lookup_ = std::make_unique<identity::ProcessLookup>(
      *table_, reader_ ? std::function<void()>([r = reader_.get()] { r->catch_up(); }) : nullptr);
  return {};
}

void ProcessIdentityResolver::stop() {
  if (reader_) reader_->stop();
}

void ProcessIdentityResolver::begin_batch() {
  if (lookup_) lookup_->begin_batch();
}

ResolvedEvent ProcessIdentityResolver::resolve(const events::ConnectionEvent& e) {
  ResolvedEvent out;
  auto r = lookup_ ? lookup_->resolve(e) : identity::ConnectionProcesses{};
  out.pid = e.pid;
  out.owner = std::move(r.owner);
  out.peer = std::move(r.peer);
  out.peer_pid = r.peer_pid;
  if (!out.owner && e.owner_known) out.comm = e.comm_view();
  return out;
}

nlohmann::json ProcessIdentityResolver::services_json() {
  nlohmann::json arr = nlohmann::json::array();
  if (!table_) return arr;
  for (auto& p : table_->snapshot())
    if (!p->exe.empty()) arr.push_back(identity::process_to_json(*p));
  return arr;
}

identity::LocalEndpoints::Processes ProcessIdentityResolver::processes() {
  return table_ ? table_->snapshot() : identity::LocalEndpoints::Processes{};
}

std::shared_ptr<const identity::LocalEndpointsSnapshot> ProcessIdentityResolver::local_endpoints() {
  return table_ ? endpoints_.get(*table_) : nullptr;
}

nlohmann::json ProcessIdentityResolver::health_json() {
  nlohmann::json j = nlohmann::json::object();
  if (table_) {
    auto s = table_->stats();
    j["processes"] = {{"size", s.size}, {"capacity", s.capacity}, {"hits", s.hits}, {"misses", s.misses}, {"evicted_live", s.evicted_live},
                      {"evicted_exited", s.evicted_exited}, {"pending_dropped", s.pending_dropped},
                      {"go_processes", s.go_processes},
                      {"go_binaries_refused", table_->go_cache().stats().refused}};
  }
  {
    auto e = endpoints_.stats();
    j["local_endpoints"] = {{"refreshes", e.refreshes}, {"namespaces_dropped", e.namespaces_dropped},
                            {"addresses_dropped", e.addresses_dropped}, {"listeners_dropped", e.listeners_dropped},
                            {"fds_dropped", e.fds_dropped}, {"files_truncated", e.files_truncated},
                            {"read_errors", e.read_errors}, {"malformed_lines", e.malformed_lines},
                            {"shared_namespaces", e.shared_namespaces}};
  }
  if (tracer_) {
    auto c = tracer_->counters();
    j["process_events"] = {{"events", c.events}, {"lost_ringbuf", c.ringbuf_dropped}};
  }
  // Local peers are stitched in the kernel (its table's losses are the kernel counter peer_evicted): here, how
  // many events named a local peer and how many did not (a remote peer, or a local one not known in time).
  if (lookup_) {
    auto r = lookup_->stats();
    j["peers"] = {{"hits", r.peers_found}, {"misses", r.events - r.peers_found}};
  }
  return j;
}

}  // namespace hostscope::pipeline
