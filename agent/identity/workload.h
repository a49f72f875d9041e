#pragma once
// Workload (controller) name guessed from a pod name alone, without the API server.
// The heuristics and their false positives are documented in docs/identity.md.
#include <cstdint>
#include <string>
#include <string_view>

namespace hostscope::identity {

enum class WorkloadKind : std::uint8_t {
  pod,               // no controller pattern: the pod name itself
  deployment,        // <deploy>-<pod-template-hash>-<suffix>
  cronjob,           // <cronjob>-<scheduled minute>-<suffix>
  statefulset,       // <sts>-<ordinal>
  daemonset_or_job,  // <name>-<suffix>
};

struct Workload {
  std::string name;
  WorkloadKind kind = WorkloadKind::pod;
};

std::string_view workload_kind_name(WorkloadKind k);

// True when every char is in the alphabet Kubernetes uses for generated names and hashes
// (k8s.io/apimachinery/pkg/util/rand: no vowels, no 0/1/3 to avoid words).
bool is_k8s_rand_string(std::string_view s);

Workload workload_from_pod_name(std::string_view pod);

}  // namespace hostscope::identity
