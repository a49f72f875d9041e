// daemon::service_catalogue: processes grouped by service, with the addresses and listening ports of local
// endpoints, and the config's networks.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/daemon/service_catalogue.h"

using namespace hostscope;
using ::testing::ElementsAre;

namespace {

std::shared_ptr<const identity::ProcessIdentity> proc(uint32_t pid, std::string service, std::string cgroup,
                                                      std::string exe = "/bin/x") {
  auto p = std::make_shared<identity::ProcessIdentity>();
  p->pid = pid;
  p->service = std::move(service);
  p->cgroup = std::move(cgroup);
  p->exe = std::move(exe);
  return p;
}

TEST(ServiceCatalogue, ServicesGetTheirAddressesAndPorts) {
  identity::LocalEndpointsSnapshot ep;
  ep.node_addresses = {"192.0.2.10"};
  ep.owners = {{"10.244.1.7", "shop/web", "shop", "web", "web-1", 7}, {"fd00::7", "shop/web", "shop", "web", "web-1", 7}};
  ep.ports = {{"shop/web", {8080}}, {"sshd", {22}}};
  auto web = std::const_pointer_cast<identity::ProcessIdentity>(proc(200, "shop/web", "/kubepods/pod1/c1"));
  web->k8s_namespace = "shop";
  web->workload = "web";
  auto ctx = daemon::service_catalogue({proc(100, "sshd", "/system.slice/ssh.service"), web,
                                        proc(201, "shop/web", "/kubepods/pod1/c2"), proc(2, "kthreadd", "/", ""),
                                        proc(300, "", "/user.slice")},
                                       ep, {{"office", {"198.51.100.0/24"}}});
  ASSERT_EQ(ctx.services.size(), 2u);  // no kernel thread, no process without a service
  const auto* s = ctx.find_service("shop/web");
  ASSERT_TRUE(s);
  EXPECT_THAT(s->addresses, ElementsAre("10.244.1.7", "fd00::7"));
  EXPECT_THAT(s->ports, ElementsAre(8080));
  EXPECT_THAT(s->cgroups, ElementsAre("/kubepods/pod1/c1", "/kubepods/pod1/c2"));
  EXPECT_EQ(s->k8s_namespace, "shop");
  const auto* ssh = ctx.find_service("sshd");
  ASSERT_TRUE(ssh);
  EXPECT_TRUE(ssh->addresses.empty());  // the node's addresses are nobody's: host services match by cgroup
  EXPECT_THAT(ssh->ports, ElementsAre(22));
  EXPECT_EQ(ctx.networks.at("office"), std::vector<std::string>{"198.51.100.0/24"});
}

}  // namespace
