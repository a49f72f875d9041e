// Crash consistency of `hostscope policy apply` (issue 14): the real binary is killed (SIGKILL) at each step of a
// switch between generations (test hook HOSTSCOPE_TEST_POLICY_CRASH_AT) and at random times during a large apply;
// the next command (`policy status`) must finish or undo the switch, so that both families hold exactly one
// generation and status names it. Rules are installed only inside a network namespace the test creates.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/git_repo.h"
#include "support/privileged.h"

namespace {
namespace fs = std::filesystem;
using hostscope::testing::Netns;
using hostscope::testing::sh;
using hostscope::testing::TempDir;
using ::testing::HasSubstr;

std::string bin() { return std::getenv("HOSTSCOPE_BIN") ? std::getenv("HOSTSCOPE_BIN") : "hostscope"; }

std::string missing() {
  if (geteuid() != 0) return "needs root";
  for (const char* tool : {"ip", "iptables-nft-restore", "ip6tables-nft-restore", "iptables-legacy-restore", "ip6tables-legacy-restore"})
    if (sh(std::string("command -v ") + tool).status != 0) return std::string("missing ") + tool;
  if (sh(bin() + " --help").status != 0) return "hostscope binary not found (HOSTSCOPE_BIN)";
  return "";
}

// Policy set `tag` (1 or 2): `n` egress rules for the pod "web", each with one IPv4 and one IPv6 peer, on ports
// tag*10000 + i. The port range tells the generations apart in iptables-save of both families.
void write_set(const std::string& dir, int tag, size_t n) {
  fs::create_directories(dir);
  std::string y = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: web}\nsubject: {service: web}\n"
                  "default: {egress: deny}\negress:\n";
  for (size_t i = 0; i < n; ++i)
    y += fmt::format("  - {{action: allow, peers: [{{cidr: 10.{}.{}.0/24}}, {{cidr: 'fd00:{}:{}::/64'}}], ports: [{}], protocol: tcp}}\n",
                     i / 250, i % 250, i / 250, i % 250, tag * 10000 + i);
  std::ofstream(dir + "/web.yaml") << y;
}

class PolicyCrash : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    HS_REQUIRE_THAT(missing());
    HS_REQUIRE_SETUP(ns.ok(), "ip netns add");
    HS_REQUIRE_SETUP(!tmp.path().empty(), "mkdtemp");
    std::ofstream(tmp / "context.json") << R"({"services": [{"name": "web", "addresses": ["10.200.0.2", "fd00:200::2"]}]})";
  }
  void TearDown() override {
    if (ns.ok()) sh(policy("flush", ""));
  }

  std::string policy(const std::string& verb, const std::string& dir, const std::string& state = "state") const {
    return fmt::format("{} policy {} {} --netns {} --iptables {} --state-dir {} {}", bin(), verb, dir, ns.name(), GetParam(),
                       tmp / state, verb == "apply" || verb == "plan" ? "--context " + tmp / "context.json" : "");
  }
  std::string save(const char* family) const {
    return sh(ns.exec(fmt::format("{}-{}-save -t filter", family, GetParam()))).out;
  }

  // Which set (1, 2; 0 = none) each family holds; -1 when a family holds rules of both or an incomplete set. A run of
  // rules folded into an ipset counts by the members of the set its rule matches.
  int kernel_set(const char* family, size_t n) const {
    std::regex port("(--dport |,tcp:)([12])[0-9]{4}"), set_ref("--match-set (\\S+) ");
    size_t count[3] = {0, 0, 0};
    auto text = save(family);
    std::string members;
    for (std::sregex_iterator it(text.begin(), text.end(), set_ref), end; it != end; ++it)
      members += sh(ns.exec("ipset list " + (*it)[1].str())).out;
    text += members;
    for (std::sregex_iterator it(text.begin(), text.end(), port), end; it != end; ++it) count[std::stoi((*it)[2])]++;
    if (count[1] && count[2]) return -1;
    for (int t : {1, 2})
      if (count[t]) return count[t] == n ? t : -1;
    return 0;
  }

  // The invariant after a crash and the next command: no marker, both families hold the same complete set, and
  // `status` names a generation whose stored rules are that set, with no drift. Returns that set.
  int check_one_generation_in_force(size_t n, const std::string& what) {
    auto st = sh("{ " + policy("status", "") + " --json 2>/dev/null; }");  // the recovery warning goes to stderr
    EXPECT_EQ(st.status, 0) << what << ": " << st.out;
    auto j = nlohmann::json::parse(st.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << what << ": " << st.out;
    if (!j.is_object()) return -1;  // value() on anything else would throw and skip the namespace's cleanup
    EXPECT_FALSE(fs::exists(tmp / "state/pending")) << what;
    int v4 = kernel_set("iptables", n), v6 = kernel_set("ip6tables", n);
    EXPECT_EQ(v4, v6) << what << ": IPv4 holds set " << v4 << ", IPv6 set " << v6;
    EXPECT_FALSE(j.value("drift", true)) << what << ": " << j.value("drift_details", nlohmann::json::array()).dump();
    int gen = j.value("generation", -1);
    if (gen <= 0) {
      EXPECT_EQ(v4, 0) << what << ": status names no generation, the kernel holds set " << v4;
      return 0;
    }
    std::ifstream f(tmp / fmt::format("state/gen-{}.json", gen));
    auto g = nlohmann::json::parse(f, nullptr, false);
    EXPECT_TRUE(g.is_object() && g.contains("ipv4") && g.contains("ipv6")) << what << ": gen-" << gen << ".json";
    if (!g.is_object() || !g.contains("ipv4") || !g.contains("ipv6")) return -1;
    std::string rules = g["ipv4"]["rules"].dump() + g["ipv6"]["rules"].dump() + g["ipv4"]["ipsets"].dump();
    auto names = [&](int tag) {  // a rule's port, or a member of a folded run's set (protocol by number)
      return rules.find(fmt::format("--dport {}0000", tag)) != std::string::npos || rules.find(fmt::format(",6:{}0000\\n", tag)) != std::string::npos;
    };
    int named = names(1) ? 1 : names(2) ? 2 : 0;
    EXPECT_EQ(named, v4) << what << ": status names generation " << gen << " (set " << named << "), the kernel holds set " << v4;
    return v4;
  }

  TempDir tmp;
  Netns ns{"crash"};
};

// A kill -9 at each step of apply: before the commit point (`current` switched) the apply is undone, after it
// it is finished. Then the same apply goes through.
TEST_P(PolicyCrash, KillAtEachStepOfApplyLeavesOneGeneration) {
  const size_t n = 50;
  write_set(tmp / "a", 1, n);
  write_set(tmp / "b", 2, n);
  for (std::string step : {"intent", "ipv4", "ipv6", "stored", "current"}) {
    SCOPED_TRACE(step);
    fs::remove_all(tmp / "state");
    ASSERT_EQ(sh(policy("flush", "")).status, 0);
    auto a = sh(policy("apply", tmp / "a"));
    ASSERT_EQ(a.status, 0) << a.out;
    ASSERT_EQ(check_one_generation_in_force(n, "before"), 1);
    auto crashed = sh("HOSTSCOPE_TEST_POLICY_CRASH_AT=" + step + " " + policy("apply", tmp / "b") + "; echo exit=$?");
    ASSERT_THAT(crashed.out, HasSubstr("exit=137")) << crashed.out;  // SIGKILL
    ASSERT_TRUE(fs::exists(tmp / "state/pending"));
    // The next command repairs the state before it reads it.
    auto st = sh(policy("status", ""));
    EXPECT_EQ(st.status, 0) << st.out;
    EXPECT_THAT(st.out, HasSubstr("an interrupted apply of generation 2 (from 1) was"));
    int expected = step == "current" ? 2 : 1;
    EXPECT_EQ(check_one_generation_in_force(n, step), expected);
    EXPECT_EQ(fs::exists(tmp / "state/gen-2.json"), expected == 2);
    auto again = sh(policy("apply", tmp / "b"));
    EXPECT_EQ(again.status, 0) << again.out;
    EXPECT_THAT(again.out, HasSubstr(expected == 2 ? "no change: generation 2" : "applied generation 2"));
    EXPECT_EQ(check_one_generation_in_force(n, step + ", applied again"), 2);
  }
}

// Rollback and flush switch both families too: a kill between them is repaired the same way.
TEST_P(PolicyCrash, KillDuringRollbackAndFlushLeavesOneGeneration) {
  const size_t n = 20;
  write_set(tmp / "a", 1, n);
  write_set(tmp / "b", 2, n);
  ASSERT_EQ(sh(policy("apply", tmp / "a")).status, 0);
  ASSERT_EQ(sh(policy("apply", tmp / "b")).status, 0);
  auto crashed = sh("HOSTSCOPE_TEST_POLICY_CRASH_AT=ipv4 " + policy("rollback", "") + "; echo exit=$?");
  ASSERT_THAT(crashed.out, HasSubstr("exit=137"));
  EXPECT_EQ(check_one_generation_in_force(n, "rollback killed after ipv4"), 2);
  crashed = sh("HOSTSCOPE_TEST_POLICY_CRASH_AT=current " + policy("rollback", "") + "; echo exit=$?");
  ASSERT_THAT(crashed.out, HasSubstr("exit=137"));
  EXPECT_EQ(check_one_generation_in_force(n, "rollback killed after current"), 1);
  crashed = sh("HOSTSCOPE_TEST_POLICY_CRASH_AT=ipv4 " + policy("flush", "") + "; echo exit=$?");
  ASSERT_THAT(crashed.out, HasSubstr("exit=137"));
  EXPECT_EQ(check_one_generation_in_force(n, "flush killed after ipv4"), 1);
}

// Real SIGKILLs at random times during a large apply (5000 rules per family), alternating between two sets.
TEST_P(PolicyCrash, RandomKillsDuringALargeApplyLeaveOneGeneration) {
  const size_t n = 5000;
  write_set(tmp / "set1", 1, n);
  write_set(tmp / "set2", 2, n);
  ASSERT_EQ(sh(policy("apply", tmp / "set1")).status, 0);
  // One uninterrupted apply of the other set measures the window the kills are spread over.
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(sh(policy("apply", tmp / "set2")).status, 0);
  auto window = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  int in_force = check_one_generation_in_force(n, "after the measured apply");
  ASSERT_EQ(in_force, 2);
  std::mt19937 rng(std::random_device{}());
  int undone = 0, finished = 0, mid_switch = 0;
  for (int i = 0; i < 8; ++i) {
    int other = in_force == 1 ? 2 : 1;
    auto cmd = policy("apply", tmp / fmt::format("set{}", other)) + " >/dev/null 2>&1";
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), nullptr);
      _exit(127);
    }
    // Compiling comes first: the kills are spread over the later part of the window, where the kernel is switched.
    auto delay = std::uniform_int_distribution<int64_t>(window.count() / 3, window.count())(rng);
    std::this_thread::sleep_for(std::chrono::microseconds(delay));
    kill(pid, SIGKILL);
    int wst = 0;
    waitpid(pid, &wst, 0);
    if (fs::exists(tmp / "state/pending")) ++mid_switch;  // killed while the kernel was being switched
    int now = check_one_generation_in_force(n, fmt::format("kill {} after {} us", i, delay));
    ASSERT_TRUE(now == 1 || now == 2) << "kill " << i;
    (now == other ? finished : undone)++;
    in_force = now;
  }
  std::cout << fmt::format("[ info ] apply of {} rules per family took {} ms; of 8 kills, {} came during the switch, {} left the new "
                           "set, {} the old one\n",
                           n, window.count() / 1000, mid_switch, finished, undone);
}

INSTANTIATE_TEST_SUITE_P(Variants, PolicyCrash, ::testing::Values("nft", "legacy"));

}  // namespace
