#pragma once
// What the policy library needs to know about the node, passed in by the caller (the agent builds
// it from its identity layer and config) so the library never calls into the agent.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hostscope::policy {

struct ServiceInfo {
  std::string name;
  // Local processes of the service (cgroup v2 paths relative to the cgroup2 root, e.g.
  // "/system.slice/web.service"). Egress compiles to `-m cgroup --path` on OUTPUT.
  std::vector<std::string> cgroups;
  // Addresses the service owns that the node routes (pods, containers): IPs or CIDRs.
  std::vector<std::string> addresses;
  // Ports the local processes listen on; ingress to local processes is scoped by these because
  // the cgroup match cannot see the receiving socket on INPUT.
  std::vector<uint16_t> ports;
  std::string go_module, k8s_namespace, workload, exe;
};

struct Context {
  std::vector<ServiceInfo> services;
  // Named networks from the agent config: name -> CIDRs.
  std::map<std::string, std::vector<std::string>> networks;
  const ServiceInfo* find_service(const std::string& name) const {
    for (const auto& s : services)
      if (s.name == name) return &s;
    return nullptr;
  }
};

}  // namespace hostscope::policy

#include <nlohmann/json_fwd.hpp>

#include "common/result.h"

namespace hostscope::policy {
// {"services":[{"name":"web","cgroups":["/web"],"addresses":["10.0.0.2"],"ports":[80],
//   "go_module":"","namespace":"","workload":"","exe":""}], "networks":{"office":["192.0.2.0/24"]}}
// Throws nlohmann::json::exception on a malformed document.
Context context_from_json(const nlohmann::json& j);
// The same document from a catalogue (what `policy generate --cluster --context-out` writes).
nlohmann::json context_to_json(const Context& c);

// A stable hash (16 hex digits) of everything in the catalogue a policy set can depend on: every service's name,
// cgroups, addresses, ports and attributes, and the named networks; independent of the order services are listed in.
// The reconciler records it with a refusal, so a commit refused for what the node lacked is tried again once the
// node changes.
std::string context_hash(const Context& c);

// The largest context file read (`--context`, `policy.context`).
inline constexpr size_t kMaxContextBytes = 64u << 20;
// Reads a context file (the JSON above). Errors name the path and what is wrong: "policy context file
// /etc/x.json: parse failed: ...", "... open failed: No such file or directory", "... services[3]: ...".
Result<Context> load_context_file(const std::string& path);

// The node's catalogue (`seen`: what the agent or a /proc scan finds) with a context file's entries (`file`:
// services the node cannot see, other nodes, external systems). Per service name: addresses are the union; cgroups
// and ports are what the node sees when it sees any (they are live), else the file's; attributes likewise. Services
// only in the file are added. Networks: the union of both CIDR lists per name.
Context merge_context(Context seen, const Context& file);
}  // namespace hostscope::policy
