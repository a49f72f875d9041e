// The identity resolver's view of an event as the topology gets it (agent/pipeline/identity_resolver.h): the edge
// ends' service, namespace, pod, workload and Go main module come from the process table's identities.
#include <gtest/gtest.h>

#include "agent/pipeline/identity_resolver.h"

namespace hostscope::pipeline {
namespace {

identity::GoProcessInfo go(std::string module, std::string version) {
  identity::GoProcessInfo g;
  g.version = "go1.22.1";
  g.path = module + "/cmd/server";
  g.module = std::move(module);
  g.module_version = std::move(version);
  return g;
}

TEST(IdentityResolver, EndpointsCarryWorkloadAndGoModule) {
  auto owner = std::make_shared<identity::ProcessIdentity>();
  owner->pid = 100;
  owner->service = "cart";
  owner->k8s_namespace = "shop";
  owner->pod = "cart-6d4f9b7c8-x7k2p";
  owner->workload = "cart";
  owner->go = go("github.com/acme/cart", "v1.4.2");
  // As the process table decides it (ProcessTable::decide): one shared object per process.
  owner->end_identity = std::make_shared<const topology::EndIdentity>(
      topology::EndIdentity{owner->workload, identity::go_main_module(*owner->go)});
  auto peer = std::make_shared<identity::ProcessIdentity>();
  peer->pid = 200;
  peer->service = "nginx";  // not Go, not in a pod

  ResolvedEvent r;
  r.pid = 100;
  r.owner = owner;
  r.peer = peer;
  r.peer_pid = 200;
  auto local = r.local_endpoint();
  EXPECT_EQ(local.service, "cart");
  EXPECT_EQ(local.ns, "shop");
  EXPECT_EQ(local.pod, "cart-6d4f9b7c8-x7k2p");
  EXPECT_EQ(local.pid, 100u);
  // Views into the process's own entry and its shared object: no copies of its strings.
  EXPECT_EQ(local.service.data(), owner->service.data());
  EXPECT_EQ(local.pod.data(), owner->pod.data());
  ASSERT_NE(local.identity, nullptr);
  EXPECT_EQ(*local.identity, owner->end_identity);
  EXPECT_EQ((*local.identity)->workload, "cart");
  EXPECT_EQ((*local.identity)->go_module, "github.com/acme/cart@v1.4.2");
  EXPECT_EQ(local.owned().identity, owner->end_identity);
  auto remote = r.peer_endpoint();
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->service, "nginx");
  EXPECT_EQ(remote->pid, 200u);
  EXPECT_EQ(remote->identity, nullptr);

  // Only the kernel's peer pid, the table not knowing it: an endpoint with the pid alone.
  r.peer = nullptr;
  remote = r.peer_endpoint();
  ASSERT_TRUE(remote);
  EXPECT_EQ(remote->pid, 200u);
  EXPECT_EQ(remote->service, "");
  EXPECT_EQ(remote->identity, nullptr);
}

}  // namespace
}  // namespace hostscope::pipeline
