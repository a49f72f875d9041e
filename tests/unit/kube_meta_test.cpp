// Kubernetes names from a fake kubelet log tree (built in a temp dir, removed after), the bounded
// cache and its rescan rate limit (driven by a fake clock), and workload-name heuristics.
#include "agent/identity/kube_meta.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/identity/cgroup_identity.h"
#include "agent/identity/service_name.h"
#include "agent/identity/workload.h"

namespace hostscope::identity {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string make_id(char fill, char last = '0') { return std::string(63, fill) + last; }

const std::string kUid1 = "11111111-2222-4333-8444-555555555555";
const std::string kUid2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

// A node root with var/log/containers and var/log/pods, removed at scope exit (also on failure).
class FakeNode {
 public:
  FakeNode() {
    std::string tmpl = (fs::temp_directory_path() / "hs-kubenode-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    fs::create_directories(roots().containers_dir);
    fs::create_directories(roots().pods_dir);
  }
  ~FakeNode() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  KubeLogRoots roots() const { return {root_ / "var/log/containers", root_ / "var/log/pods"}; }
  const fs::path& root() const { return root_; }

  // What the kubelet does: a pod directory with a per-container log, and a symlink in
  // containers_dir whose target is the absolute node path (outside our temp root, as on a real
  // node where /var/log/pods is not below this test's root).
  void add_container(const std::string& ns, const std::string& pod, const std::string& uid,
                     const std::string& container, const std::string& id, bool symlink = true) {
    const fs::path pod_dir = roots().pods_dir / (ns + "_" + pod + "_" + uid) / container;
    fs::create_directories(pod_dir);
    std::ofstream(pod_dir / "0.log") << "log line\n";
    const fs::path link = roots().containers_dir / (pod + "_" + ns + "_" + container + "-" + id + ".log");
    if (symlink) {
      fs::create_symlink("/var/log/pods/" + ns + "_" + pod + "_" + uid + "/" + container + "/0.log", link);
    } else {
      std::ofstream(link) << "copied log\n";
    }
  }

 private:
  fs::path root_;
};

// Time only moves when the test says so: the rate limit is tested without sleeping.
struct FakeClock {
  std::chrono::steady_clock::time_point now{std::chrono::seconds(1000)};
  KubeMetaCache::Clock fn() {
    return [this] { return now; };
  }
};

KubeMetaOptions options(const FakeNode& node, std::size_t cap = 64,
                        std::chrono::milliseconds interval = 1000ms) {
  KubeMetaOptions o;
  o.roots = node.roots();
  o.cache_capacity = cap;
  o.min_rescan_interval = interval;
  return o;
}

TEST(KubeLogNames, ParsesContainerLogName) {
  const std::string id = make_id('a', '1');
  auto n = parse_container_log_name("nginx-7c5ddbdf54-x8k2m_default_nginx-" + id + ".log");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->pod, "nginx-7c5ddbdf54-x8k2m");
  EXPECT_EQ(n->ns, "default");
  EXPECT_EQ(n->container, "nginx");
  EXPECT_EQ(n->container_id, id);

  // Container names with '-' and pod names with '.' are legal; the id is always the last 64 chars.
  n = parse_container_log_name("web.example-0_kube-system_my-side-car-" + id + ".log");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->pod, "web.example-0");
  EXPECT_EQ(n->ns, "kube-system");
  EXPECT_EQ(n->container, "my-side-car");
}

TEST(KubeLogNames, RejectsMalformedContainerLogNames) {
  const std::string id = make_id('b');
  for (const std::string& bad : std::vector<std::string>{
           "pod_ns_c-" + id,                     // no .log
           "pod_ns_c-" + id.substr(1) + ".log",  // 63 hex
           "pod_ns_c-" + make_id('B') + ".log",  // uppercase
           "pod_ns_c" + id + ".log",             // no '-' before the id
           "pod_ns_x_c-" + id + ".log",          // four parts
           "pod_ns-" + id + ".log",              // two parts
           "_ns_c-" + id + ".log",               // empty pod
           "pod__c-" + id + ".log",              // empty namespace
           "pod_ns_-" + id + ".log",             // empty container
           "Pod_ns_c-" + id + ".log",            // not a DNS name
           "pod_n.s_c-" + id + ".log",           // '.' is not allowed in a namespace
           std::string(".log"),
           std::string(""),
       }) {
    EXPECT_FALSE(parse_container_log_name(bad)) << bad;
  }
}

TEST(KubeLogNames, ParsesPodDirName) {
  auto p = parse_pod_dir_name("kube-system_coredns-5dd5756b68-7xj2q_" + kUid1);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ns, "kube-system");
  EXPECT_EQ(p->pod, "coredns-5dd5756b68-7xj2q");
  EXPECT_EQ(p->uid, kUid1);
  EXPECT_FALSE(parse_pod_dir_name("ns_pod_not-a-uid"));
  EXPECT_FALSE(parse_pod_dir_name("ns_pod"));
  EXPECT_FALSE(parse_pod_dir_name("ns_pod_" + kUid1 + "_x"));
}

// Every runtime and cgroup driver names the container log the same way; the cgroup path gives
// the id (and pod UID), the log tree gives the names. This ties the two halves together.
struct RuntimeCase {
  std::string name;
  std::string cgroup_path;
};

class KubeEndToEnd : public ::testing::TestWithParam<RuntimeCase> {};

const std::string kE2eId = "4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e";
const std::string kE2eUidSystemd = "0d9c8b7a_6f5e_4d3c_8b2a_190f8e7d6c5b";
const std::string kE2eUid = "0d9c8b7a-6f5e-4d3c-8b2a-190f8e7d6c5b";

TEST_P(KubeEndToEnd, CgroupToNames) {
  FakeNode node;
  node.add_container("shop", "cart-6f7c9d8b5d-q2w4z", kE2eUid, "cart-api", kE2eId);
  node.add_container("shop", "db-0", kUid2, "postgres", make_id('c'));  // a neighbour, not looked up
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());

  const auto cg = parse_proc_cgroup("0::" + GetParam().cgroup_path + "\n");
  ASSERT_TRUE(cg.in_container());
  ASSERT_EQ(cg.pod_uid, kE2eUid);
  const auto meta = cache.by_container_id(cg.container_id);
  ASSERT_TRUE(meta);
  EXPECT_EQ(*meta, (ContainerMeta{"cart-6f7c9d8b5d-q2w4z", "shop", "cart-api", kE2eUid}));
  const auto pod = cache.by_pod_uid(cg.pod_uid);
  ASSERT_TRUE(pod);
  EXPECT_EQ(*pod, (PodMeta{"cart-6f7c9d8b5d-q2w4z", "shop"}));
  EXPECT_EQ(workload_from_pod_name(meta->pod).name, "cart");
  const auto st = cache.stats();
  EXPECT_EQ(st.rescans, 1u);  // the pod lookup was served from the same scan
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Runtimes, KubeEndToEnd,
    ::testing::Values(
        RuntimeCase{"containerd_systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                                              kE2eUidSystemd + ".slice/cri-containerd-" + kE2eId + ".scope"},
        RuntimeCase{"containerd_cgroupfs", "/kubepods/burstable/pod" + kE2eUid + "/" + kE2eId},
        RuntimeCase{"crio_systemd", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" +
                                        kE2eUidSystemd + ".slice/crio-" + kE2eId + ".scope"},
        RuntimeCase{"crio_cgroupfs", "/kubepods/besteffort/pod" + kE2eUid + "/crio-" + kE2eId},
        RuntimeCase{"docker_systemd",
                    "/kubepods.slice/kubepods-pod" + kE2eUidSystemd + ".slice/docker-" + kE2eId + ".scope"},
        RuntimeCase{"docker_cgroupfs", "/kubepods/pod" + kE2eUid + "/" + kE2eId}),
    [](const auto& info) { return info.param.name; });

TEST(KubeMeta, RegularFileLogFallsBackToUniquePodDir) {
  FakeNode node;
  const std::string id = make_id('d');
  node.add_container("default", "solo", kUid1, "app", id, /*symlink=*/false);
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());
  const auto meta = cache.by_container_id(id);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->pod_uid, kUid1);
}

TEST(KubeMeta, RecreatedPodWithoutSymlinkLeavesUidEmpty) {
  FakeNode node;
  const std::string id = make_id('e');
  // The same StatefulSet pod name under two UIDs (old one not yet cleaned up): ambiguous.
  node.add_container("default", "web-0", kUid1, "app", make_id('f'));
  node.add_container("default", "web-0", kUid2, "app", id, /*symlink=*/false);
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());
  const auto meta = cache.by_container_id(id);
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->pod, "web-0");
  EXPECT_EQ(meta->pod_uid, "");
  // The symlinked one still knows its UID, and both pod UIDs resolve.
  EXPECT_EQ(cache.by_container_id(make_id('f'))->pod_uid, kUid1);
  EXPECT_TRUE(cache.by_pod_uid(kUid1));
  EXPECT_TRUE(cache.by_pod_uid(kUid2));
}

TEST(KubeMeta, IgnoresForeignFilesInLogDirs) {
  FakeNode node;
  const std::string id = make_id('a');
  node.add_container("default", "p", kUid1, "c", id);
  std::ofstream(node.roots().containers_dir / "README") << "x";
  std::ofstream(node.roots().containers_dir / ("bad_name-" + id + ".log")) << "x";
  fs::create_directories(node.roots().pods_dir / "lost+found");
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());
  EXPECT_TRUE(cache.by_container_id(id));
  EXPECT_EQ(cache.container_entries(), 1u);
  EXPECT_EQ(cache.pod_entries(), 1u);
}

TEST(KubeMeta, CacheIsBoundedAndCountsEvictions) {
  FakeNode node;
  const std::string a = make_id('a'), b = make_id('b'), c = make_id('c');
  node.add_container("ns", "pod", kUid1, "ca", a);
  node.add_container("ns", "pod", kUid1, "cb", b);
  node.add_container("ns", "pod", kUid1, "cc", c);
  FakeClock clock;
  KubeMetaCache cache(options(node, /*cap=*/2), clock.fn());

  ASSERT_TRUE(cache.by_container_id(a));
  auto st = cache.stats();
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.rescans, 1u);
  EXPECT_EQ(st.evictions, 1u);  // three containers, room for two; one pod, no pod eviction
  EXPECT_EQ(cache.container_entries(), 2u);
  EXPECT_EQ(cache.pod_entries(), 1u);

  // The looked-up id went in last, so it survived; a second lookup is a hit.
  ASSERT_TRUE(cache.by_container_id(a));
  EXPECT_EQ(cache.stats().hits, 1u);

  // Of b and c exactly one was evicted; with the clock frozen its miss cannot rescan.
  const bool got_b = cache.by_container_id(b).has_value();
  const bool got_c = cache.by_container_id(c).has_value();
  EXPECT_NE(got_b, got_c);
  st = cache.stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 2u);
  EXPECT_EQ(st.rescans, 1u);
  EXPECT_EQ(st.rescans_suppressed, 1u);

  // Once the interval has passed the evicted one is found again (evicting another).
  clock.now += 1000ms;
  EXPECT_TRUE(cache.by_container_id(got_b ? c : b));
  st = cache.stats();
  EXPECT_EQ(st.rescans, 2u);
  EXPECT_GE(st.evictions, 2u);
  EXPECT_EQ(cache.container_entries(), 2u);
}

TEST(KubeMeta, LeastRecentlyUsedIsEvicted) {
  FakeNode node;
  const std::string a = make_id('a'), b = make_id('b'), c = make_id('c');
  // One pod, so the pod map (same cap) never evicts and the counts below are the containers' alone.
  node.add_container("ns", "p", kUid1, "ca", a);
  FakeClock clock;
  KubeMetaCache cache(options(node, /*cap=*/2), clock.fn());
  ASSERT_TRUE(cache.by_container_id(a));
  node.add_container("ns", "p", kUid1, "cb", b);
  clock.now += 1000ms;
  ASSERT_TRUE(cache.by_container_id(b));
  EXPECT_EQ(cache.stats().evictions, 0u);
  ASSERT_TRUE(cache.by_container_id(a));  // a is now more recent than b

  node.add_container("ns", "p", kUid1, "cc", c);
  clock.now += 1000ms;
  ASSERT_TRUE(cache.by_container_id(c));  // the scan re-sees a and b without refreshing them
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_EQ(cache.container_entries(), 2u);

  const auto before = cache.stats();
  EXPECT_TRUE(cache.by_container_id(a));   // kept: used recently
  EXPECT_FALSE(cache.by_container_id(b));  // evicted, and the rate limit forbids a rescan now
  const auto after = cache.stats();
  EXPECT_EQ(after.hits - before.hits, 1u);
  EXPECT_EQ(after.misses - before.misses, 1u);
  EXPECT_EQ(after.rescans_suppressed - before.rescans_suppressed, 1u);
}

TEST(KubeMeta, UnknownIdFloodCausesOneRescanPerInterval) {
  FakeNode node;
  node.add_container("ns", "p", kUid1, "c", make_id('a'));
  FakeClock clock;
  KubeMetaCache cache(options(node, 64, 500ms), clock.fn());
  for (int i = 0; i < 1000; ++i) {
    char buf[65];
    std::snprintf(buf, sizeof buf, "%064x", 0x100000 + i);
    EXPECT_FALSE(cache.by_container_id(buf));
  }
  auto st = cache.stats();
  EXPECT_EQ(st.misses, 1000u);
  EXPECT_EQ(st.rescans, 1u);
  EXPECT_EQ(st.rescans_suppressed, 999u);

  clock.now += 499ms;  // still inside the interval
  EXPECT_FALSE(cache.by_container_id(make_id('9')));
  EXPECT_EQ(cache.stats().rescans, 1u);
  clock.now += 1ms;  // exactly one interval after the first scan
  EXPECT_FALSE(cache.by_container_id(make_id('9')));
  st = cache.stats();
  EXPECT_EQ(st.rescans, 2u);
  EXPECT_EQ(st.rescans_suppressed, 1000u);
}

TEST(KubeMeta, NewContainerFoundAfterInterval) {
  FakeNode node;
  node.add_container("ns", "p", kUid1, "c", make_id('a'));
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());
  ASSERT_TRUE(cache.by_container_id(make_id('a')));
  const std::string late = make_id('b');
  node.add_container("ns", "q", kUid2, "c", late);
  clock.now += 10ms;
  EXPECT_FALSE(cache.by_container_id(late));  // rate-limited
  clock.now += 1000ms;
  const auto m = cache.by_container_id(late);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->pod, "q");
  EXPECT_EQ(m->pod_uid, kUid2);
}

TEST(KubeMeta, MalformedKeysNeverRescan) {
  FakeNode node;
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());
  EXPECT_FALSE(cache.by_container_id("not-an-id"));
  EXPECT_FALSE(cache.by_container_id(make_id('A')));
  EXPECT_FALSE(cache.by_pod_uid("../../etc"));
  const auto st = cache.stats();
  EXPECT_EQ(st.misses, 3u);
  EXPECT_EQ(st.rescans, 0u);
}

TEST(KubeMeta, MissingDirectoriesAreCountedNotFatal) {
  KubeMetaOptions o;
  o.roots = {"/nonexistent-hostscope-test/containers", "/nonexistent-hostscope-test/pods"};
  FakeClock clock;
  KubeMetaCache cache(o, clock.fn());
  EXPECT_FALSE(cache.by_container_id(make_id('a')));
  EXPECT_EQ(cache.stats().scan_errors, 2u);
  EXPECT_EQ(cache.stats().rescans, 1u);
}

TEST(KubeMeta, ScanReadsAtMostMaxEntries) {
  FakeNode node;
  for (char ch : std::string("abcdef"))
    node.add_container("ns", std::string("p") + ch, kUid1, "c", make_id(ch));
  FakeClock clock;
  KubeMetaOptions o = options(node);
  o.max_scan_entries = 2;
  KubeMetaCache cache(o, clock.fn());
  (void)cache.by_container_id(make_id('a'));
  EXPECT_LE(cache.container_entries(), 2u);
  EXPECT_EQ(cache.stats().rescans, 1u);
}

TEST(KubeFacts, CgroupAndLogTreeGiveTheServiceName) {
  FakeNode node;
  const std::string id = make_id('a');
  node.add_container("shop", "cart-6f7c9d8b5d-q2w4z", kUid1, "cart-api", id);
  node.add_container("shop", "pauseless-0", kUid2, "main", make_id('b'));
  FakeClock clock;
  KubeMetaCache cache(options(node), clock.fn());

  ProcessFacts f;
  f.comm = "cart";
  add_cgroup_facts(f, identity_from_path("/kubepods/burstable/pod" + kUid1 + "/" + id), &cache);
  EXPECT_EQ(f.cgroup_path, "/kubepods/burstable/pod" + kUid1 + "/" + id);
  EXPECT_EQ(f.k8s_namespace, "shop");
  EXPECT_EQ(f.k8s_pod, "cart-6f7c9d8b5d-q2w4z");
  EXPECT_EQ(f.k8s_container, "cart-api");
  EXPECT_EQ(service_name(f, {}), "shop/cart");

  // In the pod cgroup but in no container: names come from the pod UID, no container name.
  ProcessFacts g;
  add_cgroup_facts(g, identity_from_path("/kubepods/besteffort/pod" + kUid2), &cache);
  EXPECT_EQ(g.k8s_namespace, "shop");
  EXPECT_EQ(g.k8s_pod, "pauseless-0");
  EXPECT_FALSE(g.k8s_container);
  EXPECT_EQ(decide_service(g, {}).name, "shop/pauseless");

  // Host process: unit only, and no lookup is attempted.
  ProcessFacts h;
  const auto before = cache.stats();
  add_cgroup_facts(h, identity_from_path("/system.slice/nginx.service"), &cache);
  EXPECT_EQ(h.systemd_unit, "nginx.service");
  EXPECT_FALSE(h.k8s_namespace);
  EXPECT_EQ(cache.stats().misses, before.misses);
  EXPECT_EQ(service_name(h, {}), "nginx");

  // Without a cache only the cgroup facts are set.
  ProcessFacts k;
  add_cgroup_facts(k, identity_from_path("/kubepods/burstable/pod" + kUid1 + "/" + id));
  EXPECT_FALSE(k.k8s_namespace);
}

struct WorkloadCase {
  std::string pod;
  std::string name;
  WorkloadKind kind;
};

class WorkloadNames : public ::testing::TestWithParam<WorkloadCase> {};

TEST_P(WorkloadNames, FromPodName) {
  const auto w = workload_from_pod_name(GetParam().pod);
  EXPECT_EQ(w.name, GetParam().name);
  EXPECT_EQ(w.kind, GetParam().kind) << workload_kind_name(w.kind);
}

INSTANTIATE_TEST_SUITE_P(
    Heuristics, WorkloadNames,
    ::testing::Values(WorkloadCase{"nginx-7c5ddbdf54-x8k2m", "nginx", WorkloadKind::deployment},
                      WorkloadCase{"coredns-5dd5756b68-7xj2q", "coredns", WorkloadKind::deployment},
                      WorkloadCase{"my-app-api-5d8f9c7b6d-2xkzp", "my-app-api", WorkloadKind::deployment},
                      WorkloadCase{"web-68b9d-vbn2x", "web", WorkloadKind::deployment},  // 5-char hash
                      WorkloadCase{"web-7c5d-x8k2m", "web-7c5d",
                                   WorkloadKind::daemonset_or_job},  // 4: too short for a hash
                      WorkloadCase{"web-7c5ddbdf54b-x8k2m", "web-7c5ddbdf54b",
                                   WorkloadKind::daemonset_or_job},  // 11: too long
                      WorkloadCase{"web-7c5ddaef54-x8k2m", "web-7c5ddaef54",
                                   WorkloadKind::daemonset_or_job},  // vowel: no hash
                      WorkloadCase{"kube-proxy-7xj2q", "kube-proxy", WorkloadKind::daemonset_or_job},
                      WorkloadCase{"migrate-db-9fz4k", "migrate-db", WorkloadKind::daemonset_or_job},
                      WorkloadCase{"backup-28391520-x8k2m", "backup", WorkloadKind::cronjob},
                      WorkloadCase{"backup-28492456-x8k2m", "backup",
                                   WorkloadKind::cronjob},  // digits that are hash chars
                      WorkloadCase{"web-0", "web", WorkloadKind::statefulset},
                      WorkloadCase{"redis-master-12", "redis-master", WorkloadKind::statefulset},
                      WorkloadCase{"web-01", "web-01", WorkloadKind::pod},  // ordinals have no leading zero
                      WorkloadCase{"x8k2m", "x8k2m", WorkloadKind::pod},
                      WorkloadCase{"-x8k2m", "-x8k2m", WorkloadKind::pod},
                      WorkloadCase{"web-", "web-", WorkloadKind::pod},
                      WorkloadCase{"standalone", "standalone", WorkloadKind::pod},
                      WorkloadCase{"debug-shell", "debug-shell", WorkloadKind::pod},  // vowels: not a suffix
                      WorkloadCase{"", "", WorkloadKind::pod},
                      // Documented false positive: a bare pod whose last part happens to look generated.
                      WorkloadCase{"cache-bcdfg", "cache", WorkloadKind::daemonset_or_job}));

TEST(Workload, Alphabet) {
  EXPECT_TRUE(is_k8s_rand_string("bcdfghjklmnpqrstvwxz2456789"));
  for (char c : std::string("aeiouy013A-_")) EXPECT_FALSE(is_k8s_rand_string(std::string(1, c))) << c;
  EXPECT_FALSE(is_k8s_rand_string(""));
}

}  // namespace
}  // namespace hostscope::identity
