// hs_bench_policy_apply: policy enforcement costs, measured side by side in one run, inside network
// namespaces this program creates and deletes (the host's tables are never touched). Root only.
//
//   hs_bench_policy_apply [--sizes 100,1000,10000] [--rounds 3] [--naive-budget 30]
//                         [--rate-rounds 5] [--rate-seconds 3] [--clients 2]
//                         [--markdown-apply FILE] [--markdown-rate FILE]
//
// 1. Apply time for N rules (N deny rules, each one destination /32 and one port, for one subject):
//    hostscope's apply (IptablesBackend, iptables-legacy, command prefix `ip netns exec NS`: save, one
//    `iptables-restore --noflush`, read-back, generation stored) vs one `iptables-legacy -A` per rule
//    vs one `iptables-legacy-restore` of the same rule lines. Every command runs through the same
//    `ip netns exec NS` prefix. The naive run stops after --naive-budget seconds; the rest is
//    extrapolated from a least-squares fit of the per-command cost c(i) = a + b*i (legacy iptables
//    rewrites the whole table on every command) and reported as such.
// 2. Connection rate (loopback TCP churn inside the namespace: connect, 16 bytes each way, close)
//    with 10 vs 10k rules in the path: a linear OUTPUT chain of non-matching rules vs hostscope's
//    compiled form of one egress rule with 10 / 10k peers (an ipset, established traffic returned first).
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "churn_lib.h"
#include "policy/command.h"
#include "policy/compiler.h"
#include "policy/iptables.h"
#include "policy/loader.h"

namespace {

using namespace hostscope::policy;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

[[noreturn]] void die(const std::string& msg) {
  fprintf(stderr, "hs_bench_policy_apply: %s\n", msg.c_str());
  exit(1);
}

std::shared_ptr<CommandRunner> runner() {
  static auto r = make_process_runner();
  return r;
}

CommandResult must(const std::vector<std::string>& argv, const std::string& input = "") {
  auto r = runner()->run(argv, input);
  if (!r.ok()) die(fmt::format("{} failed ({}): {}", join_command(argv), r.exit_code, r.err));
  return r;
}

// Namespaces alive right now, for the signal handler (fixed storage: it must not allocate).
char g_live[16][64];

void remove_live_namespaces(int sig) {
  for (auto& n : g_live) {
    if (!n[0]) continue;
    pid_t p = fork();
    if (p == 0) {
      execlp("ip", "ip", "netns", "del", n, static_cast<char*>(nullptr));
      _exit(127);
    }
    if (p > 0) waitpid(p, nullptr, 0);
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

// A network namespace of our own, removed (with its tables and ipsets) when this goes away, also
// when the benchmark is interrupted.
class Netns {
 public:
  Netns() {
    static int seq = 0;
    name_ = fmt::format("hs-bench-{}-{}", getpid(), seq++);
    for (auto& n : g_live)
      if (!n[0]) {
        snprintf(n, sizeof(n), "%s", name_.c_str());
        slot_ = n;
        break;
      }
    if (!slot_) die("too many namespaces at once");
    must({"ip", "netns", "add", name_});
    must({"ip", "netns", "exec", name_, "ip", "link", "set", "lo", "up"});
  }
  ~Netns() {
    runner()->run({"ip", "netns", "del", name_}, "");
    slot_[0] = 0;
  }
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  const std::string& name() const { return name_; }
  std::vector<std::string> exec(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", name_});
    return argv;
  }

 private:
  std::string name_;
  char* slot_ = nullptr;
};

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "hs-bench-policy-XXXXXX").string();
    if (!mkdtemp(t.data())) die("mkdtemp failed");
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string addr(size_t i) { return fmt::format("198.18.{}.{}", (i / 250) % 250, 1 + i % 250); }

// N deny rules, each one distinct destination and port, for the subject cgroup "/". `changed_port`: the first rule's
// port instead (the one-rule change).
std::string rules_policy(size_t n, uint16_t changed_port = 0) {
  std::string y = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: bench}\nsubject: {cgroup: /}\negress:\n";
  for (size_t i = 0; i < n; ++i)
    y += fmt::format("  - {{action: deny, peers: [{{cidr: {}}}], ports: [{}], protocol: tcp}}\n", addr(i),
                     i == 0 && changed_port ? changed_port : 1000 + i % 50000);
  return y;
}

// One deny rule with N peers: hostscope's compiled form is one rule matching an ipset.
std::string peers_policy(size_t n) {
  std::string y = "apiVersion: hostscope.io/v1\nkind: NetworkPolicy\nmetadata: {name: bench}\nsubject: {cgroup: /}\negress:\n"
                  "  - action: deny\n    peers:\n";
  for (size_t i = 0; i < n; ++i) y += fmt::format("      - cidr: {}\n", addr(i));
  return y;
}

Ir compile_or_die(const std::string& yaml, double* seconds = nullptr) {
  auto t0 = Clock::now();
  auto c = compile(load_text(yaml, "bench.yaml"), Context{});
  if (seconds) *seconds = seconds_since(t0);
  if (!c.ok()) {
    std::string d;
    for (const auto& x : c.diagnostics) d += x.str() + "\n";
    die("bench policy does not compile:\n" + d);
  }
  return *c.ir;
}

// Times every external command the backend runs, so its apply splits into tool time and our own.
class TimingRunner : public CommandRunner {
 public:
  CommandResult run(const std::vector<std::string>& argv, const std::string& input) override {
    auto t0 = Clock::now();
    auto r = runner()->run(argv, input);
    double took = seconds_since(t0);
    seconds += took;
    // "ip netns exec NS tool ..." -> "tool arg": what each kind of command costs (printed to stderr per step).
    size_t at = argv.size() > 4 && argv[0] == "ip" ? 4 : 0;
    log += fmt::format(" {}{}={:.1f}ms", argv[at], argv.size() > at + 1 ? " " + argv[at + 1] : "", took * 1000);
    return r;
  }
  double seconds = 0;
  std::string log;
};

// `fold_min`: RenderOptions::fold_min (0: every rule its own iptables rule, as before folding existed).
IptablesBackend backend(const Netns& ns, const std::string& state_dir, std::shared_ptr<CommandRunner> run = nullptr,
                        size_t fold_min = RenderOptions{}.fold_min) {
  IptablesOptions o;
  o.render.fold_min = fold_min;
  o.variant = "legacy";
  o.command_prefix = {"ip", "netns", "exec", ns.name()};
  o.state_dir = state_dir;
  o.ipv6 = false;  // the rules are IPv4; the naive and restore runs touch iptables only too
  return IptablesBackend(o, run ? run : runner());
}

// "-A CHAIN -m comment --comment "x y" -j DROP" -> argv (only double quotes occur in our lines).
std::vector<std::string> split_rule(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, have = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
      have = true;
    } else if (c == ' ' && !quoted) {
      if (have) out.push_back(cur);
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have) out.push_back(cur);
  return out;
}

const char* kHooks[][2] = {{"INPUT", "HOSTSCOPE-INPUT"}, {"OUTPUT", "HOSTSCOPE-OUTPUT"}, {"FORWARD", "HOSTSCOPE-FORWARD"}};

std::string restore_text(const RenderedTable& t) {
  std::string s = "*filter\n";
  for (const auto& c : t.chains) s += ":" + c + " - [0:0]\n";
  for (const auto& r : t.rules) s += r + "\n";
  for (const auto& h : kHooks) s += fmt::format("-I {} 1 -j {}\n", h[0], h[1]);
  return s + "COMMIT\n";
}

struct NaiveResult {
  double seconds = 0;  // measured, or measured + extrapolated
  size_t done = 0, total = 0;
  bool extrapolated() const { return done < total; }
};

NaiveResult naive_apply(const Netns& ns, const RenderedTable& t, double budget) {
  NaiveResult res;
  res.total = t.chains.size() + t.rules.size() + 3;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& c : t.chains) cmds.push_back(ns.exec({"iptables-legacy", "-w", "-N", c}));
  for (const auto& r : t.rules) {
    auto argv = split_rule(r);
    argv.insert(argv.begin(), {"iptables-legacy", "-w"});
    cmds.push_back(ns.exec(argv));
  }
  for (const auto& h : kHooks) cmds.push_back(ns.exec({"iptables-legacy", "-w", "-I", h[0], "1", "-j", h[1]}));
  std::vector<double> cost;  // per command, in order
  auto t0 = Clock::now();
  for (const auto& c : cmds) {
    auto s = Clock::now();
    must(c);
    cost.push_back(seconds_since(s));
    if (seconds_since(t0) > budget) break;
  }
  res.done = cost.size();
  res.seconds = seconds_since(t0);
  if (res.extrapolated()) {
    // Least squares of c(i) = a + b*i over the measured commands, summed over the remaining ones.
    double n = double(cost.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (size_t i = 0; i < cost.size(); ++i) {
      sx += double(i);
      sy += cost[i];
      sxx += double(i) * double(i);
      sxy += double(i) * cost[i];
    }
    double b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    double a = (sy - b * sx) / n;
    b = std::max(b, 0.0);
    for (size_t i = cost.size(); i < res.total; ++i) res.seconds += a + b * double(i);
  }
  return res;
}

// ---- connection churn ------------------------------------------------------------------------

using hostscope::bench::io_exact;

// Runs in a child that has entered the namespace: loopback churn for `seconds`, returns conn/s.
double churn(double seconds, int clients) {
  sockaddr_in sa{};
  int ls = hostscope::bench::loopback_listener(&sa);
  if (ls < 0) die("churn listen failed");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; i++) {
    threads.emplace_back([&] {
      char buf[16];
      while (!stop.load(std::memory_order_relaxed)) {
        int c = accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (io_exact(c, buf, sizeof(buf), false)) io_exact(c, buf, sizeof(buf), true);
        recv(c, buf, sizeof(buf), 0);
        close(c);
      }
    });
    threads.emplace_back([&] {
      char buf[16] = "0123456789abcde";
      while (!stop.load(std::memory_order_relaxed)) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        timeval tv{1, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 && io_exact(c, buf, sizeof(buf), true) &&
            io_exact(c, buf, sizeof(buf), false))
          done.fetch_add(1, std::memory_order_relaxed);
        close(c);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // warm-up
  uint64_t start = done.load();
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  double rate = double(done.load() - start) / seconds_since(t0);
  stop = true;
  // Wakes the servers blocked in accept() and resets connections still queued on the listener,
  // so no client waits for an echo that will never come.
  shutdown(ls, SHUT_RDWR);
  for (auto& t : threads) t.join();
  close(ls);
  return rate;
}

double churn_in(const Netns& ns, double seconds, int clients) {
  int p[2];
  if (pipe(p)) die("pipe failed");
  pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);  // the parent owns the namespaces
    close(p[0]);
    int fd = open(("/run/netns/" + ns.name()).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) _exit(3);
    double r = churn(seconds, clients);
    (void)!write(p[1], &r, sizeof(r));
    _exit(0);
  }
  close(p[1]);
  double r = -1;
  ssize_t got = read(p[0], &r, sizeof(r));
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (got != sizeof(r) || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("churn child failed (could not enter namespace?)");
  return r;
}

struct Options {
  std::vector<size_t> sizes = {100, 1000, 10000};
  int rounds = 3;
  double naive_budget = 30;
  int rate_rounds = 5;
  double rate_seconds = 3;
  int clients = 2;
  std::string md_apply, md_rate;
  std::string only;  // "apply" or "rate": run one part
};

std::string fmt_s(double s) { return s < 1 ? fmt::format("{:.0f} ms", s * 1000) : fmt::format("{:.2f} s", s); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--sizes") {
      o.sizes.clear();
      std::stringstream ss(next());
      for (std::string s; std::getline(ss, s, ',');) o.sizes.push_back(std::stoul(s));
    } else if (a == "--rounds") o.rounds = std::stoi(next());
    else if (a == "--naive-budget") o.naive_budget = std::stod(next());
    else if (a == "--rate-rounds") o.rate_rounds = std::stoi(next());
    else if (a == "--rate-seconds") o.rate_seconds = std::stod(next());
    else if (a == "--clients") o.clients = std::stoi(next());
    else if (a == "--markdown-apply") o.md_apply = next();
    else if (a == "--markdown-rate") o.md_rate = next();
    else if (a == "--only") o.only = next();
    else {
      fprintf(stderr, "usage: hs_bench_policy_apply [--sizes 100,1000,10000] [--rounds N] [--naive-budget S] [--rate-rounds N]\n"
                      "       [--rate-seconds S] [--clients N] [--markdown-apply FILE] [--markdown-rate FILE] [--only apply|rate]\n");
      return 2;
    }
  }
  if (geteuid() != 0) die("must run as root (it creates network namespaces)");
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, remove_live_namespaces);

  // ---- 1. apply time ----
  std::string apply_md =
      "| rules | iptables rules installed | hostscope compile | hostscope apply (median) | of which in iptables/ipset tools | one-rule change (apply) | rollback | one `iptables-legacy -A` per rule | one `iptables-legacy-restore` (median) |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  printf("%s", apply_md.c_str());
  bool any_extrapolated = false;
  for (size_t n : o.only == "rate" ? std::vector<size_t>{} : o.sizes) {
    double compile_s = 0;
    Ir ir = compile_or_die(rules_policy(n), &compile_s);
    Ir changed = compile_or_die(rules_policy(n, 65000));
    // The other methods install one iptables rule per policy rule, as a person writing them would.
    RenderOptions unfolded;
    unfolded.fold_min = 0;
    auto rendered = render(ir.v4, unfolded);
    std::vector<double> hs, hs_tools, rs, change, change_tools, rollback;
    size_t installed = 0;
    for (int r = 0; r < o.rounds; ++r) {
      {
        Netns ns;
        TempDir state;
        auto timing = std::make_shared<TimingRunner>();
        auto b = backend(ns, state.path, timing);
        auto t0 = Clock::now();
        auto rep = b.apply(ir);
        hs.push_back(seconds_since(t0));
        hs_tools.push_back(timing->seconds);
        timing->log.clear();
        if (!rep) die("hostscope apply failed: " + rep.error().str());
        installed = rep->rules;
        // The same set with one rule's port changed, then back to the first generation.
        t0 = Clock::now();
        double tools_before = timing->seconds;
        if (auto c = b.apply(changed); !c) die("hostscope one-rule change failed: " + c.error().str());
        change.push_back(seconds_since(t0));
        change_tools.push_back(timing->seconds - tools_before);
        fprintf(stderr, "one-rule change, %zu rules, tools:%s\n", n, timing->log.c_str());
        timing->log.clear();
        t0 = Clock::now();
        if (auto rb = b.rollback(); !rb) die("hostscope rollback failed: " + rb.error().str());
        rollback.push_back(seconds_since(t0));
      }
      {
        Netns ns;
        auto t0 = Clock::now();
        must(ns.exec({"iptables-legacy-restore", "-w", "--noflush"}), restore_text(rendered));
        rs.push_back(seconds_since(t0));
        auto saved = must(ns.exec({"iptables-legacy-save", "-t", "filter"})).out;
        size_t lines = std::count(saved.begin(), saved.end(), '\n');
        if (lines < rendered.rules.size()) die("iptables-restore installed fewer rules than expected");
      }
    }
    NaiveResult naive;
    {
      Netns ns;
      naive = naive_apply(ns, rendered, o.naive_budget);
    }
    any_extrapolated |= naive.extrapolated();
    std::string naive_s = naive.extrapolated()
                              ? fmt::format("≈ {} (extrapolated; {} of {} commands run in {})", fmt_s(naive.seconds), naive.done,
                                            naive.total, fmt_s(o.naive_budget))
                              : fmt_s(naive.seconds);
    auto row = fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n", n, installed, fmt_s(compile_s), fmt_s(median(hs)),
                           fmt_s(median(hs_tools)),
                           fmt::format("{} (tools {})", fmt_s(median(change)), fmt_s(median(change_tools))), fmt_s(median(rollback)), naive_s, fmt_s(median(rs)));
    printf("%s", row.c_str());
    fflush(stdout);
    apply_md += row;
  }
  apply_md += fmt::format(
      "\nEach N-rule set is one policy (subject cgroup `/`) with N `deny` rules, each one destination /32 and one tcp "
      "port, plus hostscope's fixed rules (conntrack, dispatch, failsafes, jumps). The two other methods install one "
      "iptables rule per policy rule (hostscope's rule lines with folding off); hostscope installs its own rendering, in "
      "which a run of such rules is one rule matching a `hash:net,port` set (\"iptables rules installed\"). Every command runs as `ip netns exec NS ...` in a fresh namespace; hostscope's apply includes its "
      "`iptables-save` before and after, the `iptables-restore --noflush` and storing the generation; compile (load, "
      "lint, compile) is measured separately. The one-rule change applies the same set with the first rule's port changed "
      "over the first generation (\"tools\": the part spent in ipset and iptables commands); rollback then re-applies "
      "the first generation. Medians over {} rounds; the naive "
      "method runs once{}.\n",
      o.rounds,
      any_extrapolated ? fmt::format(" and stops after {} s, the remaining commands extrapolated from a least-squares fit "
                                     "of the per-command time c(i) = a + b·i (legacy iptables rewrites the whole table on "
                                     "every command, so the total grows as N²)",
                                     o.naive_budget)
                       : "");
  printf("\n");

  // ---- 2. connection rate ----
  struct Config {
    std::string label;
    std::unique_ptr<Netns> ns;
    std::vector<double> rates;
    std::unique_ptr<TempDir> state;
    int vs = -1;  // the configuration with 10 rules this one is compared with ("10k vs 10")
  };
  std::vector<Config> configs;
  if (o.only == "apply") o.rate_rounds = 0;
  auto linear = [&](size_t n) {
    Config c{fmt::format("linear chain, {} rules", n), std::make_unique<Netns>(), {}, nullptr};
    std::string s = "*filter\n:BENCH - [0:0]\n";
    for (size_t i = 0; i < n; ++i) s += fmt::format("-A BENCH -d {}/32 -p tcp -m tcp --dport {} -j DROP\n", addr(i), 1000 + i % 50000);
    s += "-A OUTPUT -j BENCH\nCOMMIT\n";
    must(c.ns->exec({"iptables-legacy-restore", "-w", "--noflush"}), s);
    return c;
  };
  auto compiled = [&](std::string label, const std::string& yaml, size_t fold_min) {
    Config c{std::move(label), std::make_unique<Netns>(), {}, std::make_unique<TempDir>()};
    auto ir = compile_or_die(yaml);
    auto b = backend(*c.ns, c.state->path, nullptr, fold_min);
    auto rep = b.apply(ir);
    if (!rep) die("hostscope apply failed: " + rep.error().str());
    return c;
  };
  const size_t fold = RenderOptions{}.fold_min;
  if (o.rate_rounds > 0) {
    configs.push_back({"no rules", std::make_unique<Netns>(), {}, nullptr});
    configs.push_back(linear(10));
    configs.push_back(linear(10000));
    configs.back().vs = 1;
    configs.push_back(compiled("hostscope, 1 rule with 10 peers", peers_policy(10), fold));
    configs.push_back(compiled("hostscope, 1 rule with 10000 peers", peers_policy(10000), fold));
    configs.back().vs = 3;
    configs.push_back(compiled("hostscope, 10 rules (one peer and port each)", rules_policy(10), fold));
    configs.push_back(compiled("hostscope, 10000 rules (one peer and port each)", rules_policy(10000), fold));
    configs.back().vs = 5;
    configs.push_back(compiled("hostscope, 10000 rules, not folded into a set", rules_policy(10000), 0));
    configs.back().vs = 5;
  }
  for (int r = 0; r < o.rate_rounds; ++r)
    for (auto& c : configs) {
      c.rates.push_back(churn_in(*c.ns, o.rate_seconds, o.clients));
      fprintf(stderr, "round %d %-36s %8.0f conn/s\n", r + 1, c.label.c_str(), c.rates.back());
    }
  double base = configs.empty() ? 0 : median(configs[0].rates);
  std::string rate_md = "| rules in the path | conn/s (median) | min–max over rounds | vs no rules | 10k vs 10 |\n| --- | --- | --- | --- | --- |\n";
  for (size_t i = 0; i < configs.size(); ++i) {
    double m = median(configs[i].rates);
    std::string vs10 = configs[i].vs >= 0 ? fmt::format("{:.1f}%", 100 * m / median(configs[size_t(configs[i].vs)].rates)) : "";
    auto [lo, hi] = std::minmax_element(configs[i].rates.begin(), configs[i].rates.end());
    rate_md += fmt::format("| {} | {:.0f} | {:.0f}–{:.0f} | {:.1f}% | {} |\n", configs[i].label, m, *lo, *hi, 100 * m / base, vs10);
  }
  rate_md += fmt::format(
      "\nLoopback TCP churn inside the namespace (per connection: connect, 16 bytes each way, close; {} client and {} "
      "server threads), {} rounds × {} s, configurations alternated within each round. The linear chain is jumped to from "
      "OUTPUT and every packet walks all its rules; hostscope's chains return established traffic first and match the "
      "peers of one rule in an ipset (`hash:net`), so only the first packet of a connection pays for the policy, at a "
      "cost that does not depend on the number of peers. The N-rule rows are the apply benchmark's policy (each rule one "
      "destination /32 and one tcp port): runs of such rules are installed as one rule matching a `hash:net,port` set "
      "(`RenderOptions::fold_min`); the \"not folded\" row installs each as its own rule, as hostscope did before. "
      "iptables-legacy for all. The machine is shared with other "
      "work (2 cores), so rounds vary; compare the medians measured side by side.\n",
      o.clients, o.clients, o.rate_rounds, o.rate_seconds);
  printf("%s", rate_md.c_str());
  configs.clear();

  auto write = [](const std::string& path, const std::string& text) {
    if (path.empty()) return;
    std::ofstream f(path);
    f << text;
    if (!f) die("writing " + path + " failed");
  };
  write(o.md_apply, apply_md);
  write(o.md_rate, rate_md);
  return 0;
}
