// The agent config's `metrics:` and `events:` sections: defaults, values, and file:line:column errors.
#include <gtest/gtest.h>

#include "agent/daemon/config.h"

using hostscope::daemon::parse_config;

TEST(ExportersConfig, Defaults) {
  auto c = parse_config("", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->metrics.listen, "127.0.0.1:9477");
  EXPECT_EQ(c->metrics.max_series, 50000u);
  EXPECT_EQ(c->events.output, "none");
  EXPECT_EQ(c->events.file, "/var/log/hostscope/events.jsonl");
  EXPECT_EQ(c->events.max_file_mb, 100u);
  EXPECT_EQ(c->events.max_files, 5u);
  EXPECT_EQ(c->events.queue, 65536u);
}

TEST(ExportersConfig, Values) {
  auto c = parse_config(R"(metrics: {listen: "[::1]:9100", max_series: 10}
events: {output: file, file: /tmp/e.jsonl, max_file_mb: 1, max_files: 2, queue: 16}
)", "c.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->metrics.listen, "[::1]:9100");
  EXPECT_EQ(c->metrics.max_series, 10u);
  EXPECT_EQ(c->events.output, "file");
  EXPECT_EQ(c->events.file, "/tmp/e.jsonl");
  EXPECT_EQ(c->events.max_files, 2u);
  auto off = parse_config("metrics: {listen: \"\"}\n", "c.yaml");
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_EQ(off->metrics.listen, "");
}

struct BadCase {
  const char* yaml;
  const char* where;
  const char* message;
};
class ExportersConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ExportersConfigErrors, NamesFileLineColumn) {
  auto c = parse_config(GetParam().yaml, "cfg.yaml");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find(GetParam().where), std::string::npos) << c.error().str();
  EXPECT_NE(c.error().str().find(GetParam().message), std::string::npos) << c.error().str();
}

INSTANTIATE_TEST_SUITE_P(
    All, ExportersConfigErrors,
    ::testing::Values(BadCase{"metrics:\n  listen: 9477\n", "cfg.yaml:2:11", "metrics.listen address '9477'"},
                      BadCase{"metrics: {listen: \"127.0.0.1:99999\"}\n", "cfg.yaml:1:19", "invalid port"},
                      BadCase{"metrics: {max_series: -1}\n", "cfg.yaml:1:23", "metrics.max_series must be an integer from 0 to"},
                      BadCase{"metrics: {port: 1}\n", "cfg.yaml:1:11", "unknown key 'port' in metrics"},
                      BadCase{"events: {output: syslog}\n", "cfg.yaml:1:18", "events.output must be one of"},
                      BadCase{"events: {max_files: 0}\n", "cfg.yaml:1:21", "events.max_files must be an integer from 1 to 1000"},
                      BadCase{"events: {queue: 1}\n", "cfg.yaml:1:17", "events.queue must be an integer from 16 to"},
                      BadCase{"events: {file: \"\"}\n", "cfg.yaml:1:16", "must not be empty"}));
