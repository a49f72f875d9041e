// Agent configuration: defaults, every validated key, and file:line:column errors (no root).
#include <gtest/gtest.h>

#include "agent/daemon/config.h"

using hostscope::daemon::parse_config;

TEST(Config, EmptyFileGivesDefaults) {
  auto c = parse_config("", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->kernel.attach, "auto");
  EXPECT_EQ(c->kernel.socket_table_size, 65536u);
  EXPECT_EQ(c->api.socket, "/run/hostscope/hostscope.sock");
  EXPECT_EQ(c->api.max_request_bytes, 65536u);
  EXPECT_FALSE(c->node_name.empty());
}

TEST(Config, FullFileParses) {
  auto c = parse_config(R"(node_name: n1
kernel: {attach: classic, socket_table_size: 4096, ring_buffer_mb: 16}
api: {socket: /tmp/x.sock, group: ops, max_request_bytes: 1024, max_clients: 4, stream_queue: 100}
topology: {max_edges: 100, max_nodes: 50, idle_expiry_seconds: 30}
networks:
  cluster-pods: [10.244.0.0/16, "fd00:10::/64"]
  dns: 10.96.0.10
identity: {kubelet_root: /tmp/node, max_processes: 128}
)", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->node_name, "n1");
  EXPECT_EQ(c->kernel.attach, "classic");
  EXPECT_EQ(c->kernel.ring_buffer_mb, 16u);
  EXPECT_EQ(c->api.group, "ops");
  EXPECT_EQ(c->topology.max_edges, 100u);
  ASSERT_EQ(c->networks.at("cluster-pods").size(), 2u);
  EXPECT_EQ(c->networks.at("dns")[0], "10.96.0.10");
  EXPECT_EQ(c->identity.kubelet_root, "/tmp/node");
}

TEST(Config, ApiLoadLimits) {
  auto c = parse_config("api: {request_timeout_ms: 500, max_snapshots: 4}\n", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->api.request_timeout_ms, 500u);
  EXPECT_EQ(c->api.max_snapshots, 4u);
  auto d = parse_config("", "c.yaml");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->api.request_timeout_ms, 2000u);
  EXPECT_EQ(d->api.max_snapshots, 2u);
  EXPECT_FALSE(parse_config("api: {request_timeout_ms: 10}\n", "c.yaml"));
  EXPECT_FALSE(parse_config("api: {max_snapshots: 0}\n", "c.yaml"));
}

struct BadCase {
  const char* yaml;
  const char* where;    // expected "file:line:column"
  const char* message;  // expected substring
};

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NamesFileLineColumn) {
  auto c = parse_config(GetParam().yaml, "cfg.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find(GetParam().where), std::string::npos) << c.error().str();
  EXPECT_NE(c.error().str().find(GetParam().message), std::string::npos) << c.error().str();
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(BadCase{"api:\n  sokcet: /x\n", "cfg.yaml:2:3", "unknown key 'sokcet' in api"},
                      BadCase{"kernel: {attach: kprobe}\n", "cfg.yaml:1:18", "kernel.attach must be one of"},
                      BadCase{"kernel:\n  ring_buffer_mb: 3\n", "cfg.yaml:2:19", "power of two"},
                      BadCase{"kernel:\n  socket_table_size: lots\n", "cfg.yaml:2:22", "wrong type"},
                      BadCase{"api: {max_clients: 0}\n", "cfg.yaml:1:20", "between 1 and 1024"},
                      BadCase{"networks:\n  pods: [10.244.0.0/33]\n", "cfg.yaml:2:10", "networks.pods"},
                      BadCase{"networks:\n  pods: 10.0.0.1/8\n", "cfg.yaml:2:9", "networks.pods"},
                      BadCase{"kernel: [1, 2]\n", "cfg.yaml:1:9", "kernel must be a mapping"},
                      BadCase{"unknown_top: 1\n", "cfg.yaml:1:1", "unknown key 'unknown_top'"},
                      BadCase{"api: {socket: [unclosed\n", "cfg.yaml:", "invalid YAML"}));

TEST(Config, AllErrorsAreReportedAtOnce) {
  auto c = parse_config("api: {bogus: 1}\nkernel: {attach: nope}\n", "f.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("f.yaml:1:7"), std::string::npos) << c.error().str();
  EXPECT_NE(c.error().str().find("f.yaml:2:18"), std::string::npos) << c.error().str();
}
