#include "policy/context.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

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

nlohmann::json context_to_json(const Context& c) {
  nlohmann::json services = nlohmann::json::array();
  for (const auto& s : c.services)
    services.push_back({{"name", s.name}, {"cgroups", s.cgroups}, {"addresses", s.addresses}, {"ports", s.ports},
                        {"go_module", s.go_module}, {"namespace", s.k8s_namespace}, {"workload", s.workload},
                        {"exe", s.exe}});
  return {{"services", services}, {"networks", c.networks}};
}

Result<Context> load_context_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Error{fmt::format("policy context file {} open failed: {}", path, std::strerror(errno))};
  std::string text(kMaxContextBytes + 1, '\0');
  f.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(f.gcount()));
  if (f.bad()) return Error{fmt::format("policy context file {} read failed", path)};
  if (text.size() > kMaxContextBytes) return Error{fmt::format("policy context file {} is larger than {} bytes", path, kMaxContextBytes)};
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) return Error{fmt::format("policy context file {}: expected a JSON object", path)};
    return context_from_json(j);
  } catch (const nlohmann::json::exception& e) {
    return Error{fmt::format("policy context file {} parse failed: {}", path, e.what())};
  }
}

Context merge_context(Context seen, const Context& file) {
  auto add_missing = [](std::vector<std::string>& to, const std::vector<std::string>& from) {
    for (const auto& x : from)
      if (std::find(to.begin(), to.end(), x) == to.end()) to.push_back(x);
  };
  for (const auto& f : file.services) {
    auto it = std::find_if(seen.services.begin(), seen.services.end(), [&](const ServiceInfo& s) { return s.name == f.name; });
    if (it == seen.services.end()) {
      seen.services.push_back(f);
      continue;
    }
    add_missing(it->addresses, f.addresses);
    if (it->cgroups.empty()) it->cgroups = f.cgroups;
    if (it->ports.empty()) it->ports = f.ports;
    for (auto [mine, theirs] : {std::pair{&it->go_module, &f.go_module}, {&it->k8s_namespace, &f.k8s_namespace},
                                {&it->workload, &f.workload}, {&it->exe, &f.exe}})
      if (mine->empty()) *mine = *theirs;
  }
  for (const auto& [name, cidrs] : file.networks) add_missing(seen.networks[name], cidrs);
  return seen;
}

std::string context_hash(const Context& c) {
  std::vector<const ServiceInfo*> services;
  services.reserve(c.services.size());
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
    ports.reserve(s->ports.size());
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
