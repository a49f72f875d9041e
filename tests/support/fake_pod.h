#pragma once
// A Kubernetes pod on a fake node for privileged tests: the kubelet's log tree under a temp directory (what
// identity/kube_meta reads for namespace/pod/container names) and the pod's cgroup v2 leaf, made by the test and
// removed in reverse order (processes must have left it). Move a process in with join(pid), from outside any
// namespace the test made (`ip netns exec` hides /sys/fs/cgroup/unified, see machine-facts).
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace hostscope::testing {

class FakePod {
 public:
  // `tag` makes the pod uid and container id unique to this test process.
  FakePod(std::string ns, std::string pod, std::string container, uint64_t tag)
      : ns_(std::move(ns)), pod_(std::move(pod)), container_(std::move(container)) {
    namespace fs = std::filesystem;
    uid_ = "1b2c3d4e-5f60-4a1b-9c2d-" + fmt::format("{:012x}", tag);
    cid_ = fmt::format("{:016x}", tag) + std::string(48, 'a');
    std::string t = (fs::temp_directory_path() / "hs-fake-node-XXXXXX").string();
    root_ = mkdtemp(t.data());
    fs::create_directories(root_ / "var/log/containers");
    const fs::path pod_dir = root_ / "var/log/pods" / (ns_ + "_" + pod_ + "_" + uid_) / container_;
    fs::create_directories(pod_dir);
    std::ofstream(pod_dir / "0.log") << "";
    fs::create_symlink("/var/log/pods/" + ns_ + "_" + pod_ + "_" + uid_ + "/" + container_ + "/0.log",
                       root_ / "var/log/containers" / (pod_ + "_" + ns_ + "_" + container_ + "-" + cid_ + ".log"));
  }
  ~FakePod() {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) rmdir(it->c_str());
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakePod(const FakePod&) = delete;
  FakePod& operator=(const FakePod&) = delete;

  // The fake node's root: identity's kubelet_root (var/log/containers, var/log/pods under it).
  const std::filesystem::path& kubelet_root() const { return root_; }
  const std::string& uid() const { return uid_; }
  const std::string& container_id() const { return cid_; }

  // The container's cgroup leaf under `cg_root` (kubepods.slice/...-pod<uid>.slice/cri-containerd-<cid>.scope).
  std::filesystem::path leaf(const std::filesystem::path& cg_root) const {
    std::string uid_us = uid_;
    std::replace(uid_us.begin(), uid_us.end(), '-', '_');
    return cg_root / "kubepods.slice" / "kubepods-burstable.slice" / ("kubepods-burstable-pod" + uid_us + ".slice") /
           ("cri-containerd-" + cid_ + ".scope");
  }
  // Creates the leaf and the directories above it that are missing (removed again by the destructor).
  bool make_cgroup(const std::filesystem::path& cg_root) {
    std::vector<std::filesystem::path> chain;
    for (auto q = leaf(cg_root); !std::filesystem::exists(q); q = q.parent_path()) chain.push_back(q);
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if (mkdir(it->c_str(), 0755) != 0) return false;
      created_.push_back(*it);
    }
    return true;
  }
  // Moves `pid` into the leaf.
  bool join(const std::filesystem::path& cg_root, pid_t pid) const {
    std::ofstream procs(leaf(cg_root) / "cgroup.procs");
    procs << pid << std::endl;
    return procs.good();
  }

 private:
  std::string ns_, pod_, container_, uid_, cid_;
  std::filesystem::path root_;
  std::vector<std::filesystem::path> created_;
};

}  // namespace hostscope::testing
