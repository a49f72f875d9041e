#include "policy/context.h"

#include <nlohmann/json.hpp>

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

}  // namespace hostscope::policy
