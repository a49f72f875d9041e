// libbpf's messages reach the agent's log whole. A failed program load comes as one message holding the whole
// verifier log, many lines, and its last lines say why the load failed.
#include <gtest/gtest.h>

#include <bpf/libbpf.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <sstream>
#include <string>

#include "agent/bpf/libbpf_util.h"

namespace {

int print_through(libbpf_print_fn_t fn, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = fn(LIBBPF_DEBUG, fmt, ap);
  va_end(ap);
  return r;
}

TEST(LibbpfLogs, AVerifierLogIsLoggedWholeWithItsLastLine) {
  hostscope::bpf::route_libbpf_logs();
  libbpf_print_fn_t ours = libbpf_set_print(nullptr);  // returns the callback in place: ours
  libbpf_set_print(ours);
  ASSERT_NE(ours, nullptr);

  std::ostringstream out;
  auto logger = std::make_shared<spdlog::logger>("libbpf-test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  logger->set_level(spdlog::level::debug);
  logger->set_pattern("%v");
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  std::string log;
  for (int i = 0; i < 200; i++) log += "123: (79) r1 = *(u64 *)(r10 -216)      ; R1=scalar() R10=fp0\n";
  log += "verifier bug: the reason at the end\n";
  print_through(ours, "prog 'x': -- BEGIN PROG LOAD LOG --\n%s-- END PROG LOAD LOG --\n", log.c_str());
  spdlog::set_default_logger(previous);

  const std::string got = out.str();
  EXPECT_NE(got.find("verifier bug: the reason at the end"), std::string::npos) << got.size() << " bytes logged";
  EXPECT_NE(got.find("-- END PROG LOAD LOG --"), std::string::npos);
  EXPECT_NE(got.find(log), std::string::npos);
}

}  // namespace
