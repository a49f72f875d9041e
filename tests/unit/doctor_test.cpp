// `hostscope doctor`: the pure parts (mountinfo parsing, verdicts, exit code, rendering) and the hook list
// kept in step with the BPF sources.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "agent/cli/doctor/checks.h"
#include "agent/cli/doctor/probe.h"
#include "agent/history/store.h"
#include "agent/util/mounts.h"

namespace hostscope::doctor {
namespace {

NodeFacts healthy() {
  NodeFacts f;
  f.root = true;
  f.btf_present = true;
  for (const auto& h : agent_hooks()) f.hooks[h.category + "/" + h.event] = {h.has_btf, Tri::Yes};
  f.tracefs_mount = "/sys/kernel/tracing";
  f.bpffs_mount = "/sys/fs/bpf";
  f.cgroup2_mount = "/sys/fs/cgroup";
  f.tracefs_supported = f.bpffs_supported = true;
  for (const char* b : {"iptables", "iptables-nft", "iptables-legacy", "ip6tables", "ip6tables-nft", "ip6tables-legacy"})
    f.iptables.push_back({b, true, std::string(b) == "iptables" ? "iptables v1.8.9 (nf_tables)" : ""});
  f.ipset_present = true;
  f.config_path = "/etc/hostscope/config.yaml";
  f.socket_path = "/run/hostscope/hostscope.sock";
  f.group_exists = true;
  f.socket_exists = true;
  f.health = nlohmann::json{{"version", "0.1.0"},
                            {"attach_mode", "tp_btf"},
                            {"events_delivered", 42},
                            {"degraded", nlohmann::json::array()},
                            {"kernel", {{"lost_ringbuf", 0}, {"lost_reentry", 0}}}};
  return f;
}

const Check& find(const std::vector<Check>& cs, const std::string& name) {
  for (const auto& c : cs)
    if (c.name == name) return c;
  static Check none{"<missing>", Level::Fail, ""};
  ADD_FAILURE() << "no check named " << name;
  return none;
}

TEST(DoctorMounts, ParsesMountinfoWithEscapes) {
  std::string text =
      "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
      "30 22 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
      "40 22 0:12 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw\n"
      "41 1 0:50 / /mnt/with\\040space rw - ext4 /dev/sda1 rw\n"
      "garbage line\n";
  auto m = parse_mountinfo(text);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(first_mount_of_type(m, "cgroup2"), "/sys/fs/cgroup/unified");
  EXPECT_EQ(first_mount_of_type(m, "tracefs"), "/sys/kernel/tracing");
  EXPECT_EQ(m[3].point, "/mnt/with space");
  EXPECT_EQ(first_mount_of_type(m, "bpf"), "");
}

TEST(DoctorMounts, ProcFilesystems) {
  std::string text = "nodev\tsysfs\nnodev\ttracefs\n\text4\nnodev\tbpf\n";
  EXPECT_TRUE(filesystem_supported(text, "tracefs"));
  EXPECT_TRUE(filesystem_supported(text, "ext4"));
  EXPECT_TRUE(filesystem_supported(text, "bpf"));
  EXPECT_FALSE(filesystem_supported(text, "cgroup2"));
  EXPECT_FALSE(filesystem_supported(text, "trace"));
}

TEST(DoctorVerdicts, HealthyNodeIsAllOkAndExitsZero) {
  auto cs = evaluate(healthy());
  for (const auto& c : cs) EXPECT_EQ(c.level, Level::Ok) << c.name << ": " << c.message;
  EXPECT_EQ(exit_code(cs), 0);
  EXPECT_NE(render_text(cs).find("hostscope can run fully on this node."), std::string::npos);
  auto j = render_json(cs);
  EXPECT_EQ(j["exit_code"], 0);
  ASSERT_EQ(j["checks"].size(), cs.size());
  EXPECT_EQ(j["checks"][0]["status"], "ok");
}

TEST(DoctorVerdicts, NoBtfFailsAndClassicTracepointsDegrade) {
  auto f = healthy();
  f.btf_present = false;
  f.btf_error = "No such file or directory";
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "btf").level, Level::Fail);
  EXPECT_NE(find(cs, "btf").message.find("CONFIG_DEBUG_INFO_BTF"), std::string::npos);
  // tp_btf needs BTF: hooks fall back to their classic tracepoints, which cost more per event.
  EXPECT_EQ(find(cs, "hook sock/inet_sock_set_state").level, Level::Warn);
  EXPECT_EQ(find(cs, "hook sock/sock_recv_length").level, Level::Warn);
  EXPECT_NE(find(cs, "hook sock/sock_recv_length").message.find("classic"), std::string::npos);
  EXPECT_EQ(exit_code(cs), 1);
  EXPECT_NE(render_text(cs).find("1 failing"), std::string::npos);
}

TEST(DoctorVerdicts, MissingRequiredHookFailsOptionalWarns) {
  auto f = healthy();
  f.hooks["sock/inet_sock_set_state"] = {false, Tri::No};
  f.hooks["tcp/tcp_send_reset"] = {false, Tri::No};
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "hook sock/inet_sock_set_state").level, Level::Fail);
  EXPECT_EQ(find(cs, "hook tcp/tcp_send_reset").level, Level::Warn);
  EXPECT_NE(find(cs, "hook tcp/tcp_send_reset").message.find("plain closes"), std::string::npos);
}

TEST(DoctorVerdicts, UnmountedTracefsIsFineWithBtfHooks) {
  auto f = healthy();
  f.tracefs_mount.clear();
  for (auto& [k, h] : f.hooks) h.classic = Tri::Unknown;
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "tracefs").level, Level::Ok);
  EXPECT_NE(find(cs, "tracefs").message.find("mounts it"), std::string::npos);
  EXPECT_EQ(find(cs, "hook sock/inet_sock_set_state").level, Level::Ok);  // tp_btf needs no tracefs
  // Every hook has a tp_btf program: nothing needs tracefs on a kernel with BTF.
  for (const auto& h : agent_hooks())
    EXPECT_EQ(find(cs, "hook " + h.category + "/" + h.event).level, Level::Ok) << h.event;
  f.tracefs_supported = false;
  EXPECT_EQ(find(evaluate(f), "tracefs").level, Level::Warn);
}

TEST(DoctorVerdicts, BpfLoadFailureDependsOnWhoAsks) {
  auto f = healthy();
  f.bpf_load_error = "EPERM (Operation not permitted)";
  EXPECT_EQ(find(evaluate(f), "bpf").level, Level::Fail);
  f.root = false;
  EXPECT_EQ(find(evaluate(f), "bpf").level, Level::Warn);
}

TEST(DoctorVerdicts, PolicyToolsConfigAndKubelet) {
  auto f = healthy();
  f.iptables[2].present = false;  // iptables-legacy
  f.ipset_present = false;
  f.config_error = "/etc/hostscope/config.yaml:3:5: unknown key 'atach'";
  f.kubelet_pods_dir = true;
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "iptables").level, Level::Warn);
  EXPECT_NE(find(cs, "iptables").message.find("iptables-legacy missing"), std::string::npos);
  EXPECT_EQ(find(cs, "ipset").level, Level::Warn);
  EXPECT_EQ(find(cs, "config").level, Level::Fail);
  EXPECT_NE(find(cs, "config").message.find("config.yaml:3:5"), std::string::npos);
  EXPECT_EQ(find(cs, "kubelet").level, Level::Warn);
  EXPECT_NE(find(cs, "kubelet").message.find("/var/log/pods"), std::string::npos);
  f.log_pods_dir = true;
  EXPECT_EQ(find(evaluate(f), "kubelet").level, Level::Ok);
}

TEST(DoctorVerdicts, GroupAndDaemon) {
  auto f = healthy();
  f.root = false;
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "group").level, Level::Warn);
  EXPECT_NE(find(cs, "group").message.find("adduser"), std::string::npos);
  f.caller_in_group = true;
  EXPECT_EQ(find(evaluate(f), "group").level, Level::Ok);
  f.group_exists = false;
  EXPECT_EQ(find(evaluate(f), "group").level, Level::Warn);

  f = healthy();
  f.health.reset();
  f.daemon_error = "connect: ENOENT";
  cs = evaluate(f);
  EXPECT_EQ(find(cs, "agent").level, Level::Warn);
  EXPECT_NE(find(cs, "agent").message.find("ENOENT"), std::string::npos);
  EXPECT_EQ(exit_code(cs), 1);

  f = healthy();
  (*f.health)["kernel"]["lost_ringbuf"] = 7;
  (*f.health)["degraded"] = {"tcp_send_reset: resets are reported as plain closes"};
  cs = evaluate(f);
  EXPECT_EQ(find(cs, "agent").level, Level::Ok);
  EXPECT_EQ(find(cs, "agent events").level, Level::Warn);
  EXPECT_NE(find(cs, "agent events").message.find("7 events"), std::string::npos);
  EXPECT_EQ(find(cs, "agent degraded").level, Level::Warn);
  EXPECT_EQ(render_json(cs)["exit_code"], 1);
}

// The kernel edge table as the agent reports it: off, in use, nearly full, overflowed.
TEST(DoctorChecks, EdgeTableOccupancyAndOverflow) {
  auto f = healthy();
  (*f.health)["edge_table"] = {{"entries", 0}, {"capacity", 0}, {"overflow", 0}};
  auto c = find(evaluate(f), "agent edge table");
  EXPECT_EQ(c.level, Level::Ok);
  EXPECT_NE(c.message.find("off"), std::string::npos) << c.message;
  (*f.health)["edge_table"] = {{"entries", 12}, {"capacity", 1024}, {"overflow", 0}};
  c = find(evaluate(f), "agent edge table");
  EXPECT_EQ(c.level, Level::Ok);
  EXPECT_NE(c.message.find("12 of 1024"), std::string::npos) << c.message;
  (*f.health)["edge_table"]["entries"] = 1000;
  EXPECT_EQ(find(evaluate(f), "agent edge table").level, Level::Warn);
  (*f.health)["edge_table"] = {{"entries", 1024}, {"capacity", 1024}, {"overflow", 5}};
  c = find(evaluate(f), "agent edge table");
  EXPECT_EQ(c.level, Level::Warn);
  EXPECT_NE(c.message.find("5 connection opens or closes"), std::string::npos) << c.message;
  EXPECT_NE(c.message.find("kernel.edge_table_size"), std::string::npos) << c.message;
}

// Debian 12's 6.1 kernel has every hook as tp_btf except sock_send_length/sock_recv_length (added in 6.3), which
// exist neither as BTF types nor as classic tracepoints: those two are off, everything else stays tp_btf.
TEST(DoctorHooks, PredictsEachHookOnItsOwnLikeTheAgent) {
  auto f = healthy();
  for (const char* ev : {"sock/sock_send_length", "sock/sock_recv_length"}) f.hooks[ev] = {false, Tri::No};
  f.hooks["tcp/tcp_send_reset"] = {false, Tri::Yes};
  std::map<std::string, std::string> predicted;
  for (const auto& h : agent_hooks()) predicted[h.category + "/" + h.event] = predicted_hook_mode(h, f);
  EXPECT_EQ(predicted["sock/inet_sock_set_state"], "tp_btf");
  EXPECT_EQ(predicted["tcp/tcp_receive_reset"], "tp_btf");
  EXPECT_EQ(predicted["tcp/tcp_send_reset"], "tracepoint");
  EXPECT_EQ(predicted["sock/sock_send_length"], "off");
  // Neither send/receive hook: the passive owner comes from fexit/inet_csk_accept where it loads.
  f.fexit_accept_error = "";
  EXPECT_EQ(predicted_accept_mode(f), "fexit");
  auto cs = evaluate(f);
  EXPECT_EQ(find(cs, "hook sock/inet_sock_set_state").level, Level::Ok);
  EXPECT_EQ(find(cs, "hook sock/sock_send_length").level, Level::Warn);
  EXPECT_EQ(find(cs, "hook fexit/inet_csk_accept").level, Level::Ok);
  // The missing send hook says what the agent then does instead, as the agent's own degraded note does.
  EXPECT_NE(find(cs, "hook sock/sock_send_length").message.find("taken at accept() instead (fexit/inet_csk_accept)"),
            std::string::npos)
      << find(cs, "hook sock/sock_send_length").message;
  f.fexit_accept_error = "EPERM";
  EXPECT_EQ(find(evaluate(f), "hook sock/sock_send_length").message.find("fexit"), std::string::npos);
  EXPECT_EQ(predicted_accept_mode(f), "off");
  EXPECT_EQ(find(evaluate(f), "hook fexit/inet_csk_accept").level, Level::Warn);
  EXPECT_NE(find(evaluate(f), "hook fexit/inet_csk_accept").message.find("EPERM"), std::string::npos);
  // With the send/receive hooks (6.3+) it is not needed, and not loaded.
  EXPECT_EQ(predicted_accept_mode(healthy()), "off");
  f.fexit_accept_error = "";

  // An agent that reports the same choice agrees; one that reports something else is flagged.
  (*f.health)["hooks"] = {{"sock/inet_sock_set_state", "tp_btf"},  {"tcp/tcp_send_reset", "tracepoint"},
                          {"tcp/tcp_receive_reset", "tp_btf"},     {"sock/sock_send_length", "off"},
                          {"sock/sock_recv_length", "off"},        {"fexit/inet_csk_accept", "fexit"}};
  EXPECT_EQ(find(evaluate(f), "agent hooks").level, Level::Ok);
  (*f.health)["hooks"]["sock/inet_sock_set_state"] = "tracepoint";
  const auto differing = evaluate(f);  // find() returns a reference into it: keep it alive
  const auto& differ = find(differing, "agent hooks");
  EXPECT_EQ(differ.level, Level::Warn);
  EXPECT_NE(differ.message.find("sock/inet_sock_set_state is tracepoint (predicted tp_btf)"), std::string::npos)
      << differ.message;
}

// Every hook the BPF sources define is one doctor checks, and nothing else.
TEST(DoctorHooks, MatchTheBpfSources) {
  const char* src = std::getenv("HOSTSCOPE_SRC");
  ASSERT_NE(src, nullptr);
  std::set<std::string> in_sources;
  std::regex sec(R"re(SEC\("(tp_btf|tracepoint)/([a-z_0-9]+)(/([a-z_0-9]+))?"\))re");
  for (const char* file : {"bpf/tcp_lifecycle.bpf.c", "bpf/process.bpf.c"}) {
    std::ifstream in(std::string(src) + "/" + file);
    ASSERT_TRUE(in) << file;
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    for (std::sregex_iterator it(text.begin(), text.end(), sec), end; it != end; ++it) {
      if ((*it)[1] == "tp_btf")
        in_sources.insert("btf:" + (*it)[2].str());
      else
        in_sources.insert("tp:" + (*it)[2].str() + "/" + (*it)[4].str());
    }
  }
  std::set<std::string> in_doctor;
  for (const auto& h : agent_hooks()) {
    if (h.has_btf) in_doctor.insert("btf:" + h.event);
    in_doctor.insert("tp:" + h.category + "/" + h.event);
  }
  EXPECT_EQ(in_sources, in_doctor);
}

TEST(DoctorVerdicts, HistoryOffOkOnFailOrStale) {
  auto f = healthy();
  f.history_path = "/var/lib/hostscope/history.db";
  EXPECT_EQ(find(evaluate(f), "history").level, Level::Ok);
  EXPECT_NE(find(evaluate(f), "history").message.find("history is off"), std::string::npos);

  f.history_enabled = true;
  auto c = find(evaluate(f), "history");
  EXPECT_EQ(c.level, Level::Ok) << c.message;
  EXPECT_NE(c.message.find("creates /var/lib/hostscope/history.db"), std::string::npos) << c.message;

  f.history_exists = true;
  f.history_max_bytes = 256ull << 20;
  f.history_used_bytes = 64ull << 20;
  f.history_rows = 1234;
  f.now_ns = 1'000'000ull * 1'000'000'000ull;
  f.history_last_write_ns = f.now_ns - 30'000'000'000ull;
  c = find(evaluate(f), "history");
  EXPECT_EQ(c.level, Level::Ok) << c.message;
  EXPECT_NE(c.message.find("1234 rows, 64.0 MiB (25%"), std::string::npos) << c.message;

  auto stale = f;
  stale.history_last_write_ns = f.now_ns - 3600'000'000'000ull;
  c = find(evaluate(stale), "history");
  EXPECT_EQ(c.level, Level::Warn) << c.message;
  EXPECT_NE(c.message.find("60 min ago"), std::string::npos) << c.message;

  auto corrupt = f;
  corrupt.history_error = "file is not a database";
  c = find(evaluate(corrupt), "history");
  EXPECT_EQ(c.level, Level::Fail);
  EXPECT_NE(c.message.find("runs without history"), std::string::npos) << c.message;

  auto ro = f;
  ro.history_writable = false;
  EXPECT_EQ(find(evaluate(ro), "history").level, Level::Fail);

  auto gave_up = f;
  (*gave_up.health)["history"] = {{"ok", false}, {"error", "disk I/O error"}};
  c = find(evaluate(gave_up), "history");
  EXPECT_EQ(c.level, Level::Fail);
  EXPECT_NE(c.message.find("disk I/O error"), std::string::npos) << c.message;
}

// probe_history() on real files: none yet, a healthy store, a damaged one; nothing is created or changed.
TEST(DoctorProbe, HistoryFileHealthyAndDamaged) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/hs-doctor-history-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  struct Rm {
    std::string d;
    ~Rm() { std::error_code ec; fs::remove_all(d, ec); }
  } rm{tmpl};
  daemon::Config cfg;
  cfg.history.enabled = true;
  cfg.history.path = rm.d + "/history.db";

  NodeFacts absent;
  probe_history(absent, cfg);
  EXPECT_FALSE(absent.history_exists);
  EXPECT_TRUE(absent.history_writable);
  EXPECT_FALSE(fs::exists(cfg.history.path)) << "doctor must not create the file";

  {
    auto s = history::Store::open(cfg.history.path, {}, false);
    ASSERT_TRUE(s) << s.error().str();
    history::IntervalRow r;
    r.start_ns = 1'700'000'000ull * 1'000'000'000ull;
    r.end_ns = r.start_ns + history::kMinuteNs;
    r.client = {topology::NodeKind::Service, "web", "shop", "", ""};
    r.server = {topology::NodeKind::Service, "api", "shop", "", ""};
    r.port = 80;
    r.connections = 3;
    ASSERT_TRUE(s->write({r}, r.end_ns));
  }
  NodeFacts ok;
  probe_history(ok, cfg);
  EXPECT_TRUE(ok.history_exists);
  EXPECT_EQ(ok.history_error, "");
  EXPECT_EQ(ok.history_rows, 1u);
  EXPECT_GT(ok.history_used_bytes, 0u);
  EXPECT_EQ(ok.history_oldest_ns, 1'700'000'000ull * 1'000'000'000ull);

  // A file of an older schema (written before an upgrade) is not broken: the agent migrates it when it next opens
  // it. Doctor says so (a warning: queries cannot read it until then) and leaves it as it is.
  auto set_schema = [&](int64_t v) {
    auto db = history::Db::open(cfg.history.path, false);
    ASSERT_TRUE(db) << db.error().str();
    ASSERT_TRUE(db->exec(fmt::format("UPDATE meta SET value = {} WHERE key = 'schema_version'", v), "set schema"));
  };
  set_schema(history::kSchemaVersion - 1);
  NodeFacts older;
  probe_history(older, cfg);
  EXPECT_EQ(older.history_error, "");
  EXPECT_EQ(older.history_older_schema, history::kSchemaVersion - 1);
  auto c = find(evaluate(older), "history");
  EXPECT_EQ(c.level, Level::Warn) << c.message;
  EXPECT_NE(c.message.find("migrates it"), std::string::npos) << c.message;
  {
    auto db = history::Db::open(cfg.history.path, true);
    ASSERT_TRUE(db);
    auto v = history::schema_version(*db);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v, history::kSchemaVersion - 1) << "doctor must not migrate";
  }
  // A newer one is refused, as the agent refuses it.
  set_schema(history::kSchemaVersion + 1);
  NodeFacts newer;
  probe_history(newer, cfg);
  EXPECT_NE(newer.history_error.find("newer"), std::string::npos) << newer.history_error;
  EXPECT_EQ(newer.history_older_schema, 0);
  EXPECT_EQ(find(evaluate(newer), "history").level, Level::Fail);

  {
    std::ofstream out(cfg.history.path, std::ios::binary | std::ios::trunc);
    out << std::string(8192, 'x');
  }
  NodeFacts bad;
  probe_history(bad, cfg);
  EXPECT_NE(bad.history_error, "");
  EXPECT_EQ(find(evaluate(bad), "history").level, Level::Fail);
  EXPECT_EQ(fs::file_size(cfg.history.path), 8192u) << "doctor must not change the file";
}

}  // namespace
}  // namespace hostscope::doctor
