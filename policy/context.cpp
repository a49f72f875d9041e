#include "policy/context.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "policy/hash.h"

namespace hostscope::policy {

Context context_from_json(const nlohmann::json& j) {
  Context c;
  for (const auto& s : j.value("services", nlohmann::json::array())) {
    ServiceInfo i;
    i.name = s.at("name").get<std::string>();
    i.cgroups = s.value("cgroups", std::vector<std::string>{});
    i.addresses = s.value("addresses", std::vector<std::string>{});
    i.ports = s.value("ports", std::vector<uint16_t>{});
    i.go_module = s.value("go_module", "");
    i.k8s_namespace = s.value("namespace", "");
    i.workload = s.value("workload", "");
    i.exe = s.value("exe", "");
    c.services.push_back(std::move(i));
  }
  c.networks = j.value("networks", std::map<std::string, std::vector<std::string>>{});
  return c;
}

std::string context_hash(const Context& c) {
  std::vector<const ServiceInfo*> services;
  for (const auto& s : c.services) services.push_back(&s);
  std::sort(services.begin(), services.end(), [](const ServiceInfo* a, const ServiceInfo* b) { return a->name < b->name; });
  Hasher h;
  auto list = [&](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    h.add(std::to_string(v.size()));
    for (const auto& x : v) h.add(x);
  };
  for (const auto* s : services) {
    h.add(s->name).add(s->go_module).add(s->k8s_namespace).add(s->workload).add(s->exe);
    list(s->cgroups);
    list(s->addresses);
    std::vector<std::string> ports;
    for (auto p : s->ports) ports.push_back(std::to_string(p));
    list(ports);
  }
  for (const auto& [name, cidrs] : c.networks) {
    h.add(name);
    list(cidrs);
  }
  return h.hex(16);
}

}  // namespace hostscope::policy
