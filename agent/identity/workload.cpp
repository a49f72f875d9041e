#include "agent/identity/workload.h"

#include <algorithm>

namespace hostscope::identity {
namespace {

constexpr std::string_view kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
// utilrand.String(5), used by generateName for ReplicaSet, DaemonSet and Job pods.
constexpr std::size_t kSuffixLen = 5;
// pod-template-hash is the decimal FNV-32 hash re-encoded in the alphabet: up to 10 chars; shorter
// than 5 is rare enough that accepting it would only add false positives.
constexpr std::size_t kMinHashLen = 5;
constexpr std::size_t kMaxHashLen = 10;

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Splits "a-b" at the last '-': {"a", "b"}; the head must be non-empty.
bool split_last(std::string_view s, std::string_view& head, std::string_view& tail) {
  const std::size_t at = s.rfind('-');
  if (at == std::string_view::npos || at == 0 || at + 1 == s.size()) return false;
  head = s.substr(0, at);
  tail = s.substr(at + 1);
  return true;
}

}  // namespace

std::string_view workload_kind_name(WorkloadKind k) {
  switch (k) {
    case WorkloadKind::pod:
      return "pod";
    case WorkloadKind::deployment:
      return "deployment";
    case WorkloadKind::cronjob:
      return "cronjob";
    case WorkloadKind::statefulset:
      return "statefulset";
    case WorkloadKind::daemonset_or_job:
      return "daemonset_or_job";
  }
  return "pod";
}

bool is_k8s_rand_string(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return kAlphabet.find(c) != std::string_view::npos; });
}

Workload workload_from_pod_name(std::string_view pod) {
  std::string_view head, suffix;
  if (split_last(pod, head, suffix)) {
    if (suffix.size() == kSuffixLen && is_k8s_rand_string(suffix)) {
      std::string_view owner, middle;
      if (split_last(head, owner, middle)) {
        // CronJob-created Job names end in the scheduled time in minutes since the epoch; the
        // check runs before the Deployment one because digits 2,4-9 are also hash characters.
        if (middle.size() >= 8 && middle.size() <= 10 && all_digits(middle)) {
          return {std::string(owner), WorkloadKind::cronjob};
        }
        if (middle.size() >= kMinHashLen && middle.size() <= kMaxHashLen && is_k8s_rand_string(middle)) {
          return {std::string(owner), WorkloadKind::deployment};
        }
      }
      return {std::string(head), WorkloadKind::daemonset_or_job};
    }
    // StatefulSet ordinals are decimal without leading zeros.
    if (all_digits(suffix) && (suffix.size() == 1 || suffix.front() != '0')) {
      return {std::string(head), WorkloadKind::statefulset};
    }
  }
  return {std::string(pod), WorkloadKind::pod};
}

}  // namespace hostscope::identity
