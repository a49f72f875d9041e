// Agent configuration: defaults, every validated key, and file:line:column errors (no root).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "agent/daemon/agent.h"
#include "agent/daemon/config.h"

using hostscope::daemon::load_config;
using hostscope::daemon::parse_config;

TEST(Config, EmptyFileGivesDefaults) {
  auto c = parse_config("", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->kernel.attach, hostscope::bpf::AttachMode::Auto);
  EXPECT_EQ(c->kernel.socket_table_size, 65536u);
  EXPECT_EQ(c->kernel.edge_table_size, 0u);  // kernel aggregation off
  EXPECT_EQ(c->api.socket, "/run/hostscope/hostscope.sock");
  EXPECT_EQ(c->api.max_request_bytes, 65536u);
  EXPECT_EQ(c->topology.network_ends, hostscope::topology::NetworkEnds::Network);
  EXPECT_FALSE(c->node_name.empty());
}

TEST(Config, FullFileParses) {
  auto c = parse_config(R"(node_name: n1
kernel: {attach: classic, socket_table_size: 4096, edge_table_size: 2048, ring_buffer_mb: 16, process_ring_buffer_mb: 2}
api: {socket: /tmp/x.sock, group: ops, max_request_bytes: 1024, max_clients: 4, stream_queue: 100}
topology: {max_edges: 100, max_nodes: 50, idle_expiry_seconds: 30, max_identities: 300, network_ends: address}
networks:
  cluster-pods: [10.244.0.0/16, "fd00:10::/64"]
  dns: 10.96.0.10
identity: {kubelet_root: /tmp/node, max_processes: 128}
)", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->node_name, "n1");
  EXPECT_EQ(c->kernel.attach, hostscope::bpf::AttachMode::Classic);
  EXPECT_EQ(c->kernel.ring_buffer_mb, 16u);
  EXPECT_EQ(c->kernel.edge_table_size, 2048u);
  EXPECT_EQ(c->kernel.process_ring_buffer_mb, 2u);
  EXPECT_EQ(c->api.group, "ops");
  EXPECT_EQ(c->topology.max_edges, 100u);
  EXPECT_EQ(c->topology.max_identities, 300u);
  EXPECT_EQ(hostscope::daemon::pipeline_options(*c).topology_config.max_identities, 300u);
  EXPECT_EQ(c->topology.network_ends, hostscope::topology::NetworkEnds::Address);
  EXPECT_EQ(hostscope::daemon::pipeline_options(*c).topology_config.network_ends,
            hostscope::topology::NetworkEnds::Address);
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
                      BadCase{"topology: {network_ends: pod}\n", "cfg.yaml:1:26",
                              "topology.network_ends must be one of network, address"},
                      BadCase{"topology:\n  network_ends: [address]\n", "cfg.yaml:2:17", "topology.network_ends"},
                      BadCase{"kernel:\n  ring_buffer_mb: 3\n", "cfg.yaml:2:19", "power of two"},
                      BadCase{"kernel:\n  process_ring_buffer_mb: 6\n", "cfg.yaml:2:27",
                              "kernel.process_ring_buffer_mb must be a power of two"},
                      BadCase{"kernel:\n  socket_table_size: lots\n", "cfg.yaml:2:22", "kernel.socket_table_size must be an integer from"},
                      BadCase{"kernel:\n  edge_table_size: 100\n", "cfg.yaml:2:20",
                              "kernel.edge_table_size must be 0 (off) or from 1024 to 1048576"},
                      BadCase{"api: {max_clients: 0}\n", "cfg.yaml:1:20", "api.max_clients must be an integer from 1 to 1024"},
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

// Every integer key: out of its range, negative, past 32 bits and not a number are errors that name the key
// at file:line:column (issue 15: nothing may wrap into a valid-looking value).
struct IntKey {
  const char* section;
  const char* key;
  const char* below;  // just under the range ("" when the lowest value is 0)
  const char* above;  // just over it
};

class ConfigIntegers : public ::testing::TestWithParam<IntKey> {};

TEST_P(ConfigIntegers, OutOfRangeNegativeAndHugeAreRejected) {
  const auto& k = GetParam();
  std::vector<std::string> bad = {k.above, "-1", "4294967296", "70000000000000000000", "12abc", "1.5"};
  if (*k.below) bad.emplace_back(k.below);
  for (const auto& v : bad) {
    const std::string yaml = std::string(k.section) + ":\n  " + k.key + ": " + v + "\n";
    auto c = parse_config(yaml, "cfg.yaml");
    ASSERT_FALSE(c) << yaml << " was accepted";
    const std::string col = "cfg.yaml:2:" + std::to_string(std::string(k.key).size() + 5) + ": ";
    EXPECT_NE(c.error().str().find(col + k.section + "." + k.key + " must be an integer from "), std::string::npos)
        << yaml << " -> " << c.error().str();
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigIntegers,
    ::testing::Values(IntKey{"kernel", "socket_table_size", "1023", "4194305"}, IntKey{"kernel", "ring_buffer_mb", "0", "2048"},
                      IntKey{"kernel", "edge_table_size", "", "1048577"},
                      IntKey{"kernel", "process_ring_buffer_mb", "0", "2048"},
                      IntKey{"api", "max_request_bytes", "255", "1048577"}, IntKey{"api", "max_clients", "0", "1025"},
                      IntKey{"api", "stream_queue", "15", "1048577"}, IntKey{"metrics", "max_series", "", "10000001"},
                      IntKey{"events", "max_file_mb", "0", "1048577"}, IntKey{"events", "max_files", "0", "1001"},
                      IntKey{"events", "queue", "15", "16777217"}, IntKey{"topology", "max_edges", "15", "10000001"},
                      IntKey{"topology", "max_nodes", "15", "10000001"}, IntKey{"topology", "idle_expiry_seconds", "0", "2592001"},
                      IntKey{"topology", "max_identities", "0", "65536"},
                      IntKey{"identity", "max_processes", "63", "4194305"}));

TEST(Config, History) {
  auto d = parse_config("", "c.yaml");
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->history.enabled);
  EXPECT_EQ(d->history.path, "/var/lib/hostscope/history.db");
  EXPECT_EQ(d->history.retention_ns, 7ull * 86400 * 1'000'000'000);
  EXPECT_EQ(d->history.max_bytes, 256ull << 20);
  auto c = parse_config("history: {enabled: true, path: /tmp/h.db, retention: 36h, max_bytes: 64MiB}\n", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_TRUE(c->history.enabled);
  EXPECT_EQ(c->history.path, "/tmp/h.db");
  EXPECT_EQ(c->history.retention_ns, 36ull * 3600 * 1'000'000'000);
  EXPECT_EQ(c->history.max_bytes, 64ull << 20);
  auto b = parse_config("history: {max_bytes: 1048576, retention: 1h}\n", "c.yaml");
  ASSERT_TRUE(b) << b.error().str();
  EXPECT_EQ(b->history.max_bytes, 1048576u);
  auto g = parse_config("history: {max_bytes: 1024GiB, retention: 400d}\n", "c.yaml");
  ASSERT_TRUE(g) << g.error().str();
  EXPECT_EQ(g->history.max_bytes, 1ull << 40);
}

INSTANTIATE_TEST_SUITE_P(
    History, ConfigErrors,
    ::testing::Values(BadCase{"history:\n  retention: 59m\n", "cfg.yaml:2:14", "history.retention must be a duration like 12h or 7d, from 1h to 400d"},
                      BadCase{"history:\n  retention: 401d\n", "cfg.yaml:2:14", "history.retention must be a duration"},
                      BadCase{"history:\n  retention: 7\n", "cfg.yaml:2:14", "history.retention must be a duration"},
                      BadCase{"history:\n  retention: -7d\n", "cfg.yaml:2:14", "history.retention must be a duration"},
                      BadCase{"history:\n  max_bytes: 1023KiB\n", "cfg.yaml:2:14", "history.max_bytes must be a size in bytes or with KiB, MiB or GiB, from 1MiB to 1024GiB"},
                      BadCase{"history:\n  max_bytes: 1025GiB\n", "cfg.yaml:2:14", "history.max_bytes must be a size"},
                      BadCase{"history:\n  max_bytes: -1\n", "cfg.yaml:2:14", "history.max_bytes must be a size"},
                      BadCase{"history:\n  max_bytes: 99999999999999999999999MiB\n", "cfg.yaml:2:14", "history.max_bytes must be a size"},
                      BadCase{"history:\n  max_bytes: 256MB\n", "cfg.yaml:2:14", "history.max_bytes must be a size"},
                      BadCase{"history:\n  path: relative.db\n", "cfg.yaml:2:9", "history.path must be an absolute path"},
                      BadCase{"history:\n  enabled: maybe\n", "cfg.yaml:2:12", "history.enabled has the wrong type"},
                      BadCase{"history:\n  retension: 7d\n", "cfg.yaml:2:3", "unknown key 'retension' in history"}));

TEST(Config, RangeEndsAreAccepted) {
  auto c = parse_config("kernel: {socket_table_size: 4194304, ring_buffer_mb: 1024}\ntopology: {idle_expiry_seconds: 1}\n"
                        "metrics: {max_series: 0}\n", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->kernel.socket_table_size, 4194304u);
  EXPECT_EQ(c->topology.idle_expiry_seconds, 1u);
}

TEST(Config, UnterminatedQuoteIsAYamlError) {
  // yaml-cpp 0.7 takes a double-quoted scalar that runs to the end of the file as closed there.
  for (const char* yaml : {"node_name: \"abc\n", "node_name: \"abc\nkernel: {attach: auto}\n", "node_name: 'abc\n",
                           "api:\n  group: ops\n  socket: \"/x\n"}) {
    auto c = parse_config(yaml, "cfg.yaml");
    ASSERT_FALSE(c) << yaml << " was accepted";
    EXPECT_NE(c.error().str().find(std::string(yaml).starts_with("api") ? "cfg.yaml:3:11: " : "cfg.yaml:1:12: "),
              std::string::npos)
        << c.error().str();
    EXPECT_NE(c.error().str().find("invalid YAML: unterminated quoted string"), std::string::npos) << c.error().str();
  }
  auto flow = parse_config("api: {socket: \"/x}\n", "cfg.yaml");  // yaml-cpp's own error
  ASSERT_FALSE(flow);
  EXPECT_NE(flow.error().str().find("invalid YAML"), std::string::npos) << flow.error().str();
  // Closed quotes, escaped quotes and quotes inside plain scalars stay fine.
  auto c = parse_config("node_name: \"a \\\" b\"\napi: {group: 'it''s', socket: /x\"y}\n# a \" in a comment\n", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->node_name, "a \" b");
  EXPECT_EQ(c->api.group, "it's");
  EXPECT_EQ(c->api.socket, "/x\"y");
}

namespace {
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    std::string t = (std::filesystem::temp_directory_path() / "hs-config-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
};
}  // namespace

TEST(ConfigFile, DevZeroIsRefusedBeforeReading) {
  auto c = load_config("/dev/zero");  // used to read until std::bad_alloc
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("config /dev/zero"), std::string::npos) << c.error().str();
  EXPECT_NE(c.error().str().find("not a regular file"), std::string::npos) << c.error().str();
}

TEST(ConfigFile, FifoDirectoryAndHugeFileAreRefused) {
  ScratchDir d;
  const auto fifo = d.path / "fifo.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto c = load_config(fifo.string());  // no writer: a blocking open would hang here
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("not a regular file"), std::string::npos) << c.error().str();

  c = load_config(d.path.string());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("not a regular file"), std::string::npos) << c.error().str();

  const auto big = d.path / "big.yaml";
  { std::ofstream(big) << "node_name: x\n"; }
  ASSERT_EQ(::truncate(big.c_str(), 1ll << 40), 0);  // 1 TiB, sparse
  c = load_config(big.string());
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("larger than 4194304 bytes"), std::string::npos) << c.error().str();

  const auto ok = d.path / "ok.yaml";
  { std::ofstream(ok) << "node_name: from-file\n"; }
  c = load_config(ok.string());
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->node_name, "from-file");

  auto missing = load_config((d.path / "missing.yaml").string());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().err, ENOENT);
}
