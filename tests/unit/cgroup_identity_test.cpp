// cgroup path -> unit / container / pod identity, over the matrix of cgroup v1 / v2 / hybrid,
// systemd / cgroupfs drivers, containerd / CRI-O / Docker and the three QoS classes.
#include "agent/identity/cgroup_identity.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace hostscope::identity {
namespace {

const std::string kId = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";
const std::string kUid = "1b2c3d4e-5f60-4a1b-9c2d-3e4f5a6b7c8d";
const std::string kUidSystemd = "1b2c3d4e_5f60_4a1b_9c2d_3e4f5a6b7c8d";  // systemd escapes '-' as '_'
const std::string kStaticUid = "6d5e8a7b9c0d1e2f3a4b5c6d7e8f9a0b";       // static pods: config hash

struct Case {
  std::string name;
  std::string path;
  ContainerRuntime runtime;
  std::string container_id;
  std::string pod_uid;
  QosClass qos;
  std::string unit;
};

std::string slice_path(const std::string& qos, const std::string& runtime_leaf) {
  if (qos.empty()) {
    return "/kubepods.slice/kubepods-pod" + kUidSystemd + ".slice/" + runtime_leaf;
  }
  return "/kubepods.slice/kubepods-" + qos + ".slice/kubepods-" + qos + "-pod" + kUidSystemd + ".slice/" +
         runtime_leaf;
}

std::string cgroupfs_path(const std::string& qos, const std::string& leaf) {
  return "/kubepods/" + (qos.empty() ? "" : qos + "/") + "pod" + kUid + "/" + leaf;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  struct Qos {
    std::string dir;
    QosClass cls;
  };
  const std::vector<Qos> qoses = {
      {"", QosClass::guaranteed}, {"burstable", QosClass::burstable}, {"besteffort", QosClass::besteffort}};
  struct Runtime {
    std::string name;
    std::string systemd_leaf;
    std::string cgroupfs_leaf;
    ContainerRuntime systemd_rt;
    ContainerRuntime cgroupfs_rt;
  };
  const std::vector<Runtime> runtimes = {
      {"containerd", "cri-containerd-" + kId + ".scope", kId, ContainerRuntime::containerd,
       ContainerRuntime::unknown},
      {"crio", "crio-" + kId + ".scope", "crio-" + kId, ContainerRuntime::crio, ContainerRuntime::crio},
      {"docker", "docker-" + kId + ".scope", kId, ContainerRuntime::docker, ContainerRuntime::unknown},
  };
  for (const auto& q : qoses) {
    const std::string qn = q.dir.empty() ? "guaranteed" : q.dir;
    for (const auto& r : runtimes) {
      cases.push_back({"systemd_" + r.name + "_" + qn, slice_path(q.dir, r.systemd_leaf), r.systemd_rt, kId,
                       kUid, q.cls, ""});
      cases.push_back({"cgroupfs_" + r.name + "_" + qn, cgroupfs_path(q.dir, r.cgroupfs_leaf), r.cgroupfs_rt,
                       kId, kUid, q.cls, ""});
    }
    // CRI-O's conmon shares the container id but is the monitor, not the container.
    cases.push_back({"systemd_crio_conmon_" + qn, slice_path(q.dir, "crio-conmon-" + kId + ".scope"),
                     ContainerRuntime::none, "", kUid, q.cls, ""});
    cases.push_back({"cgroupfs_crio_conmon_" + qn, cgroupfs_path(q.dir, "crio-conmon-" + kId),
                     ContainerRuntime::none, "", kUid, q.cls, ""});
    // The pod-level cgroup itself (pause process on some runtimes, or a process in no container).
    cases.push_back({"systemd_pod_only_" + qn,
                     slice_path(q.dir, "").substr(0, slice_path(q.dir, "").size() - 1),
                     ContainerRuntime::none, "", kUid, q.cls, ""});
  }
  // Standalone container engines.
  cases.push_back(
      {"docker_cgroupfs", "/docker/" + kId, ContainerRuntime::docker, kId, "", QosClass::none, ""});
  cases.push_back({"docker_systemd", "/system.slice/docker-" + kId + ".scope", ContainerRuntime::docker, kId,
                   "", QosClass::none, ""});
  cases.push_back({"podman_systemd", "/machine.slice/libpod-" + kId + ".scope", ContainerRuntime::podman, kId,
                   "", QosClass::none, ""});
  cases.push_back({"podman_conmon_is_a_unit", "/machine.slice/libpod-conmon-" + kId + ".scope",
                   ContainerRuntime::none, "", "", QosClass::none, "libpod-conmon-" + kId + ".scope"});
  cases.push_back({"systemd_in_docker", "/system.slice/docker-" + kId + ".scope/system.slice/nginx.service",
                   ContainerRuntime::docker, kId, "", QosClass::none, "nginx.service"});
  // kind / kubelet under its own slice, and paths seen from another cgroup namespace.
  cases.push_back({"kind_nested_slices",
                   "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
                   "kubelet-kubepods-besteffort-pod" +
                       kUidSystemd + ".slice/cri-containerd-" + kId + ".scope",
                   ContainerRuntime::containerd, kId, kUid, QosClass::besteffort, ""});
  cases.push_back({"kind_nested_cgroupfs", "/kubelet/kubepods/burstable/pod" + kUid + "/" + kId,
                   ContainerRuntime::unknown, kId, kUid, QosClass::burstable, ""});
  cases.push_back({"other_cgroupns", "/../../kubepods/burstable/pod" + kUid + "/" + kId,
                   ContainerRuntime::unknown, kId, kUid, QosClass::burstable, ""});
  cases.push_back({"static_pod_uid", "/kubepods/burstable/pod" + kStaticUid + "/" + kId,
                   ContainerRuntime::unknown, kId, kStaticUid, QosClass::burstable, ""});
  // Host processes.
  cases.push_back({"host_service", "/system.slice/nginx.service", ContainerRuntime::none, "", "",
                   QosClass::none, "nginx.service"});
  cases.push_back({"host_template_service", "/system.slice/system-getty.slice/getty@tty1.service",
                   ContainerRuntime::none, "", "", QosClass::none, "getty@tty1.service"});
  cases.push_back({"host_session_scope", "/user.slice/user-1000.slice/session-3.scope",
                   ContainerRuntime::none, "", "", QosClass::none, "session-3.scope"});
  cases.push_back({"host_user_service", "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
                   ContainerRuntime::none, "", "", QosClass::none, "foo.service"});
  cases.push_back({"host_init", "/init.scope", ContainerRuntime::none, "", "", QosClass::none, "init.scope"});
  cases.push_back({"host_root", "/", ContainerRuntime::none, "", "", QosClass::none, ""});
  cases.push_back({"kubelet_itself", "/system.slice/kubelet.service", ContainerRuntime::none, "", "",
                   QosClass::none, "kubelet.service"});
  // Near misses that must not be taken for containers or pods.
  cases.push_back(
      {"short_id", "/docker/" + kId.substr(1), ContainerRuntime::none, "", "", QosClass::none, ""});
  cases.push_back({"uppercase_id", "/docker/" + std::string(64, 'A'), ContainerRuntime::none, "", "",
                   QosClass::none, ""});
  cases.push_back({"scope_with_bare_id", "/system.slice/" + kId + ".scope", ContainerRuntime::none, "", "",
                   QosClass::none, kId + ".scope"});
  cases.push_back({"bad_pod_uid", "/kubepods/burstable/podnot-a-uid/" + kId, ContainerRuntime::unknown, kId,
                   "", QosClass::none, ""});
  cases.push_back({"bad_qos_dir", "/kubepods/weird/pod" + kUid + "/" + kId, ContainerRuntime::unknown, kId,
                   "", QosClass::none, ""});
  cases.push_back({"pod_outside_kubepods", "/elsewhere/pod" + kUid + "/x", ContainerRuntime::none, "", "",
                   QosClass::none, ""});
  cases.push_back({"not_kubepods_slice", "/xkubepods-pod" + kUidSystemd + ".slice/x.service",
                   ContainerRuntime::none, "", "", QosClass::none, "x.service"});
  return cases;
}

void expect_identity(const CgroupIdentity& got, const Case& c) {
  EXPECT_EQ(got.runtime, c.runtime) << runtime_name(got.runtime);
  EXPECT_EQ(got.container_id, c.container_id);
  EXPECT_EQ(got.pod_uid, c.pod_uid);
  EXPECT_EQ(got.qos, c.qos) << qos_name(got.qos);
  EXPECT_EQ(got.systemd_unit, c.unit);
}

class CgroupCase : public ::testing::TestWithParam<Case> {};

TEST_P(CgroupCase, FromPath) {
  const Case& c = GetParam();
  const auto id = identity_from_path(c.path);
  EXPECT_EQ(id.path, c.path);
  expect_identity(id, c);
}

TEST_P(CgroupCase, CgroupV2File) {
  const Case& c = GetParam();
  const auto id = parse_proc_cgroup("0::" + c.path + "\n");
  EXPECT_EQ(id.path, c.path);
  EXPECT_EQ(id.malformed_lines, 0u);
  expect_identity(id, c);
}

TEST_P(CgroupCase, CgroupV1File) {
  const Case& c = GetParam();
  // A typical v1 layout: each controller its own hierarchy, some co-mounted, plus name=systemd.
  const std::string text = "12:pids:" + c.path + "\n11:cpu,cpuacct:" + c.path + "\n10:memory:" + c.path +
                           "\n9:devices:" + c.path + "\n4:net_cls,net_prio:" + c.path +
                           "\n1:name=systemd:" + c.path + "\n";
  const auto id = parse_proc_cgroup(text);
  EXPECT_EQ(id.path, c.path);  // no v2 line: the name=systemd path
  EXPECT_EQ(id.malformed_lines, 0u);
  expect_identity(id, c);
}

TEST_P(CgroupCase, HybridFile) {
  const Case& c = GetParam();
  const std::string text = "12:pids:" + c.path + "\n1:name=systemd:" + c.path + "\n0::" + c.path + "\n";
  const auto id = parse_proc_cgroup(text);
  EXPECT_EQ(id.path, c.path);
  expect_identity(id, c);
}

INSTANTIATE_TEST_SUITE_P(Matrix, CgroupCase, ::testing::ValuesIn(all_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CgroupHybrid, EmptyUnifiedFallsBackToSystemdTreeForIdentity) {
  // systemd "hybrid" with Docker's cgroupfs driver: the unified tree has the process at the root.
  const std::string text = "12:pids:/docker/" + kId + "\n5:cpu,cpuacct:/docker/" + kId +
                           "\n1:name=systemd:/docker/" + kId + "\n0::/\n";
  const auto id = parse_proc_cgroup(text);
  EXPECT_EQ(id.path, "/");  // the cgroup path prefers v2
  EXPECT_EQ(id.runtime, ContainerRuntime::docker);
  EXPECT_EQ(id.container_id, kId);
}

TEST(CgroupHybrid, SystemdTreePreferredOverOtherV1Lines) {
  // name=systemd says systemd driver (docker-<id>.scope), a controller says cgroupfs: systemd wins.
  const std::string other = std::string(63, 'a') + "b";
  const std::string text =
      "4:cpu:/docker/" + other + "\n1:name=systemd:/system.slice/docker-" + kId + ".scope\n";
  const auto id = parse_proc_cgroup(text);
  EXPECT_EQ(id.path, "/system.slice/docker-" + kId + ".scope");
  EXPECT_EQ(id.container_id, kId);
  EXPECT_EQ(id.runtime, ContainerRuntime::docker);
}

TEST(CgroupHybrid, V1ControllerUsedWhenNothingElseKnows) {
  const std::string text =
      "0::/\n1:name=systemd:/\n7:memory:/kubepods/besteffort/pod" + kUid + "/crio-" + kId + "\n";
  const auto id = parse_proc_cgroup(text);
  EXPECT_EQ(id.path, "/");
  EXPECT_EQ(id.runtime, ContainerRuntime::crio);
  EXPECT_EQ(id.pod_uid, kUid);
  EXPECT_EQ(id.qos, QosClass::besteffort);
}

TEST(CgroupHybrid, UnitComesFromSystemdTreeForHostProcess) {
  const auto id = parse_proc_cgroup("0::/\n3:cpu:/\n1:name=systemd:/system.slice/sshd.service\n");
  EXPECT_EQ(id.systemd_unit, "sshd.service");
  EXPECT_FALSE(id.in_container());
}

TEST(CgroupHybrid, V1WithoutSystemdTreeUsesFirstLineAsPath) {
  const auto id = parse_proc_cgroup("3:cpu:/a\n2:memory:/b\n");
  EXPECT_EQ(id.path, "/a");
}

TEST(CgroupLines, ParsesFields) {
  std::size_t bad = 99;
  const auto lines =
      parse_cgroup_lines("12:cpu,cpuacct:/a/b\n1:name=systemd:/x:y\n0::/z (deleted)\r\n", &bad);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(lines[0].hierarchy, 12u);
  EXPECT_EQ(lines[0].controllers, "cpu,cpuacct");
  EXPECT_EQ(lines[0].path, "/a/b");
  EXPECT_FALSE(lines[0].is_v2());
  EXPECT_EQ(lines[1].path, "/x:y");  // ':' inside a cgroup name stays in the path
  EXPECT_TRUE(lines[2].is_v2());
  EXPECT_EQ(lines[2].path, "/z");  // removed cgroup: kernel appends " (deleted)"
}

TEST(CgroupLines, GarbageIsSkippedAndCounted) {
  const std::string text = std::string("garbage\n") + "x:cpu:/a\n" + "1:cpu:relative/path\n" + ":::\n" +
                           "0::\n" + "-1:cpu:/a\n" + "99999999999999999999:cpu:/a\n" +
                           std::string("1:cpu:/ok\0junk", 14) + "\n" + "\n\n" + "0::/fine\n";
  std::size_t bad = 0;
  const auto lines = parse_cgroup_lines(text, &bad);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].path, std::string("/ok\0junk", 8));
  EXPECT_EQ(lines[1].path, "/fine");
  EXPECT_EQ(bad, 7u);
  EXPECT_EQ(parse_proc_cgroup(text).malformed_lines, 7u);
}

TEST(CgroupLines, EmptyInput) {
  const auto id = parse_proc_cgroup("");
  EXPECT_EQ(id.path, "");
  EXPECT_FALSE(id.in_container());
  EXPECT_FALSE(id.in_pod());
  EXPECT_EQ(id.malformed_lines, 0u);
}

TEST(CgroupLines, RandomInputKeepsInvariants) {
  // Deterministic pseudo-random input built from the tokens real paths are made of.
  std::mt19937 rng(12345);
  const std::vector<std::string> pieces = {"0::",
                                           "1:name=systemd:",
                                           "3:cpu:",
                                           "/",
                                           "kubepods",
                                           ".slice",
                                           "-pod",
                                           kUidSystemd,
                                           kUid,
                                           "crio-",
                                           "cri-containerd-",
                                           kId,
                                           ".scope",
                                           "burstable",
                                           "besteffort",
                                           ":",
                                           "\n",
                                           "_",
                                           "docker",
                                           std::string(1, '\0'),
                                           "\xff",
                                           ".service"};
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    const auto id = parse_proc_cgroup(text);
    if (id.in_container()) {
      EXPECT_TRUE(is_container_id(id.container_id));
      EXPECT_NE(id.runtime, ContainerRuntime::none);
    } else {
      EXPECT_EQ(id.runtime, ContainerRuntime::none);
    }
    if (id.in_pod()) {
      EXPECT_TRUE(is_pod_uid(id.pod_uid));
      EXPECT_NE(id.qos, QosClass::none);
    } else {
      EXPECT_EQ(id.qos, QosClass::none);
    }
  }
}

TEST(CgroupIds, Validators) {
  EXPECT_TRUE(is_container_id(kId));
  EXPECT_FALSE(is_container_id(kId + "0"));
  EXPECT_FALSE(is_container_id(std::string(63, 'a') + "g"));
  EXPECT_TRUE(is_pod_uid(kUid));
  EXPECT_TRUE(is_pod_uid(kStaticUid));
  EXPECT_FALSE(is_pod_uid(kUidSystemd));
  EXPECT_FALSE(is_pod_uid("abc"));
  EXPECT_EQ(runtime_name(ContainerRuntime::crio), "cri-o");
  EXPECT_EQ(qos_name(QosClass::besteffort), "besteffort");
}

// A fake /proc removed at scope exit, also when an assertion fails.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hs-cgroup-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

TEST(ReadProcCgroup, ReadsFakeProc) {
  TempDir proc;
  std::filesystem::create_directories(proc.path / "4242");
  std::ofstream(proc.path / "4242" / "cgroup") << "0::" << cgroupfs_path("besteffort", kId) << "\n";
  auto id = read_proc_cgroup(4242, proc.path);
  ASSERT_TRUE(id) << id.error().str();
  EXPECT_EQ(id->container_id, kId);
  EXPECT_EQ(id->pod_uid, kUid);
  EXPECT_EQ(id->qos, QosClass::besteffort);
}

TEST(ReadProcCgroup, MissingProcessNamesFileAndErrno) {
  TempDir proc;
  auto id = read_proc_cgroup(7, proc.path);
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().err, ENOENT);
  EXPECT_NE(id.error().str().find((proc.path / "7" / "cgroup").string()), std::string::npos);
}

TEST(ReadProcCgroup, OversizedFileIsRejected) {
  TempDir proc;
  std::filesystem::create_directories(proc.path / "9");
  {
    std::ofstream f(proc.path / "9" / "cgroup");
    const std::string line = "3:cpu:/" + std::string(1000, 'a') + "\n";
    for (int i = 0; i < 100; ++i) f << line;
  }
  auto id = read_proc_cgroup(9, proc.path);
  ASSERT_FALSE(id);
  EXPECT_NE(id.error().str().find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace hostscope::identity
