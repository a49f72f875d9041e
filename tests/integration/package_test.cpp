// The Debian package, end to end (docs/packaging.md):
//   build it with scripts/build-deb.sh (lintian errors fail the build), inspect it with dpkg-deb -I/-c,
//   systemd-analyze verify its unit, install it with dpkg into a fresh debootstrap root, start the unit the way
//   systemd would (tests/integration/pkgroot.sh), talk to the agent with `hostscope doctor` and `hostscope top`,
//   apply a policy in a network namespace the test owns, then remove (rules flushed) and purge (nothing left).
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support/privileged.h"

namespace hostscope {
namespace {

namespace fs = std::filesystem;
using testing::Child;
using testing::eventually;
using testing::Netns;
using testing::sh;

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}
std::string q(const std::string& s) { return "'" + s + "'"; }

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

struct Built {
  std::string tmp, out, deb, version;
  testing::CmdResult build;
};
Built* built = nullptr;

class Package : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    built = new Built;
    char dir[] = "/var/tmp/hs-pkg-XXXXXX";
    if (!mkdtemp(dir)) return;
    built->tmp = dir;
    built->out = built->tmp + "/out";
    built->build = sh(env("HOSTSCOPE_SRC") + "/scripts/build-deb.sh --prebuilt " + q(env("HOSTSCOPE_BUILD")) + " " +
                      q(built->out));
    auto v = sh("sed -n 's/^project(hostscope VERSION \\([0-9.]*\\).*/\\1/p' " + q(env("HOSTSCOPE_SRC") + "/CMakeLists.txt"));
    built->version = lines_of(v.out).empty() ? "" : lines_of(v.out)[0];
    built->deb = built->out + "/hostscope_" + built->version + "_amd64.deb";
  }
  static void TearDownTestSuite() {
    if (built && !built->tmp.empty()) sh("rm -rf " + q(built->tmp));
    delete built;
    built = nullptr;
  }
  void SetUp() override {
    HS_REQUIRE_ROOT();
    ASSERT_NE(built, nullptr);
    ASSERT_EQ(built->build.status, 0) << built->build.out;
    ASSERT_TRUE(fs::exists(built->deb)) << built->build.out;
  }
};

TEST_F(Package, BuildsLintianClean) {
  std::string lint = sh("cat " + q(built->out + "/lintian.txt")).out;
  for (const auto& l : lines_of(lint)) EXPECT_NE(l.rfind("E: ", 0), 0u) << l;
  EXPECT_TRUE(fs::exists(built->out + "/hostscope-dbgsym_" + built->version + "_amd64.deb"))
      << "debug symbols are split off by dh_strip";
}

TEST_F(Package, ControlDeclaresLinkedLibrariesAndConffile) {
  auto field = [](const std::string& f) { return sh("dpkg-deb -f " + q(built->deb) + " " + f).out; };
  EXPECT_EQ(field("Package"), "hostscope\n");
  EXPECT_EQ(field("Version"), built->version + "\n");
  EXPECT_EQ(field("Architecture"), "amd64\n");
  std::string depends = field("Depends");
  EXPECT_NE(depends.find("adduser"), std::string::npos) << depends;
  // Every shared library the binary links comes from a package the .deb depends on (dpkg-shlibdeps).
  auto needed = sh("objdump -p " + q(env("HOSTSCOPE_BIN")) + " | awk '/NEEDED/ {print $2}'");
  ASSERT_EQ(needed.status, 0);
  ASSERT_FALSE(lines_of(needed.out).empty());
  // Each library as the loader resolves it for this binary (a bare name can match other architectures' copies,
  // e.g. libc6-i386's /lib32/libm.so.6), owned by the path itself or its /usr-merged alias.
  for (const auto& lib : lines_of(needed.out)) {
    auto path = sh("ldd " + q(env("HOSTSCOPE_BIN")) + " | awk -v l=" + q(lib) + " '$1 == l {print $3}'");
    ASSERT_EQ(path.status, 0) << lib;
    ASSERT_FALSE(lines_of(path.out).empty()) << lib << " not resolved by ldd";
    const std::string p = lines_of(path.out).at(0);
    const std::string alias = p.rfind("/usr/", 0) == 0 ? p.substr(4) : "/usr" + p;
    auto owner = sh("{ dpkg -S " + q(p) + " || dpkg -S " + q(alias) + "; } 2>/dev/null | head -1 | cut -d: -f1");
    ASSERT_EQ(owner.status, 0) << lib;
    ASSERT_FALSE(lines_of(owner.out).empty()) << lib << " (" << p << ") belongs to no package";
    std::string pkg = lines_of(owner.out).at(0);
    EXPECT_NE(depends.find(pkg), std::string::npos) << lib << " from " << pkg << " not in Depends: " << depends;
  }
  auto info = sh("dpkg-deb -I " + q(built->deb));
  EXPECT_NE(info.out.find("conffiles"), std::string::npos) << info.out;
  for (const char* s : {"postinst", "prerm", "postrm"}) EXPECT_NE(info.out.find(s), std::string::npos) << s;
  EXPECT_EQ(sh("dpkg-deb -I " + q(built->deb) + " conffiles").out, "/etc/hostscope/config.yaml\n");
}

TEST_F(Package, ContentsOwnersAndModes) {
  auto c = sh("dpkg-deb -c " + q(built->deb));
  ASSERT_EQ(c.status, 0);
  std::map<std::string, std::string> mode;  // path -> "-rwxr-xr-x"
  for (const auto& l : lines_of(c.out)) {
    std::istringstream in(l);
    std::string perms, owner, size, date, time, path;
    in >> perms >> owner >> size >> date >> time >> path;
    EXPECT_EQ(owner, "root/root") << l;
    mode[path] = perms;
  }
  std::map<std::string, std::string> want = {
      {"./usr/bin/hostscope", "-rwxr-xr-x"},
      {"./etc/hostscope/config.yaml", "-rw-r--r--"},
      {"./lib/systemd/system/hostscope.service", "-rw-r--r--"},
      {"./usr/share/man/man1/hostscope.1.gz", "-rw-r--r--"},
      {"./usr/share/bash-completion/completions/hostscope", "-rw-r--r--"},
      {"./usr/share/doc/hostscope/copyright", "-rw-r--r--"},
  };
  for (const auto& [p, m] : want) EXPECT_EQ(mode[p], m) << p << " in\n" << c.out;
}

TEST_F(Package, UnitIsHardened) {
  std::string x = built->tmp + "/extract";
  ASSERT_EQ(sh("dpkg-deb -x " + q(built->deb) + " " + q(x)).status, 0);
  std::string unit = sh("cat " + q(x + "/lib/systemd/system/hostscope.service")).out;
  for (const char* d : {"\nExecStart=/usr/bin/hostscope agent", "\nRestart=on-failure", "\nProtectSystem=strict",
                        "\nPrivateTmp=yes", "\nNoNewPrivileges=yes", "\nRuntimeDirectory=hostscope",
                        "\nStateDirectory=hostscope", "\nLogsDirectory=hostscope"})
    EXPECT_NE(unit.find(d), std::string::npos) << d;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex("\nCapabilityBoundingSet=([^\n]*)")));
  for (const char* c : {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"}) EXPECT_NE(m[1].str().find(c), std::string::npos) << c;
  EXPECT_EQ(m[1].str().find("CAP_SYS_ADMIN"), std::string::npos) << "the agent runs without CAP_SYS_ADMIN";
  // (systemd-analyze verify runs on the installed unit, in InstallRunAsServiceRemovePurge.)
}

// A fresh Debian root: debootstrap --variant=minbase, then the package's dependencies installed with the root's
// own apt (it resolves virtual packages such as libspdlog1.10-fmt9), so dpkg -i of the .deb works offline.
// systemd and man-db as on a real node (systemd-analyze verify runs there, and its man: check finds the page),
// iptables/ipset/nftables for the policy check. Cached as a tarball in the build directory, keyed by the lists.
std::string fresh_root(const std::string& dest, const std::string& pkgroot) {
  std::string deps = sh("dpkg-deb -f " + q(built->deb) + " Depends Recommends | sed 's/^[A-Za-z]*: //' | tr ',' '\\n' | "
                        "sed 's/|.*//; s/(.*)//; s/ //g' | grep -v '^$' | sort -u | tr '\\n' ' '")
                         .out;
  const std::string base = "systemd,man-db,iptables,ipset,nftables,util-linux,adduser";
  std::string key = lines_of(sh("printf %s " + q(base + deps) + " | sha256sum | cut -c1-16").out).at(0);
  std::string cache_dir = env("HOSTSCOPE_BUILD") + "/pkgtest-cache";
  std::string tar = cache_dir + "/rootfs-" + key + ".tar";
  if (!fs::exists(tar)) {
    std::string mirror = env("HOSTSCOPE_DEBIAN_MIRROR").empty() ? "http://deb.debian.org/debian"
                                                                 : env("HOSTSCOPE_DEBIAN_MIRROR");
    std::string work = dest + ".debootstrap";
    auto r = sh("mkdir -p " + q(cache_dir) + " && debootstrap --variant=minbase --include=" + q(base) + " bookworm " +
                q(work) + " " + q(mirror) + " && cp /etc/resolv.conf " + q(work + "/etc/resolv.conf") + " && " +
                q(pkgroot) + " run " + q(work) +
                " env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends " + deps +
                " && apt-get clean' && tar -C " + q(work) + " --numeric-owner -cf " + q(tar + ".part") + " . && mv " +
                q(tar + ".part") + " " + q(tar));
    sh("rm -rf " + q(work) + " " + q(tar + ".part"));
    if (r.status != 0) {
      ADD_FAILURE() << "building the fresh root failed (needs the Debian mirror " << mirror << "):\n" << r.out;
      return "";
    }
  }
  if (sh("mkdir -p " + q(dest) + " && tar -C " + q(dest) + " --numeric-owner -xf " + q(tar)).status != 0) return "";
  return dest;
}

// Every path in the root except dpkg's own bookkeeping, man-db's cache, the account-file backups and lock adduser
// keeps, and systemd-analyze's marker in /run (tools' state, not the package's).
std::set<std::string> tree(const std::string& root) {
  auto r = sh("cd " + q(root) + " && find . -xdev | grep -Ev '^\\./(var/lib/dpkg|var/cache/debconf|var/cache/man|var/log/(dpkg|alternatives)\\.log|run/adduser|run/systemd|tmp|proc|sys|dev)(/|$)|^\\./etc/(group|gshadow|passwd|shadow)-$' | sort");
  auto l = lines_of(r.out);
  return {l.begin(), l.end()};
}

TEST_F(Package, InstallRunAsServiceRemovePurge) {
  const std::string pkgroot = env("HOSTSCOPE_SRC") + "/tests/integration/pkgroot.sh";
  std::string root = fresh_root(built->tmp + "/root", pkgroot);
  ASSERT_FALSE(root.empty());
  Netns ns("pkg");
  ASSERT_TRUE(ns.ok());
  // Everything runs in the test's network namespace (policy rules land there), chrooted into the fresh root.
  auto in_root = [&](const std::string& cmd) {
    return sh("nsenter --net=/run/netns/" + ns.name() + " " + q(pkgroot) + " run " + q(root) + " " + cmd);
  };
  auto before = tree(root);
  std::string group_before = sh("cat " + q(root + "/etc/group")).out;

  // Install with dpkg, as `apt install ./hostscope_*.deb` would once the dependencies are there.
  ASSERT_EQ(sh("cp " + q(built->deb) + " " + q(root + "/tmp/hostscope.deb")).status, 0);
  auto inst = in_root("dpkg -i /tmp/hostscope.deb");
  ASSERT_EQ(inst.status, 0) << inst.out;
  auto listed = lines_of(in_root("dpkg -L hostscope").out);
  ASSERT_FALSE(listed.empty());

  struct stat st{};
  auto mode_of = [&](const std::string& p) {
    st = {};
    EXPECT_EQ(::stat((root + p).c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode_of("/usr/bin/hostscope"), 0755u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(mode_of("/etc/hostscope/config.yaml"), 0644u);
  EXPECT_EQ(mode_of("/lib/systemd/system/hostscope.service"), 0644u);
  EXPECT_EQ(mode_of("/usr/share/man/man1/hostscope.1.gz"), 0644u);
  EXPECT_EQ(mode_of("/usr/share/bash-completion/completions/hostscope"), 0644u);
  // postinst: the group exists; debhelper enabled the unit (deb-systemd-helper works without a running systemd).
  std::smatch m;
  std::string group_file = sh("cat " + q(root + "/etc/group")).out;
  ASSERT_TRUE(std::regex_search(group_file, m, std::regex("\nhostscope:x:([0-9]+):"))) << group_file;
  const unsigned gid = unsigned(std::stoul(m[1]));
  EXPECT_TRUE(fs::is_symlink(root + "/etc/systemd/system/multi-user.target.wants/hostscope.service"));
  EXPECT_EQ(in_root("hostscope --version").out, "hostscope " + built->version + "\n");
  // The installed unit, verified offline by the root's own systemd (no systemd runs as PID 1 here).
  auto verify = in_root("env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify hostscope.service");
  EXPECT_EQ(verify.status, 0) << verify.out;
  EXPECT_EQ(verify.out, "") << "systemd-analyze has remarks";

  // "systemctl start hostscope": the unit's own ExecStartPre/ExecStart under its sandbox and capability set.
  const std::string sock = root + "/run/hostscope/hostscope.sock";
  Child agent({"nsenter", "--net=/run/netns/" + ns.name(), pkgroot, "service", root, "hostscope.service"});
  ASSERT_TRUE(eventually([&] { return in_root("hostscope doctor -o json").out.find(" is running on ") != std::string::npos; },
                         std::chrono::seconds(60)))
      << in_root("hostscope doctor").out;
  mode_of("/run/hostscope/hostscope.sock");
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_gid, gid) << "the API socket belongs to group hostscope";
  EXPECT_EQ(mode_of("/run/hostscope"), 0755u);
  EXPECT_TRUE(fs::is_directory(root + "/var/lib/hostscope"));

  // doctor talks to it and reports the daemon healthy.
  auto doc = in_root("hostscope doctor -o json");
  auto j = nlohmann::json::parse(doc.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << doc.out;
  std::map<std::string, std::string> status;
  for (const auto& c : j["checks"]) status[c["name"]] = c["status"];
  EXPECT_EQ(status["agent"], "ok") << doc.out;
  EXPECT_EQ(status["btf"], "ok") << doc.out;
  EXPECT_EQ(status["tracefs"], "ok") << doc.out;
  EXPECT_EQ(status["group"], "ok") << doc.out;
  EXPECT_EQ(status["config"], "ok") << doc.out;
  EXPECT_EQ(doc.status, j["exit_code"].get<int>());
  // top (plain snapshots: stdout is not a terminal) talks to the same agent.
  auto top = in_root("hostscope top --iterations 2 --interval 0.2");
  EXPECT_EQ(top.status, 0) << top.out;
  EXPECT_NE(top.out.find("agent at /run/hostscope/hostscope.sock"), std::string::npos) << top.out;

  // A policy applied in the test's namespace, so remove has rules to flush.
  std::ofstream(root + "/tmp/ctx.json") << R"({"services": [{"name": "web", "addresses": ["10.9.9.9"], "ports": [80]}]})";
  fs::create_directories(root + "/tmp/pol");
  std::ofstream(root + "/tmp/pol/web.yaml") << "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: web\n"
                                               "subject:\n  service: web\ndefault:\n  ingress: deny\n";
  auto apply = in_root("hostscope policy apply /tmp/pol --context /tmp/ctx.json --iptables nft");
  ASSERT_EQ(apply.status, 0) << apply.out;
  ASSERT_NE(in_root("iptables-nft-save").out.find("HOSTSCOPE-"), std::string::npos);

  // "systemctl stop": SIGTERM to the main process, which exits cleanly.
  kill(agent.pid(), SIGTERM);
  EXPECT_EQ(agent.wait(), 0);

  // remove: files gone, rules flushed, conffile and group kept until purge.
  auto rm = in_root("dpkg -r hostscope");
  ASSERT_EQ(rm.status, 0) << rm.out;
  EXPECT_FALSE(fs::exists(root + "/usr/bin/hostscope"));
  EXPECT_EQ(in_root("iptables-nft-save").out.find("HOSTSCOPE"), std::string::npos) << in_root("iptables-nft-save").out;
  EXPECT_EQ(in_root("ip6tables-nft-save").out.find("HOSTSCOPE"), std::string::npos);
  EXPECT_EQ(in_root("ipset list -n").out, "");
  // The legacy variant was never used here, so remove must not have touched it (no empty legacy tables).
  EXPECT_EQ(in_root("iptables-legacy-save").out, "");
  EXPECT_TRUE(fs::exists(root + "/etc/hostscope/config.yaml"));

  // purge: nothing of hostscope is left: files, state, runtime and log directories, group, unit enablement.
  auto purge = in_root("dpkg -P hostscope");
  ASSERT_EQ(purge.status, 0) << purge.out;
  sh("rm -rf " + q(root + "/tmp/pol") + " " + q(root + "/tmp/ctx.json") + " " + q(root + "/tmp/hostscope.deb"));
  for (const char* p : {"/etc/hostscope", "/var/lib/hostscope", "/var/log/hostscope", "/run/hostscope",
                        "/etc/systemd/system/multi-user.target.wants/hostscope.service"})
    EXPECT_FALSE(fs::exists(root + p) || fs::is_symlink(root + p)) << p;
  EXPECT_EQ(sh("cat " + q(root + "/etc/group")).out, group_before);
  auto after = tree(root);
  for (const auto& p : after) EXPECT_TRUE(before.count(p)) << "left behind: " << p;
  for (const auto& p : before) EXPECT_TRUE(after.count(p)) << "removed by the package: " << p;
}

}  // namespace
}  // namespace hostscope
