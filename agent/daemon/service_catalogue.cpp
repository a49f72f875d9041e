#include "agent/daemon/service_catalogue.h"

#include <algorithm>

namespace hostscope::daemon {

namespace {
template <typename T>
void add_unique(std::vector<T>& v, const T& x) {
  if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
}
}  // namespace

policy::Context service_catalogue(const identity::LocalEndpoints::Processes& processes,
                                  const identity::LocalEndpointsSnapshot& endpoints,
                                  const std::map<std::string, std::vector<std::string>>& networks) {
  policy::Context ctx;
  ctx.networks = networks;
  std::map<std::string, policy::ServiceInfo> by_name;
  for (const auto& p : processes) {
    if (!p || p->exe.empty() || p->service.empty()) continue;
    auto& s = by_name[p->service];
    s.name = p->service;
    if (!p->cgroup.empty()) add_unique(s.cgroups, p->cgroup);
    // The first process that knows a fact gives it: a later one without it (a sidecar, a process whose /proc
    // read failed) must not blank it.
    auto keep = [](std::string& field, const std::string& v) {
      if (field.empty()) field = v;
    };
    if (p->go) keep(s.go_module, p->go->module);
    keep(s.k8s_namespace, p->k8s_namespace);
    keep(s.workload, p->workload);
    keep(s.exe, p->exe);
  }
  for (auto& [name, s] : by_name) {
    s.addresses = endpoints.addresses_of(name);
    if (auto it = endpoints.ports.find(name); it != endpoints.ports.end()) s.ports = it->second;
    ctx.services.push_back(std::move(s));
  }
  return ctx;
}

}  // namespace hostscope::daemon
