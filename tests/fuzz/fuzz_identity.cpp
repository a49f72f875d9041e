// libFuzzer: the identity parsers that read what the host (and so any container on it) controls:
// /proc/<pid>/cgroup content, cgroup paths, kubelet log file names and pod directory names, pod names.
// Besides "never crash, hang or balloon", checks the invariants the rest of the agent relies on.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "agent/identity/cgroup_identity.h"
#include "agent/identity/kube_meta.h"
#include "agent/identity/workload.h"

using namespace hostscope::identity;

namespace {
void check_at(bool ok, int line) {
  if (!ok) {
    fprintf(stderr, "invariant at fuzz_identity.cpp:%d broken\n", line);
    std::abort();
  }
}
}  // namespace
#define check(x) check_at((x), __LINE__)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  size_t malformed = 0;
  auto lines = parse_cgroup_lines(text, &malformed);
  check(lines.size() + malformed <= size + 1);
  auto id = parse_proc_cgroup(text);
  check(id.container_id.empty() || is_container_id(id.container_id));
  check(id.pod_uid.empty() || id.pod_uid.size() == 36 || id.pod_uid.size() == 32);
  auto p = identity_from_path(text);
  check(p.container_id.empty() || is_container_id(p.container_id));

  if (auto c = parse_container_log_name(text)) {
    check(c->pod.size() + c->ns.size() + c->container.size() + c->container_id.size() <= size);
  }
  if (auto d = parse_pod_dir_name(text)) check(d->ns.size() + d->pod.size() + d->uid.size() <= size);
  auto w = workload_from_pod_name(text);
  check(w.name.size() <= size);
  (void)is_k8s_rand_string(text);
  return 0;
}
