// libFuzzer: arbitrary bytes as one policy file through loader, lint, compiler, renderer and the
// reference evaluator. Must never crash, hang or balloon memory.
#include <cstddef>
#include <cstdint>
#include <string>

#include "policy/analysis.h"
#include "policy/compiler.h"
#include "policy/evaluator.h"
#include "policy/iptables.h"
#include "policy/loader.h"

using namespace hostscope::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  static const Context ctx = [] {
    Context c;
    c.services.push_back({"web", {"/web"}, {"10.0.0.2", "fd00::2"}, {80}, "example.com/web", "shop", "web", "/bin/web"});
    c.services.push_back({"db", {}, {"10.0.0.3"}, {}, "", "shop", "db", ""});
    c.networks["office"] = {"192.0.2.0/24"};
    return c;
  }();
  std::string text(reinterpret_cast<const char*>(data), size);
  auto loaded = load_text(text, "fuzz.yaml");
  auto report = lint(loaded, ctx);
  for (const auto& d : report.diagnostics) (void)d.str();
  auto c = compile(loaded, ctx, CompileOptions{2});
  if (!c.ok()) return 0;
  for (auto f : {hostscope::Family::V4, hostscope::Family::V6}) (void)render(c.ir->table(f));
  (void)run_policy_tests(loaded.set, *c.ir, ctx);
  return 0;
}
