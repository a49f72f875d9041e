#include "policy/iptables.h"
#include "policy/hash.h"
#include "policy/ir_json.h"
#include "policy/state_file.h"

#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace hostscope::policy {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kJumpTag = "hostscope:jump";
constexpr Hook kHooks[] = {Hook::Input, Hook::Output, Hook::Forward};
const char* builtin_chain(Hook h) { return h == Hook::Input ? "INPUT" : h == Hook::Output ? "OUTPUT" : "FORWARD"; }

std::string ports_arg(const std::vector<PortRange>& ports) {
  std::string s;
  for (const auto& p : ports) s += (s.empty() ? "" : ",") + p.to_string(':');
  return s;
}

// Extracts the value of `--comment` from a rule line (quoted or bare): a view into `line`.
std::string_view comment_of(std::string_view line) {
  auto pos = line.find("--comment ");
  if (pos == std::string_view::npos) return {};
  pos += 10;
  if (pos < line.size() && line[pos] == '"') {
    auto end = line.find('"', pos + 1);
    return end == std::string_view::npos ? std::string_view{} : line.substr(pos + 1, end - pos - 1);
  }
  auto end = line.find(' ', pos);
  return line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

// "-A CHAIN ..." -> CHAIN, a view into `line`.
std::string_view chain_view(std::string_view line) {
  if (line.size() < 4) return {};
  auto end = line.find(' ', 3);
  return line.substr(3, end == std::string_view::npos ? std::string_view::npos : end - 3);
}

std::string jump_target(const std::string& line) {
  auto pos = line.find(" -j ");
  if (pos == std::string::npos) return "";
  auto end = line.find(' ', pos + 4);
  return line.substr(pos + 4, end == std::string::npos ? std::string::npos : end - pos - 4);
}

bool is_our_chain(std::string_view c) { return c.substr(0, std::string_view(kChainPrefix).size()) == kChainPrefix; }

bool is_our_set(const std::string& n) {
  static const std::regex re("^hs-[0-9a-f]{16}(-t)?$");
  return std::regex_match(n, re);
}

std::string now_iso() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

namespace {

// `netport`: "SET dst,dst" or "SET src,dst" for a run of rules folded into one (render()), else empty.
std::string render_line(const std::string& chain, const IrRule& r, Family f, const RenderOptions& o, std::string_view netport) {
  const IrMatch& m = r.match;
  std::string s = "-A " + chain;
  if (m.src) s += " -s " + m.src->str();
  if (m.dst) s += " -d " + m.dst->str();
  if (m.in_not_loopback) s += " ! -i lo";  // where iptables-save prints it: after -s/-d, before -p
  if (m.proto != Protocol::Any) s += fmt::format(" -p {}", to_string(m.proto));
  if (m.icmpv6_type) s += fmt::format(" -m icmp6 --icmpv6-type {}", *m.icmpv6_type);
  if (m.src_local) s += " -m addrtype --src-type LOCAL";
  if (m.dst_local) s += " -m addrtype --dst-type LOCAL";
  if (!m.cgroup.empty()) s += fmt::format(" -m cgroup --path \"{}\"", m.cgroup);
  if (!m.src_set.empty()) s += fmt::format(" -m set --match-set {} src", m.src_set);
  if (!m.dst_set.empty()) s += fmt::format(" -m set --match-set {} dst", m.dst_set);
  if (!netport.empty()) s += fmt::format(" -m set --match-set {}", netport);
  if (m.dports.size() == 1) s += fmt::format(" -m {} --dport {}", to_string(m.proto), m.dports[0].to_string(':'));
  else if (!m.dports.empty()) s += fmt::format(" -m multiport --dports {}", ports_arg(m.dports));
  if (m.established) s += " -m conntrack --ctstate RELATED,ESTABLISHED";
  s += fmt::format(" -m comment --comment \"{}\"", r.tag());
  auto prefix = [](const char* p, const std::string& owner) { return (p + owner).substr(0, 63); };
  switch (r.target) {
    case IrTarget::Return: s += " -j RETURN"; break;
    case IrTarget::Drop: s += " -j DROP"; break;
    case IrTarget::Reject:
      if (m.proto == Protocol::Tcp) s += " -j REJECT --reject-with tcp-reset";
      else s += f == Family::V4 ? " -j REJECT --reject-with icmp-port-unreachable" : " -j REJECT --reject-with icmp6-port-unreachable";
      break;
    case IrTarget::Log:
      s += fmt::format(" -j NFLOG --nflog-group {} --nflog-prefix \"{}\"", o.log_nflog_group, prefix("hs:", r.owner));
      break;
    case IrTarget::Audit:  // counts (and optionally logs) what enforce mode would drop, then continues
      if (o.audit_nflog_group >= 0)
        s += fmt::format(" -j NFLOG --nflog-group {} --nflog-prefix \"{}\"", o.audit_nflog_group, prefix("hs-audit:", r.owner));
      break;
    case IrTarget::Jump: s += " -j " + r.jump; break;
  }
  return s;
}

// Created under a temporary name and swapped in, so a set that already exists (e.g. changed by hand) gets exactly
// these members in one step.
void render_set(RenderedTable& out, const std::string& name, const char* type, const std::vector<std::string>& members) {
  const char* fam = out.family == Family::V4 ? "inet" : "inet6";
  size_t maxelem = std::max<size_t>(65536, members.size());
  // Sized for the members up front: growing a 1024-bucket set to 10,000 members rehashes it several times.
  size_t hashsize = 1024;
  while (hashsize < members.size() && hashsize < (size_t(1) << 20)) hashsize *= 2;
  out.ipsets += fmt::format("create {} {} family {} hashsize {} maxelem {}\n", name, type, fam, hashsize, maxelem);
  out.ipsets += fmt::format("create {}-t {} family {} hashsize {} maxelem {}\nflush {}-t\n", name, type, fam, hashsize, maxelem, name);
  for (const auto& m : members) out.ipsets += fmt::format("add {}-t {}\n", name, m);
  out.ipsets += fmt::format("swap {}-t {}\ndestroy {}-t\n", name, name, name);
  out.set_names.push_back(name);
}

// Ports one foldable rule may add to a hash:net,port set (the kernel holds one entry per port of a range).
constexpr uint32_t kFoldMaxPorts = 64;

// A rule that is one peer address, one protocol (tcp or udp) and a few ports (a list or ranges, at most
// kFoldMaxPorts in all), with a plain verdict: within a run of such rules of one policy and verdict the order does not
// matter, so the run can be one set lookup.
bool foldable(const IrRule& r) {
  const IrMatch& m = r.match;
  if (r.target != IrTarget::Return && r.target != IrTarget::Drop && r.target != IrTarget::Reject) return false;
  if (m.proto != Protocol::Tcp && m.proto != Protocol::Udp) return false;
  if (m.dports.empty()) return false;
  uint32_t ports = 0;
  for (const auto& p : m.dports) ports += uint32_t(p.last) - p.first + 1;
  if (ports > kFoldMaxPorts) return false;
  if (bool(m.src) == bool(m.dst)) return false;  // exactly one peer address
  const Cidr& peer = m.src ? *m.src : *m.dst;
  if (peer.prefix == 0) return false;  // hash:net cannot hold /0
  return m.src_set.empty() && m.dst_set.empty() && m.cgroup.empty() && !m.src_local && !m.dst_local && !m.in_not_loopback &&
         !m.established && !m.icmpv6_type;
}

bool same_fold(const IrRule& a, const IrRule& b) {
  return a.target == b.target && a.owner == b.owner && a.mode == b.mode && a.match.proto == b.match.proto &&
         bool(a.match.src) == bool(b.match.src);
}

// What makes two folded runs the same run from one generation to the next (FoldSlots).
std::string fold_place(const IrChain& c, const IrRule& head) {
  return fmt::format("{}|{}|{}|{}|{}|{}", c.name, head.owner, to_string(head.target), to_string(head.mode), to_string(head.match.proto),
                     head.match.src ? "src" : "dst");
}

// Rules [first, last) of `c`, foldable and alike, as one rule matching a hash:net,port set of their (peer, port)s;
// `ordinal`: how many runs of the same place came before it in the chain.
void render_fold(RenderedTable& out, const IrChain& c, size_t first, size_t last, size_t ordinal, const RenderOptions& o,
                 const FoldSlots* slots) {
  const IrRule& head = c.rules[first];
  const bool by_src = bool(head.match.src);
  std::vector<std::string> members;
  Hasher set_hash;
  for (size_t i = first; i < last; ++i) {
    const IrMatch& m = c.rules[i].match;
    // The protocol by number: by name, ipset reads /etc/protocols again for every member (10,000 members: 0.17 s
    // instead of 0.06 s).
    for (const PortRange& p : m.dports) {
      members.push_back(fmt::format("{},{}:{}", (by_src ? *m.src : *m.dst).str(), m.proto == Protocol::Tcp ? 6 : 17,
                                    p.first == p.last ? std::to_string(p.first) : p.to_string('-')));
      set_hash.add(members.back());
    }
  }
  // "hs-" + 15 hex digits of the place + the slot letter: the shape of every set name of ours (is_our_set).
  const std::string base = "hs-" + Hasher().add(to_string(out.family)).add("hash:net,port").add(fold_place(c, head)).add(std::to_string(ordinal)).hex(15);
  const std::string members_hash = set_hash.hex(16);
  std::string name = base + "a";
  if (slots) {
    auto it = slots->in_force.find(base + "a");
    if (it == slots->in_force.end()) it = slots->in_force.find(base + "b");
    if (it != slots->in_force.end()) {
      name = it->first;
      if (it->second != members_hash && !slots->in_place) name.back() = name.back() == 'a' ? 'b' : 'a';
    }
  }
  render_set(out, name, "hash:net,port", members);
  out.fold_sets[name] = members_hash;
  IrRule r;
  r.match.proto = head.match.proto;
  r.target = head.target;
  r.owner = head.owner;
  r.mode = head.mode;
  r.hash = Hasher().add(c.name).add("fold").add(name).hex(12);  // the rule's line is the same while its set's name is
  out.rules.push_back(render_line(c.name, r, out.family, o, name + (by_src ? " src,dst" : " dst,dst")));
  const IrRule& tail = c.rules[last - 1];
  out.folded.push_back(FoldedRule{r.tag(), c.name, r.owner,
                                  fmt::format("{} to {}: {} rules in one ipset", head.what, tail.what, last - first),
                                  to_string(r.target), to_string(r.mode), head.loc});
}

}  // namespace

std::string render_rule(const std::string& chain, const IrRule& r, Family f, const RenderOptions& o) {
  return render_line(chain, r, f, o, {});
}

size_t rules_stood_for(std::string_view what) {
  constexpr std::string_view suffix = " rules in one ipset";  // render_fold()'s words
  if (what.size() <= suffix.size() || what.substr(what.size() - suffix.size()) != suffix) return 1;
  auto colon = what.rfind(": ");
  size_t n = 0;
  if (colon == std::string_view::npos || std::sscanf(std::string(what.substr(colon + 2)).c_str(), "%zu", &n) != 1 || n == 0) return 1;
  return n;
}

RenderedTable render(const IrTable& t, const RenderOptions& o, const FoldSlots* slots) {
  RenderedTable out;
  out.family = t.family;
  for (const auto& s : t.sets) {
    std::vector<std::string> members;
    members.reserve(s.members.size());
    for (const auto& m : s.members) members.push_back(m.str());
    render_set(out, s.name, "hash:net", members);
  }
  for (const auto& c : t.chains) {
    out.chains.push_back(c.name);
    std::map<std::string, size_t> runs;  // place -> runs of it so far in this chain
    for (size_t i = 0; i < c.rules.size();) {
      size_t j = i;
      if (o.fold_min > 0 && foldable(c.rules[i]))
        while (j < c.rules.size() && foldable(c.rules[j]) && same_fold(c.rules[i], c.rules[j])) ++j;
      if (o.fold_min > 0 && j - i >= o.fold_min) {
        render_fold(out, c, i, j, runs[fold_place(c, c.rules[i])]++, o, slots);
        i = j;
      } else {
        out.rules.push_back(render_line(c.name, c.rules[i], t.family, o, {}));
        ++i;
      }
    }
  }
  return out;
}

bool SavedTable::is_ours(const std::string& chain) const { return is_our_chain(chain); }

std::vector<std::string> SavedTable::our_chains() const {
  std::vector<std::string> v;
  for (const auto& c : chains)
    if (is_our_chain(c)) v.push_back(c);
  return v;
}

std::vector<std::string> SavedTable::our_lines() const {
  std::vector<std::string> v;
  for (const auto& r : rules)
    if (is_our_chain(r.chain)) v.push_back(r.line);
  return v;
}

std::vector<SavedRule> SavedTable::jumps_to_us() const {
  std::vector<SavedRule> v;
  for (const auto& r : rules)
    if (!is_our_chain(r.chain) && is_our_chain(jump_target(r.line))) v.push_back(r);
  return v;
}

SavedTable parse_save(const std::string& text) {
  SavedTable t;
  bool in_filter = false;
  std::string_view all = text;
  for (size_t pos = 0; pos < all.size();) {
    auto eol = all.find('\n', pos);
    std::string_view line = all.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? all.size() : eol + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      in_filter = line == "*filter";
      continue;
    }
    if (!in_filter) continue;
    if (line == "COMMIT") {
      in_filter = false;
      continue;
    }
    if (line[0] == ':') {
      t.chains.emplace_back(line.substr(1, line.find(' ') - 1));
      continue;
    }
    SavedRule r;
    if (line[0] == '[') {
      auto sp = line.find("] ");
      if (sp == std::string_view::npos) continue;
      unsigned long long p = 0, b = 0;
      if (std::sscanf(std::string(line.substr(0, sp + 1)).c_str(), "[%llu:%llu]", &p, &b) == 2) {
        r.packets = p;
        r.bytes = b;
      }
      line = line.substr(sp + 2);
    }
    if (line.substr(0, 3) != "-A ") continue;
    r.chain = chain_view(line);
    r.line = line;
    auto c = comment_of(line);
    if (c.substr(0, 10) == "hostscope:") r.tag = c;
    t.rules.push_back(std::move(r));
  }
  return t;
}

Plan make_plan(const SavedTable& installed, const RenderedTable& next) {
  Plan plan;
  // Views into `installed` and `next`, which outlive them: a 10k-rule plan copies only the lines it lists.
  using Views = std::vector<std::string_view>;
  std::map<std::string_view, Views> old_lines, new_lines;
  for (const auto& r : installed.rules)
    if (is_our_chain(r.chain)) old_lines[r.chain].push_back(r.line);
  for (const auto& l : next.rules) new_lines[chain_view(l)].push_back(l);
  auto tags = [](const Views& v) {
    std::unordered_set<std::string_view> s;
    s.reserve(v.size());
    for (auto l : v) s.insert(comment_of(l));
    return s;
  };
  auto installed_chains = installed.our_chains();
  std::vector<std::string> all = next.chains;
  for (const auto& c : installed_chains)
    if (std::find(all.begin(), all.end(), c) == all.end()) all.push_back(c);
  for (const auto& chain : all) {
    ChainDiff d;
    d.family = next.family;
    d.chain = chain;
    bool was = std::find(installed_chains.begin(), installed_chains.end(), chain) != installed_chains.end();
    bool will = std::find(next.chains.begin(), next.chains.end(), chain) != next.chains.end();
    d.state = !was ? ChainDiff::State::Created : !will ? ChainDiff::State::Deleted : ChainDiff::State::Changed;
    const auto& olds = old_lines[chain];
    const auto& news = new_lines[chain];
    auto old_tags = tags(olds);
    auto new_tags = tags(news);
    for (auto l : olds) {
      auto c = comment_of(l);
      if (c.substr(0, 10) != "hostscope:" || !new_tags.count(c)) d.removed.emplace_back(l);
    }
    for (auto l : news)
      if (!old_tags.count(comment_of(l))) d.added.emplace_back(l);
    if (d.state != ChainDiff::State::Changed || !d.added.empty() || !d.removed.empty()) plan.chains.push_back(std::move(d));
  }
  auto jumps = installed.jumps_to_us();
  for (auto h : kHooks) {
    bool present = false;
    for (const auto& j : jumps) present = present || (j.chain == builtin_chain(h) && jump_target(j.line) == hook_chain(h));
    if (!present) plan.jumps_to_add.push_back(fmt::format("{} {} -> {}", to_string(next.family), builtin_chain(h), hook_chain(h)));
  }
  return plan;
}

std::string Plan::text() const {
  if (empty()) return "no changes\n";
  std::string s;
  size_t added = 0, removed = 0;
  for (const auto& d : chains) {
    const char* state = d.state == ChainDiff::State::Created ? " (new chain)" : d.state == ChainDiff::State::Deleted ? " (chain removed)" : "";
    s += fmt::format("{} {}{}: +{} -{}\n", to_string(d.family), d.chain, state, d.added.size(), d.removed.size());
    for (const auto& l : d.removed) s += "  - " + l + "\n";
    for (const auto& l : d.added) s += "  + " + l + "\n";
    added += d.added.size();
    removed += d.removed.size();
  }
  for (const auto& j : jumps_to_add) s += "jump rule to add: " + j + "\n";
  for (const auto& c : sets_changed) s += "set members changed in place: " + c + "\n";
  s += fmt::format("{} rules added, {} removed, {} jump rules added\n", added, removed, jumps_to_add.size());
  return s;
}

namespace {

struct RuleTotals {
  std::string what, loc, target;
  uint64_t packets = 0, bytes = 0;
};
struct PolicyTotals {
  std::string name, mode;
  std::vector<RuleTotals> rules;  // in the order the kernel walks them (first appearance)
  uint64_t packets = 0, would_deny = 0;
};

// Counters grouped by policy and rule (both families, every chain a rule is rendered into); hostscope's own rules
// (owner "hs.*" or unknown) are summed into `own`. The "(audit: ends the chain)" companion of an audit rule sees the
// same packets as the rule itself and is left out.
std::vector<PolicyTotals> group_counters(const BackendStatus& st, const std::string& only, RuleTotals& own, size_t& own_rules) {
  std::map<std::string, PolicyTotals> by;
  for (const auto& [p, m] : st.modes)
    if (only.empty() || p == only) by[p] = PolicyTotals{p, m, {}, 0, 0};
  std::map<std::string, std::map<std::string, size_t>> pos;  // policy -> what|loc -> index in rules
  for (const auto& c : st.counters) {
    if (c.owner.empty() || c.owner.rfind("hs.", 0) == 0) {
      own.packets += c.packets;
      own.bytes += c.bytes;
      ++own_rules;
      continue;
    }
    auto it = by.find(c.owner);
    if (it == by.end()) continue;  // another policy (--policy), or a rule of a policy the generation does not list
    if (c.what.size() >= 23 && c.what.compare(c.what.size() - 23, 23, "(audit: ends the chain)") == 0) continue;
    auto& pt = it->second;
    auto [ix, fresh] = pos[c.owner].emplace(c.what + "|" + c.loc, pt.rules.size());
    if (fresh) pt.rules.push_back(RuleTotals{c.what, c.loc, c.target, 0, 0});
    auto& r = pt.rules[ix->second];
    r.packets += c.packets;
    r.bytes += c.bytes;
    pt.packets += c.packets;
    if (c.target == "AUDIT") pt.would_deny += c.packets;
  }
  std::vector<PolicyTotals> out;
  out.reserve(by.size());
  for (auto& [_, p] : by) out.push_back(std::move(p));
  return out;
}

}  // namespace

std::string BackendStatus::text(const std::string& only_policy) const {
  std::string s;
  if (generation == 0) s += "generation: none applied\n";
  else s += fmt::format("generation: {}\nsource hash: {}\n", generation, source_hash);
  s += fmt::format("drift: {}\n", drift ? "yes" : "no");
  for (const auto& d : drift_details) s += "  " + d + "\n";
  s += fmt::format("audit would-deny packets: {}\n", audit_would_deny_packets);
  RuleTotals own;
  size_t own_rules = 0;
  auto policies = group_counters(*this, only_policy, own, own_rules);
  if (!only_policy.empty() && policies.empty()) s += fmt::format("policy {}: not in the applied generation\n", only_policy);
  size_t loc_w = 4, what_w = 4;
  for (const auto& p : policies)
    for (const auto& r : p.rules) {
      loc_w = std::max(loc_w, r.loc.size());
      what_w = std::max(what_w, r.what.size() + (r.target == "AUDIT" ? 12 : 0));
    }
  for (const auto& p : policies) {
    s += fmt::format("policy {} ({}): {} packets{}\n", p.name, p.mode, p.packets,
                     p.mode == "audit" ? fmt::format(", {} would-deny", p.would_deny) : "");
    for (const auto& r : p.rules)
      s += fmt::format("  {:<{}}  {:<{}}  {:>10} packets {:>12} bytes\n", r.loc.empty() ? "-" : r.loc, loc_w,
                       r.what + (r.target == "AUDIT" ? ": would-deny" : ""), what_w, r.packets, r.bytes);
  }
  if (only_policy.empty() && own_rules)
    s += fmt::format("hostscope's own rules (failsafes, neighbour discovery, dispatch): {} rules, {} packets\n", own_rules, own.packets);
  return s;
}

json BackendStatus::policies_json(const std::string& only_policy) const {
  RuleTotals own;
  size_t own_rules = 0;
  json out = json::array();
  for (const auto& p : group_counters(*this, only_policy, own, own_rules)) {
    json rules = json::array();
    for (const auto& r : p.rules)
      rules.push_back({{"rule", r.what}, {"loc", r.loc}, {"target", r.target}, {"packets", r.packets}, {"bytes", r.bytes}});
    out.push_back({{"name", p.name}, {"mode", p.mode}, {"packets", p.packets}, {"would_deny_packets", p.would_deny}, {"rules", std::move(rules)}});
  }
  return out;
}

std::string BackendStatus::raw_text() const {
  std::string s;
  if (generation == 0) s += "generation: none applied\n";
  else s += fmt::format("generation: {}\nsource hash: {}\n", generation, source_hash);
  for (const auto& [p, m] : modes) s += fmt::format("policy {}: {}\n", p, m);
  s += fmt::format("drift: {}\n", drift ? "yes" : "no");
  for (const auto& d : drift_details) s += "  " + d + "\n";
  s += fmt::format("audit would-deny packets: {}\n", audit_would_deny_packets);
  s += fmt::format("{:<5} {:<28} {:<20} {:<8} {:>10} {:>12}  {}\n", "fam", "chain", "owner", "target", "packets", "bytes", "rule");
  for (const auto& c : counters)
    s += fmt::format("{:<5} {:<28} {:<20} {:<8} {:>10} {:>12}  {}\n", c.family == Family::V4 ? "ipv4" : "ipv6", c.chain, c.owner,
                     c.target, c.packets, c.bytes, c.what);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Backend

namespace {

// What `status` shows for a rule tag.
struct RuleInfo {
  std::string chain, owner, what, target, mode, loc;
};
using RuleIndex = std::map<std::string, RuleInfo, std::less<>>;  // tag -> rule
using Lines = std::vector<std::string>;

}  // namespace

// The heavy parts (rule lines, index, lines read back) are immutable and shared: a copy (from the cache of generations,
// for a reinstall) copies no rule; an install replaces the lines read back as a whole.
struct IptablesBackend::Generation {
  int number = 0;
  int parent = 0;  // the generation that was in force when this one was applied (rollback target)
  std::string created, source_hash;
  std::map<std::string, std::string> modes;
  std::shared_ptr<const RenderedTable> v4 = std::make_shared<const RenderedTable>(), v6 = v4;
  std::shared_ptr<const RuleIndex> index = std::make_shared<const RuleIndex>();
  std::shared_ptr<const Lines> observed_v4 = std::make_shared<const Lines>(), observed_v6 = observed_v4;  // our chains as read back after install
  bool ipv6 = true;  // installed into ip6tables too (IptablesOptions::ipv6 when it was applied)
  // Not stored: members_delta() against generation `delta_from` per family (v4, v6), as render_tables() found it.
  int delta_from = -1;
  std::array<std::optional<std::string>, 2> delta;
  std::array<std::string, 2> delta_what;
  const RenderedTable& table(Family f) const { return f == Family::V4 ? *v4 : *v6; }
  const Lines& observed(Family f) const { return f == Family::V4 ? *observed_v4 : *observed_v6; }
  void set_observed(Family f, Lines l) { (f == Family::V4 ? observed_v4 : observed_v6) = std::make_shared<const Lines>(std::move(l)); }
  size_t rules(bool with_v6) const { return v4->rules.size() + (with_v6 ? v6->rules.size() : 0); }
  std::vector<std::string> set_names() const {
    auto v = v4->set_names;
    v.insert(v.end(), v6->set_names.begin(), v6->set_names.end());
    return v;
  }
};

namespace {

json table_json(const RenderedTable& t) {
  return {{"chains", t.chains}, {"rules", t.rules}, {"ipsets", t.ipsets}, {"set_names", t.set_names}, {"fold_sets", t.fold_sets}};
}
RenderedTable table_from(const json& j, Family f) {
  RenderedTable t;
  t.family = f;
  t.chains = j.at("chains").get<std::vector<std::string>>();
  t.rules = j.at("rules").get<std::vector<std::string>>();
  t.ipsets = j.at("ipsets").get<std::string>();
  t.set_names = j.at("set_names").get<std::vector<std::string>>();
  if (j.contains("fold_sets")) t.fold_sets = j.at("fold_sets").get<std::map<std::string, std::string>>();
  return t;
}

// Our chains as they are: rules of HOSTSCOPE-* chains plus jumps into them.
std::vector<std::string> observe(const SavedTable& t) {
  auto v = t.our_lines();
  for (const auto& j : t.jumps_to_us()) v.push_back(j.line);
  return v;
}


}  // namespace

IptablesBackend::IptablesBackend(IptablesOptions o, std::shared_ptr<CommandRunner> runner)
    : o_(std::move(o)), run_(runner ? std::move(runner) : make_process_runner()), cache_(std::make_shared<GenerationCache>()) {}

std::vector<Family> IptablesBackend::families() const {
  if (o_.ipv6) return {Family::V4, Family::V6};
  return {Family::V4};
}

std::vector<std::string> IptablesBackend::cmd(Family f, const char* tool) const {
  std::string bin = f == Family::V4 ? "iptables" : "ip6tables";
  if (o_.variant == "nft") bin += "-nft";
  else if (o_.variant == "legacy") bin += "-legacy";
  bin += std::string("-") + tool;
  auto v = o_.command_prefix;
  v.push_back(bin);
  return v;
}

Result<SavedTable> IptablesBackend::save(Family f, bool counters) {
  auto argv = cmd(f, "save");
  if (counters) argv.push_back("-c");
  argv.insert(argv.end(), {"-t", "filter"});
  auto r = run_->run(argv, "");
  if (!r.ok()) return Error{fmt::format("{} failed (exit {}): {}", join_command(argv), r.exit_code, r.err)};
  return parse_save(r.out);
}

namespace {

// Rule lines grouped by chain, in order (views into lines that outlive the map).
using ByChain = std::map<std::string_view, std::vector<std::string_view>>;

ByChain by_chain(const std::vector<std::string>& lines) {
  ByChain m;
  for (const auto& l : lines)
    if (auto c = chain_view(l); is_our_chain(c)) m[c].push_back(l);
  return m;
}

// How iptables-save words rule lines we render, learnt from a generation installed with them: it may word a rule
// differently (NFLOG's options in another order, say). `rendered` and `observed` are aligned per chain by position and
// tag; only the lines that read back differently are kept.
void learn_forms(const std::vector<std::string>& rendered, const std::vector<std::string>& observed,
                 std::map<std::string_view, std::string_view>& forms) {
  if (observed.empty()) return;
  auto seen = by_chain(observed);
  for (const auto& [chain, lines] : by_chain(rendered)) {
    auto it = seen.find(chain);
    if (it == seen.end() || it->second.size() != lines.size()) continue;
    for (size_t i = 0; i < lines.size(); ++i)
      if (lines[i] != it->second[i] && comment_of(lines[i]) == comment_of(it->second[i]))
        forms.emplace(lines[i], it->second[i]);
  }
}

// What install_family expects to read back from a chain it did not declare: `expected` (the rendered lines as
// iptables-save words them), exactly at positions [0, prefix) and [size - suffix, size); any rule in between by tag.
struct KeptChain {
  std::string_view chain;
  std::vector<std::string_view> rendered, expected;
  size_t prefix = 0, suffix = 0;
};

// The rules of our chains read back match what was rendered: every chain has its rules' tags in order, and the lines
// install_family left in place are word for word what they were.
std::string verify_kept(const SavedTable& after, const RenderedTable& next, const std::vector<KeptChain>& kept) {
  auto lines_after = after.our_lines();
  auto now = by_chain(lines_after);
  auto chains = after.our_chains();
  if (chains.size() != next.chains.size()) return fmt::format("{} of our chains instead of {}", chains.size(), next.chains.size());
  for (const auto& k : kept) {
    const auto& lines = now[k.chain];
    if (lines.size() != k.rendered.size())
      return fmt::format("chain {}: {} rules instead of {}", k.chain, lines.size(), k.rendered.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      bool fixed = i < k.prefix || i >= lines.size() - k.suffix;
      if (fixed ? lines[i] != k.expected[i] : comment_of(lines[i]) != comment_of(k.rendered[i]))
        return fmt::format("chain {}: rule {} reads {}", k.chain, i + 1, lines[i]);
    }
  }
  return "";
}

// Members of set `name` in an `ipset restore` text of render() ("add NAME-t MEMBER" lines), sorted, a port range
// ("ADDR,6:80-85") as the entries the kernel holds for it, one per port (kept in `expanded`), so that removing one
// member never removes an entry another member (an overlapping range) still holds.
std::vector<std::string_view> set_members(std::string_view ipsets, const std::string& name, std::deque<std::string>& expanded) {
  std::vector<std::string_view> out;
  const std::string prefix = "add " + name + "-t ";
  for (size_t at = ipsets.find(prefix); at != std::string_view::npos; at = ipsets.find(prefix, at)) {
    if (at > 0 && ipsets[at - 1] != '\n') {
      ++at;
      continue;
    }
    size_t end = ipsets.find('\n', at);
    std::string_view m = ipsets.substr(at + prefix.size(), (end == std::string_view::npos ? ipsets.size() : end) - at - prefix.size());
    at = end;
    auto colon = m.rfind(':'), dash = m.rfind('-'), comma = m.rfind(',');
    unsigned first = 0, last = 0;
    if (comma != std::string_view::npos && colon != std::string_view::npos && colon > comma && dash != std::string_view::npos &&
        dash > colon && std::sscanf(std::string(m.substr(colon + 1)).c_str(), "%u-%u", &first, &last) == 2 && first <= last &&
        last <= 65535) {
      for (unsigned p = first; p <= last; ++p) out.emplace_back(expanded.emplace_back(fmt::format("{}{}", m.substr(0, colon + 1), p)));
    } else {
      out.push_back(m);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// The change from `before` to `next` when it is at most the members of one folded set: `ipset restore` lines for the
// live set, the members added first and then the ones removed, so that each packet meets at every moment either the
// old or the new membership of that set and, the rules being the same, the old or the new verdict. nullopt when
// anything else differs, or when as many members change as the set holds (then the set takes its other slot, and one
// iptables-restore switches the rules over). The set that changes is found by the members hashes (fold_sets): the
// other sets are named by their members.
// `what`: "hs-...: +N -M members" when a set changes.
std::optional<std::string> members_delta(const RenderedTable& before, const RenderedTable& next, std::string* what = nullptr) {
  if (before.chains != next.chains || before.rules != next.rules || before.set_names != next.set_names) return std::nullopt;
  if (before.ipsets == next.ipsets) return std::string();
  std::string changed;
  for (const auto& [name, hash] : next.fold_sets) {
    auto it = before.fold_sets.find(name);
    if (it == before.fold_sets.end()) return std::nullopt;  // a generation stored without its members hashes
    if (it->second == hash) continue;
    if (!changed.empty()) return std::nullopt;
    changed = name;
  }
  if (changed.empty()) return std::nullopt;  // the texts differ, but not in a folded set's members
  std::deque<std::string> expanded;
  auto o = set_members(before.ipsets, changed, expanded), n = set_members(next.ipsets, changed, expanded);
  std::vector<std::string_view> added, removed;
  std::set_difference(n.begin(), n.end(), o.begin(), o.end(), std::back_inserter(added));
  std::set_difference(o.begin(), o.end(), n.begin(), n.end(), std::back_inserter(removed));
  // A large change goes through a fresh set (swapped in whole) and one restore instead: the mixed membership would
  // last as long as the edit.
  if (added.size() + removed.size() >= n.size()) return std::nullopt;
  std::string text;
  for (auto m : added) text += fmt::format("add {} {}\n", changed, m);
  for (auto m : removed) text += fmt::format("del {} {}\n", changed, m);
  if (what) *what = fmt::format("{}: +{} -{} members", changed, added.size(), removed.size());
  return text;
}

// "-A CHAIN spec" as "-R CHAIN n spec" / "-I CHAIN n spec".
std::string at_position(char op, std::string_view line, size_t n) {
  auto chain = chain_view(line);
  return fmt::format("-{} {} {}{}", op, chain, n, line.substr(3 + chain.size()));
}

}  // namespace

Status IptablesBackend::install_family(Generation& g, Family f, Plan* plan, const Generation* in_force, bool full) {
  auto saved = save(f);
  if (!saved) return saved.error();
  const RenderedTable& next = g.table(f);
  // The rules stay and the kernel holds them exactly as the generation in force left them: only the members of (at
  // most) one folded set change, on the live set. No iptables-restore, no read back: the rules read now are the record.
  if (!full && in_force && (f == Family::V4 || in_force->ipv6)) {
    const size_t k = f == Family::V4 ? 0 : 1;
    std::string what = g.delta_what[k];
    auto delta = g.delta_from == in_force->number ? g.delta[k] : members_delta(in_force->table(f), next, &what);
    if (delta && observe(*saved) == in_force->observed(f)) {
      if (!delta->empty()) {
        auto argv = o_.command_prefix;
        argv.insert(argv.end(), {"ipset", "-exist", "restore"});
        auto r = run_->run(argv, *delta);
        if (!r.ok()) return Error{fmt::format("ipset restore ({}, members of {}) failed (exit {}): {}", to_string(f), what, r.exit_code, r.err)};
        if (plan) plan->sets_changed.push_back(fmt::format("{} {}", to_string(f), what));
      }
      (f == Family::V4 ? g.observed_v4 : g.observed_v6) = f == Family::V4 ? in_force->observed_v4 : in_force->observed_v6;
      return {};
    }
  }
  if (plan) {
    auto p = make_plan(*saved, next);
    plan->chains.insert(plan->chains.end(), p.chains.begin(), p.chains.end());
    plan->jumps_to_add.insert(plan->jumps_to_add.end(), p.jumps_to_add.begin(), p.jumps_to_add.end());
  }
  if (!next.ipsets.empty()) {
    auto argv = o_.command_prefix;
    argv.insert(argv.end(), {"ipset", "-exist", "restore"});
    auto r = run_->run(argv, next.ipsets);
    if (!r.ok()) return Error{fmt::format("ipset restore ({}) failed (exit {}): {}", to_string(f), r.exit_code, r.err)};
  }
  // Only the chains whose rules differ from what the kernel holds are sent. Declaring a chain with --noflush flushes
  // exactly that chain; a chain not declared is untouched. A chain the kernel holds exactly as the generation in force
  // left it (no drift) is edited in place (-R/-D/-I at positions) when that sends fewer lines than declaring it again.
  // Everything still goes in one iptables-restore: a failure changes nothing.
  auto installed_lines = saved->our_lines();
  auto now = by_chain(installed_lines);
  auto want = by_chain(next.rules);
  std::map<std::string_view, std::string_view> forms;
  learn_forms(next.rules, g.observed(f), forms);
  ByChain left;  // each chain as the generation in force left it
  if (in_force) {
    learn_forms(in_force->table(f).rules, in_force->observed(f), forms);
    left = by_chain(in_force->observed(f));
  }
  auto installed_chains = saved->our_chains();
  std::set<std::string_view> present(installed_chains.begin(), installed_chains.end());
  std::string declare = "*filter\n", edits, body;
  std::vector<KeptChain> kept;
  for (const auto& c : next.chains) {
    const auto& rendered = want[c];
    if (!full && present.count(c)) {
      KeptChain k{c, rendered, {}, 0, 0};
      k.expected.reserve(rendered.size());
      for (auto l : rendered) {
        auto it = forms.find(l);
        k.expected.push_back(it == forms.end() ? l : it->second);
      }
      const auto& is = now[c];
      if (is == k.expected) {
        k.prefix = is.size();
        kept.push_back(std::move(k));
        continue;
      }
      auto as_left = left.find(c);
      if (in_force && (as_left == left.end() ? is.empty() : as_left->second == is)) {
        size_t n = std::min(is.size(), k.expected.size());
        while (k.prefix < n && is[k.prefix] == k.expected[k.prefix]) ++k.prefix;
        while (k.suffix < n - k.prefix && is[is.size() - 1 - k.suffix] == k.expected[k.expected.size() - 1 - k.suffix]) ++k.suffix;
        size_t del = is.size() - k.prefix - k.suffix, ins = rendered.size() - k.prefix - k.suffix;
        if (del + ins < rendered.size()) {
          size_t replaced = std::min(del, ins);
          for (size_t i = 0; i < replaced; ++i) edits += at_position('R', rendered[k.prefix + i], k.prefix + 1 + i) + "\n";
          for (size_t i = replaced; i < del; ++i) edits += fmt::format("-D {} {}\n", c, k.prefix + replaced + 1);
          for (size_t i = replaced; i < ins; ++i)  // at the chain's end -A: not every variant takes -I at size + 1
            edits += (k.suffix == 0 ? std::string(rendered[k.prefix + i]) : at_position('I', rendered[k.prefix + i], k.prefix + 1 + i)) + "\n";
          kept.push_back(std::move(k));
          continue;
        }
      }
    }
    declare += ":" + c + " - [0:0]\n";
    for (auto l : rendered) (body += l) += '\n';
  }
  std::vector<std::string> stale;
  for (const auto& c : installed_chains)
    if (std::find(next.chains.begin(), next.chains.end(), c) == next.chains.end()) {
      stale.push_back(c);
      declare += ":" + c + " - [0:0]\n";
    }
  std::string text = std::move(declare) + edits + body;
  auto jumps = saved->jumps_to_us();
  for (auto h : kHooks) {
    bool present_jump = std::any_of(jumps.begin(), jumps.end(), [&](const SavedRule& j) {
      return j.chain == builtin_chain(h) && jump_target(j.line) == hook_chain(h);
    });
    if (!present_jump) text += fmt::format("-I {} 1 -m comment --comment \"{}\" -j {}\n", builtin_chain(h), kJumpTag, hook_chain(h));
  }
  // A stale chain may still be jumped to from a built-in chain only if someone else added that.
  for (const auto& j : jumps)
    if (std::find(stale.begin(), stale.end(), jump_target(j.line)) != stale.end()) text += "-D" + j.line.substr(2) + "\n";
  for (const auto& c : stale) text += "-X " + c + "\n";
  text += "COMMIT\n";
  if (text != "*filter\nCOMMIT\n") {
    auto argv = cmd(f, "restore");
    argv.insert(argv.end(), {"--wait=10", "--noflush"});
    auto r = run_->run(argv, text);
    if (!r.ok()) return Error{fmt::format("{} ({}) failed (exit {}): {}", join_command(argv), to_string(f), r.exit_code, r.err)};
  }
  // Read back: the generation's record of its rules (drift is measured against it). The chains left in place or
  // edited are checked; when someone changed them between our save and our restore, every chain is declared again.
  auto after = save(f);
  if (!after) {
    spdlog::warn("policy: {} rules read back after install failed: {}", to_string(f), after.error().str());
    return {};
  }
  if (!kept.empty()) {
    if (auto wrong = verify_kept(*after, next, kept); !wrong.empty()) {
      spdlog::warn("policy: {} chains changed while they were installed ({}); installing every chain again", to_string(f), wrong);
      return install_family(g, f, nullptr, nullptr, true);
    }
  }
  g.set_observed(f, observe(*after));
  return {};
}

Status IptablesBackend::switch_families(Generation* g, const Generation* in_force, int back, Plan* plan, bool* reverted) {
  *reverted = true;
  auto fams = families();
  for (size_t i = 0; i < fams.size(); ++i) {
    auto r = g ? install_family(*g, fams[i], plan, in_force) : flush_family(fams[i]);
    if (r) {
      crash_point(to_string(fams[i]));
      continue;
    }
    if (back < 0) return r;
    // Families already switched go back to generation `back` (the one in force before).
    std::optional<Generation> prev;
    if (back > 0) {
      auto l = load_generation(back);
      if (!l) *reverted = i == 0;
      else prev = std::move(*l);
    }
    for (size_t k = 0; k < i; ++k) {
      if (back > 0 && !prev) break;
      auto u = prev ? install_family(*prev, fams[k], nullptr, g) : flush_family(fams[k]);
      if (!u) *reverted = false;
    }
    return r;
  }
  return {};
}

void IptablesBackend::render_tables(Generation& g, const Ir& ir, const Generation* in_force) const {
  auto render_both = [&](bool in_place) {
    FoldSlots v4{in_force ? in_force->v4->fold_sets : std::map<std::string, std::string>{}, in_place};
    FoldSlots v6{in_force ? in_force->v6->fold_sets : std::map<std::string, std::string>{}, in_place};
    g.v4 = std::make_shared<const RenderedTable>(render(ir.v4, o_.render, &v4));
    g.v6 = std::make_shared<const RenderedTable>(render(ir.v6, o_.render, &v6));
  };
  render_both(true);
  g.delta_from = -1;
  if (!in_force) return;
  g.delta[0] = members_delta(*in_force->v4, *g.v4, &g.delta_what[0]);
  g.delta[1] = members_delta(*in_force->v6, *g.v6, &g.delta_what[1]);
  if (in_force->ipv6 == o_.ipv6 && g.delta[0] && g.delta[1]) {
    g.delta_from = in_force->number;
    return;
  }
  render_both(false);
}

Result<Plan> IptablesBackend::plan(const Ir& ir) {
  if (auto r = recover(); !r) return r.error();
  std::optional<Generation> in_force;
  if (int cur = current(); cur > 0)
    if (auto l = load_generation(cur)) in_force = std::move(*l);
  Generation g;
  render_tables(g, ir, in_force ? &*in_force : nullptr);
  Plan plan;
  for (auto f : families()) {
    auto saved = save(f);
    if (!saved) return saved.error();
    auto p = make_plan(*saved, g.table(f));
    plan.chains.insert(plan.chains.end(), p.chains.begin(), p.chains.end());
    plan.jumps_to_add.insert(plan.jumps_to_add.end(), p.jumps_to_add.begin(), p.jumps_to_add.end());
    const size_t k = f == Family::V4 ? 0 : 1;
    if (in_force && g.delta_from == in_force->number && (f == Family::V4 || in_force->ipv6) && !g.delta[k]->empty())
      plan.sets_changed.push_back(fmt::format("{} {}", to_string(f), g.delta_what[k]));
    for (const auto& fr : g.table(f).folded) plan.rules_per_tag[fr.tag] = rules_stood_for(fr.what);
  }
  if (in_force)
    for (const auto& [tag, info] : *in_force->index)
      if (size_t n = rules_stood_for(info.what); n > 1) plan.rules_per_tag[tag] = n;
  return plan;
}

namespace {

// Two generations install the same thing and describe it the same way (status shows modes and the rule index).
bool same_rules(const RenderedTable& a, const RenderedTable& b) {
  return a.chains == b.chains && a.rules == b.rules && a.ipsets == b.ipsets && a.set_names == b.set_names;
}

// Two rule indexes describe the same rules. Rule positions (loc) are left out: a comment that shifts lines keeps the
// generation.
bool same_index(const RuleIndex& a, const RuleIndex& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    const RuleInfo &p = x.second, &q = y.second;
    return x.first == y.first && p.chain == q.chain && p.owner == q.owner && p.what == q.what && p.target == q.target && p.mode == q.mode;
  });
}

}  // namespace

Result<ApplyReport> IptablesBackend::keep_current(Generation& in_force, const Ir& ir) {
  ApplyReport rep;
  rep.generation = in_force.number;
  rep.rules = in_force.rules(o_.ipv6);
  rep.unchanged = true;
  if (in_force.source_hash != ir.source_hash) {  // e.g. only YAML comments changed: status names the new source
    in_force.source_hash = ir.source_hash;
    if (auto r = write_files_atomic(generation_texts(in_force, &ir)); !r) return r.error();
    stored(in_force);
  }
  auto st = status();
  if (!st) return st.error();
  if (st->drift) {
    auto r = reinstall_locked(in_force.number);
    if (!r) return r.error();
    rep.plan = std::move(r->plan);
    rep.drift_repaired = true;
  }
  return rep;
}

Result<ApplyReport> IptablesBackend::apply(const Ir& ir) {
  auto lock = lock_and_recover();
  if (!lock) return lock.error();
  Generation g;
  auto gens = generations();
  g.number = gens.empty() ? 1 : gens.back() + 1;
  g.parent = current();
  g.created = now_iso();
  g.source_hash = ir.source_hash;
  g.ipv6 = o_.ipv6;
  for (const auto& [p, m] : ir.policy_modes) g.modes[p] = to_string(m);
  std::optional<Generation> in_force;
  if (g.parent > 0)
    if (auto l = load_generation(g.parent)) in_force = std::move(*l);
  render_tables(g, ir, in_force ? &*in_force : nullptr);
  auto index = std::make_shared<RuleIndex>();
  for (const IrTable* t : {&ir.v4, &ir.v6})
    for (const auto& c : t->chains)
      for (const auto& r : c.rules)
        (*index)[r.tag()] = RuleInfo{c.name, r.owner, r.what, to_string(r.target), to_string(r.mode), r.loc};
  for (const RenderedTable* t : {g.v4.get(), g.v6.get()})
    for (const auto& f : t->folded) (*index)[f.tag] = RuleInfo{f.chain, f.owner, f.what, f.target, f.mode, f.loc};
  g.index = std::move(index);
  if (g.parent > 0) {
    // Nothing to change: keep the generation (no new one per no-op apply or reconcile pass).
    if (in_force && in_force->ipv6 == g.ipv6 && in_force->modes == g.modes && same_rules(*in_force->v4, *g.v4) &&
        same_rules(*in_force->v6, *g.v6) && same_index(*in_force->index, *g.index)) {
      if (in_force->source_hash != ir.source_hash) in_force->index = g.index;  // status names the new positions
      return keep_current(*in_force, ir);
    }
  }
  ApplyReport rep;
  rep.generation = g.number;
  rep.rules = g.rules(o_.ipv6);
  auto plan = transition(&g, &ir, in_force ? &*in_force : nullptr);
  if (!plan) return plan.error();
  rep.plan = std::move(*plan);
  prune(g.number, g.parent);
  if (!in_force || in_force->set_names() != g.set_names()) destroy_stale_sets(g.set_names());
  return rep;
}

Result<ApplyReport> IptablesBackend::rollback() {
  auto lock = lock_and_recover();
  if (!lock) return lock.error();
  int cur = current();
  int target = 0;
  if (cur == 0) {  // after a flush: put the last applied generation back
    auto gens = generations();
    if (!gens.empty()) target = gens.back();
  } else {
    auto g = load_generation(cur);
    if (!g) return g.error();
    target = g->parent;
  }
  if (target == 0 || !fs::exists(fs::path(o_.state_dir) / fmt::format("gen-{}.json", target)))
    return Error{fmt::format("policy rollback failed: generation {} has no earlier generation kept in {}", cur, o_.state_dir)};
  return reinstall_locked(target);
}

Result<ApplyReport> IptablesBackend::reinstall(int target) {
  auto lock = lock_and_recover();
  if (!lock) return lock.error();
  return reinstall_locked(target);
}

Result<ApplyReport> IptablesBackend::reinstall_locked(int target) {
  auto g = load_generation(target);
  if (!g) return g.error();
  ApplyReport rep;
  rep.generation = target;
  rep.rules = g->rules(o_.ipv6);
  std::optional<Generation> in_force;  // what the kernel holds, when it is another generation: its chains get edited
  if (int cur = current(); cur > 0 && cur != target)
    if (auto l = load_generation(cur)) in_force = std::move(*l);
  auto plan = transition(&*g, nullptr, in_force ? &*in_force : nullptr);
  if (!plan) return plan.error();
  rep.plan = std::move(*plan);
  destroy_stale_sets(g->set_names());
  return rep;
}

Result<BackendStatus> IptablesBackend::status() {
  if (auto r = recover(); !r) return r.error();
  BackendStatus st;
  st.generation = current();
  std::optional<Generation> g;
  if (st.generation > 0) {
    auto lg = load_generation(st.generation);
    if (!lg) return lg.error();
    g = std::move(*lg);
    st.source_hash = g->source_hash;
    st.modes = g->modes;
  }
  for (auto f : families()) {
    auto saved = save(f, true);
    if (!saved) return saved.error();
    for (const auto& r : saved->rules) {
      if (!is_our_chain(r.chain) || r.tag.empty()) continue;
      RuleCounter c;
      c.family = f;
      c.chain = r.chain;
      c.tag = r.tag;
      c.packets = r.packets;
      c.bytes = r.bytes;
      const RuleInfo* i = nullptr;
      if (g)
        if (auto it = g->index->find(r.tag); it != g->index->end()) i = &it->second;
      if (i) {
        c.owner = i->owner;
        c.what = i->what;
        c.target = i->target;
        c.mode = i->mode;
        c.loc = i->loc;
      } else {
        c.what = "(not in the applied generation)";
      }
      if (c.target == "AUDIT") st.audit_would_deny_packets += c.packets;
      st.counters.push_back(std::move(c));
    }
    auto now = observe(*saved);
    static const Lines kNone;
    const Lines& expected = g ? g->observed(f) : kNone;
    if (now != expected) {
      st.drift = true;
      std::set<std::string> a(now.begin(), now.end()), b(expected.begin(), expected.end());
      size_t shown = 0;
      for (const auto& l : expected)
        if (!a.count(l) && shown++ < 10) st.drift_details.push_back(fmt::format("{} missing: {}", to_string(f), l));
      for (const auto& l : now)
        if (!b.count(l) && shown++ < 10) st.drift_details.push_back(fmt::format("{} unexpected: {}", to_string(f), l));
      if (shown == 0) st.drift_details.push_back(fmt::format("{}: rules of our chains are out of order", to_string(f)));
    }
  }
  return st;
}

Status IptablesBackend::flush_family(Family f) {
  auto saved = save(f);
  if (!saved) return saved.error();
  auto ours = saved->our_chains();
  auto jumps = saved->jumps_to_us();
  if (ours.empty() && jumps.empty()) return {};
  std::string text = "*filter\n";
  for (const auto& j : jumps) text += "-D" + j.line.substr(2) + "\n";
  for (const auto& c : ours) text += ":" + c + " - [0:0]\n";
  for (const auto& c : ours) text += "-X " + c + "\n";
  text += "COMMIT\n";
  auto argv = cmd(f, "restore");
  argv.insert(argv.end(), {"--wait=10", "--noflush"});
  auto r = run_->run(argv, text);
  if (!r.ok()) return Error{fmt::format("{} ({}) flush failed (exit {}): {}", join_command(argv), to_string(f), r.exit_code, r.err)};
  return {};
}

Status IptablesBackend::flush() {
  auto lock = lock_and_recover();
  if (!lock) return lock.error();
  if (auto r = transition(nullptr, nullptr); !r) return r.error();
  destroy_stale_sets({});
  return {};
}

void IptablesBackend::destroy_stale_sets(const std::vector<std::string>& keep) {
  auto argv = o_.command_prefix;
  argv.insert(argv.end(), {"ipset", "list", "-n"});
  auto r = run_->run(argv, "");
  if (!r.ok()) return;  // no ipset support: then we never created any
  std::istringstream in(r.out);
  std::string name;
  while (std::getline(in, name)) {
    if (!is_our_set(name) || std::find(keep.begin(), keep.end(), name) != keep.end()) continue;
    auto d = o_.command_prefix;
    d.insert(d.end(), {"ipset", "destroy", name});
    (void)run_->run(d, "");  // still referenced by someone else's rule: leave it
  }
}

// ---- generations on disk: <state_dir>/gen-<N>.json and <state_dir>/current

std::vector<int> IptablesBackend::generations() const {
  std::vector<int> v;
  std::error_code ec;
  for (fs::directory_iterator it(o_.state_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
    int n = 0;
    auto name = it->path().filename().string();
    if (std::sscanf(name.c_str(), "gen-%d.json", &n) == 1 && n > 0 && name == fmt::format("gen-{}.json", n)) v.push_back(n);
  }
  std::sort(v.begin(), v.end());
  return v;
}

int IptablesBackend::current() const { return current_generation(o_.state_dir); }

Status IptablesBackend::set_current(int n) const { return write_file_atomic(fs::path(o_.state_dir) / "current", fmt::format("{}\n", n)); }

namespace {

fs::path generation_path(const std::string& dir, int n) { return fs::path(dir) / fmt::format("gen-{}.json", n); }
fs::path observed_path(const std::string& dir, int n) { return fs::path(dir) / fmt::format("gen-{}.observed", n); }
std::string index_name(int n) { return fmt::format("gen-{}.index", n); }
constexpr const char* kObservedHeader = "hostscope observed rules v1";
constexpr std::string_view kIndexHeader = "hostscope rule index v1 ";
constexpr size_t kMaxStateFile = 512u << 20;  // far above a 100k-rule generation; more is not ours

// The rule index as text: "<header><count>\n" then one line per rule, its 7 fields (tag, chain, owner, what, target,
// mode, loc) separated by tabs; a backslash, tab, newline or carriage return inside a field is escaped (\\ \t \n \r).
// A 10k-rule index is written on every apply: a line is a few appends, where a JSON object per rule cost most of it.
void escape_field(std::string& out, std::string_view f) {
  for (char c : f) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
}

std::string index_text(const RuleIndex& index) {
  std::string out = fmt::format("{}{}\n", kIndexHeader, index.size());
  for (const auto& [tag, r] : index) {
    size_t i = 0;
    for (const std::string* f : {&tag, &r.chain, &r.owner, &r.what, &r.target, &r.mode, &r.loc}) {
      if (i++) out += '\t';
      escape_field(out, *f);
    }
    out += '\n';
  }
  return out;
}

bool unescape_field(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\\') {
      out += in[i];
      continue;
    }
    if (++i == in.size()) return false;
    switch (in[i]) {
      case '\\': out += '\\'; break;
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default: return false;
    }
  }
  return true;
}

// The state directory is not trusted to hold what we wrote: anything but a well-formed index is an error naming the line.
Result<RuleIndex> parse_index(std::string_view text, const std::string& name) {
  auto bad = [&](size_t line, std::string_view what) { return Error{fmt::format("policy rule index {} line {}: {}", name, line, what)}; };
  auto eol = text.find('\n');
  if (eol == std::string_view::npos || text.substr(0, kIndexHeader.size()) != kIndexHeader) return bad(1, "not a hostscope rule index v1");
  auto count_text = text.substr(kIndexHeader.size(), eol - kIndexHeader.size());
  size_t count = 0;
  if (count_text.empty() || count_text.size() > 9 || count_text.find_first_not_of("0123456789") != std::string_view::npos)
    return bad(1, "bad rule count");
  for (char c : count_text) count = count * 10 + static_cast<size_t>(c - '0');
  RuleIndex index;
  size_t line = 1, pos = eol + 1;
  std::string fields[7];
  while (pos < text.size()) {
    ++line;
    eol = text.find('\n', pos);
    if (eol == std::string_view::npos) return bad(line, "no newline at the end (cut short)");
    auto l = text.substr(pos, eol - pos);
    pos = eol + 1;
    size_t n = 0, start = 0;
    for (;;) {
      auto tab = l.find('\t', start);
      if (n == 7) return bad(line, "more than 7 fields");
      if (!unescape_field(l.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start), fields[n++]))
        return bad(line, "bad escape");
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (n != 7) return bad(line, "fewer than 7 fields");
    if (fields[0].empty()) return bad(line, "empty rule tag");
    if (index.size() == count) return bad(line, fmt::format("more rules than the {} announced", count));
    auto [it, fresh] = index.try_emplace(std::move(fields[0]), RuleInfo{std::move(fields[1]), std::move(fields[2]), std::move(fields[3]),
                                                                        std::move(fields[4]), std::move(fields[5]), std::move(fields[6])});
    if (!fresh) return bad(line, "rule tag listed twice: " + it->first);
  }
  if (index.size() != count) return bad(line, fmt::format("{} rules instead of the {} announced (cut short)", index.size(), count));
  return index;
}

Result<std::string> read_state_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Error{fmt::format("policy state file {} open failed", p.string())};
  std::string text;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxStateFile) return Error{fmt::format("policy state file {} is larger than {} bytes", p.string(), kMaxStateFile)};
  }
  if (in.bad()) return Error{fmt::format("policy state file {} read failed", p.string())};
  return text;
}

// Generations before the rule index had its own file kept it in the JSON, an object per rule tag.
RuleIndex index_from_json(const json& j) {
  RuleIndex index;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const json& i = it.value();
    index[it.key()] = RuleInfo{i.value("chain", ""), i.value("owner", ""), i.value("what", ""), i.value("target", ""),
                               i.value("mode", ""), i.value("loc", "")};
  }
  return index;
}

}  // namespace

// Who stored a generation's files last, so a generation kept in memory is used only while its files are exactly what
// it was read from or written to (another hostscope process may change them; files are only ever replaced by rename).
struct IptablesBackend::FileSig {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  timespec mtime{}, ctime{};
  bool operator==(const FileSig& o) const {
    return exists == o.exists && dev == o.dev && ino == o.ino && size == o.size && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec && ctime.tv_sec == o.ctime.tv_sec && ctime.tv_nsec == o.ctime.tv_nsec;
  }
};

struct IptablesBackend::GenerationCache {
  struct Entry {
    std::array<FileSig, 3> files;  // gen-N.json, gen-N.index, gen-N.observed
    Generation g;
  };
  std::mutex mu;  // the agent's API thread reads status while the reconciler applies
  std::map<int, Entry> entries;
};

namespace {
constexpr size_t kCachedGenerations = 3;  // the one in force, its parent (rollback) and the one being applied
}  // namespace

std::array<IptablesBackend::FileSig, 3> IptablesBackend::generation_files(int n) const {
  std::array<FileSig, 3> sigs;
  fs::path paths[3] = {generation_path(o_.state_dir, n), fs::path(o_.state_dir) / index_name(n), observed_path(o_.state_dir, n)};
  for (size_t i = 0; i < 3; ++i) {
    struct stat st {};
    if (::stat(paths[i].c_str(), &st) != 0) continue;
    sigs[i] = FileSig{true, st.st_dev, st.st_ino, st.st_size, st.st_mtim, st.st_ctim};
  }
  return sigs;
}

void IptablesBackend::remember(const Generation& g, const std::array<FileSig, 3>& files) const {
  std::lock_guard l(cache_->mu);
  auto& e = cache_->entries[g.number] = GenerationCache::Entry{files, g};
  e.g.delta_from = -1;  // what apply found against the generation then in force is not kept
  while (cache_->entries.size() > kCachedGenerations) {
    auto oldest = cache_->entries.begin();
    if (oldest->first == g.number) ++oldest;
    cache_->entries.erase(oldest);
  }
}

std::vector<std::pair<fs::path, std::string>> IptablesBackend::generation_texts(const Generation& g, const Ir* ir) const {
  std::vector<std::pair<fs::path, std::string>> files;
  // The index before the JSON that names it.
  files.emplace_back(fs::path(o_.state_dir) / index_name(g.number), index_text(*g.index));
  json j = {{"generation", g.number}, {"parent", g.parent},          {"created", g.created},           {"source_hash", g.source_hash},
            {"modes", g.modes},       {"ipv4", table_json(*g.v4)}, {"ipv6", table_json(*g.v6)}, {"rule_index", index_name(g.number)},
            {"ipv6_installed", g.ipv6}};
  files.emplace_back(generation_path(o_.state_dir, g.number), j.dump());
  if (ir) files.emplace_back(ir_path(o_.state_dir, g.number), ir_to_text(*ir));
  return files;
}

void IptablesBackend::stored(const Generation& g) const {
  // gen-N.observed is written after each install of g (store_observed), not with the generation: a new generation has
  // read nothing back yet (a file left by an earlier generation N that was undone must not stand for it), and a kept
  // one has not been installed again.
  std::error_code ec;
  if (g.observed(Family::V4).empty() && g.observed(Family::V6).empty()) fs::remove(observed_path(o_.state_dir, g.number), ec);
  remember(g, generation_files(g.number));
}

// What the kernel read back after the install, beside the generation as plain lines: stored after every install
// without writing (and escaping) the whole generation's JSON again. "<header>\nipv6_installed <0|1>\nipv4 <count>\n
// <lines>ipv6 <count>\n<lines>"; rule lines never hold a newline.
Status IptablesBackend::store_observed(const Generation& g, bool sync_dir) const {
  std::string text = fmt::format("{}\nipv6_installed {}\n", kObservedHeader, g.ipv6 ? 1 : 0);
  for (auto f : {Family::V4, Family::V6}) {
    text += fmt::format("{} {}\n", to_string(f), g.observed(f).size());
    for (const auto& l : g.observed(f)) (text += l) += '\n';
  }
  if (auto r = write_file_atomic(observed_path(o_.state_dir, g.number), text, sync_dir); !r) return r;
  remember(g, generation_files(g.number));
  return {};
}

// Generations stored before the sidecar existed keep their read-back rules in the JSON: then there is no sidecar.
void IptablesBackend::load_observed(Generation& g) const {
  std::ifstream in(observed_path(o_.state_dir, g.number));
  std::string line;
  if (!in || !std::getline(in, line) || line != kObservedHeader) return;
  int ipv6 = 1;
  if (!std::getline(in, line) || std::sscanf(line.c_str(), "ipv6_installed %d", &ipv6) != 1) return;
  Lines lines[2];
  for (auto& v : lines) {
    size_t n = 0;
    if (!std::getline(in, line) || std::sscanf(line.c_str(), "%*s %zu", &n) != 1) return;
    v.reserve(std::min<size_t>(n, 1u << 20));
    for (size_t i = 0; i < n && std::getline(in, line); ++i) v.push_back(line);
    if (v.size() != n) return;  // cut short: cannot happen with atomic writes; then the JSON's copy (if any) stays
  }
  g.ipv6 = ipv6 != 0;
  g.set_observed(Family::V4, std::move(lines[0]));
  g.set_observed(Family::V6, std::move(lines[1]));
}

// The generation kept in memory when its files have not changed since (an apply reads the one in force, a rollback its
// parent: a 10k-rule generation takes longer to parse than to install); else read from disk, as untrusted input.
Result<IptablesBackend::Generation> IptablesBackend::load_generation(int n) const {
  auto files = generation_files(n);  // before reading: a file replaced meanwhile is read again next time
  {
    std::lock_guard l(cache_->mu);
    if (auto it = cache_->entries.find(n); it != cache_->entries.end() && it->second.files == files) return it->second.g;
  }
  auto path = generation_path(o_.state_dir, n);
  auto text = read_state_file(path);
  if (!text) return Error{fmt::format("policy generation {} open failed", path.string())};
  Generation g;
  try {
    json j = json::parse(*text);
    g.number = j.at("generation").get<int>();
    if (g.number != n) return Error{fmt::format("policy generation {} names generation {}", path.string(), g.number)};
    g.parent = j.value("parent", 0);
    g.created = j.value("created", "");
    g.source_hash = j.value("source_hash", "");
    g.modes = j.value("modes", std::map<std::string, std::string>{});
    g.v4 = std::make_shared<const RenderedTable>(table_from(j.at("ipv4"), Family::V4));
    g.v6 = std::make_shared<const RenderedTable>(table_from(j.at("ipv6"), Family::V6));
    if (j.contains("index")) g.index = std::make_shared<const RuleIndex>(index_from_json(j.at("index")));
    if (j.contains("observed_ipv4")) g.set_observed(Family::V4, j.at("observed_ipv4").get<Lines>());
    if (j.contains("observed_ipv6")) g.set_observed(Family::V6, j.at("observed_ipv6").get<Lines>());
    g.ipv6 = j.value("ipv6_installed", true);
    if (j.contains("rule_index")) {
      auto name = j.at("rule_index").get<std::string>();
      if (name != index_name(n)) return Error{fmt::format("policy generation {}: rule index {} is not {}", path.string(), name, index_name(n))};
      auto index_file = read_state_file(fs::path(o_.state_dir) / name);
      if (!index_file) return index_file.error();
      auto index = parse_index(*index_file, (fs::path(o_.state_dir) / name).string());
      if (!index) return index.error();
      g.index = std::make_shared<const RuleIndex>(std::move(*index));
    }
  } catch (const json::exception& e) {
    return Error{fmt::format("policy generation {} parse failed: {}", path.string(), e.what())};
  }
  load_observed(g);
  remember(g, files);
  return g;
}

// ---- crash consistency: <state_dir>/pending names the switch in progress (docs/policy.md, "After a crash")

struct IptablesBackend::Pending {
  int target = 0;      // the generation being installed (0: none, a flush)
  int previous = 0;    // `current` when the switch began
  bool fresh = false;  // target is a new generation made by apply (its files go when the switch is undone)
};

namespace {
fs::path pending_path(const std::string& dir) { return fs::path(dir) / "pending"; }
std::string in_force_text(int n) { return n > 0 ? fmt::format("generation {} is in force", n) : "no hostscope rules are in force"; }
}  // namespace

void IptablesBackend::crash_point(const std::string& step) const {
  if (!o_.crash_at.empty() && o_.crash_at == step) raise(SIGKILL);  // tests: a kill -9 at exactly this step
}

std::optional<IptablesBackend::Pending> IptablesBackend::read_pending() const {
  std::ifstream f(pending_path(o_.state_dir));
  if (!f) return std::nullopt;
  json j = json::parse(f, nullptr, false);
  Pending p;
  if (j.is_object()) {
    p.target = j.value("generation", 0);
    p.previous = j.value("previous", 0);
    p.fresh = j.value("new", false);
  } else {  // cannot happen with atomic writes; the safest reading is "put `current` back in force"
    p.target = p.previous = current();
  }
  return p;
}

void IptablesBackend::forget(int n) const {
  std::error_code ec;
  fs::remove(generation_path(o_.state_dir, n), ec);
  fs::remove(fs::path(o_.state_dir) / index_name(n), ec);
  fs::remove(ir_path(o_.state_dir, n), ec);
  fs::remove(observed_path(o_.state_dir, n), ec);
}

Result<Plan> IptablesBackend::transition(Generation* g, const Ir* ir, const Generation* in_force) {
  int prev = current();
  int target = g ? g->number : 0;
  auto pending = pending_path(o_.state_dir);
  json intent = {{"generation", target}, {"previous", prev}, {"new", ir != nullptr}};
  // The marker first, then a new generation's files: all on disk before the kernel is touched.
  std::vector<std::pair<fs::path, std::string>> files{{pending, intent.dump() + "\n"}};
  if (ir) {
    auto texts = generation_texts(*g, ir);
    std::move(texts.begin(), texts.end(), std::back_inserter(files));
  }
  if (auto r = write_files_atomic(files); !r) {
    if (ir) forget(target);
    (void)remove_file_durable(pending);
    return r.error();
  }
  if (ir) stored(*g);
  crash_point("intent");
  Plan plan;
  bool reverted = true;
  if (auto r = switch_families(g, in_force, prev, &plan, &reverted); !r) {
    if (!reverted)  // the marker stays: the next policy command (or the agent's next pass) finishes the job
      return Error{fmt::format("{}; putting back the families already switched failed too: the next policy command puts "
                                 "one generation back in force",
                                 r.error().str())};
    if (ir) forget(target);
    (void)remove_file_durable(pending);
    return r.error();
  }
  if (g) {
    g->ipv6 = o_.ipv6;
    // Durable with `current` below (one fsync of the directory for both): `pending` stays until then.
    if (auto r = store_observed(*g, false); !r) return r.error();
    crash_point("stored");
  }
  // The commit point: once `current` names the target, a crash finishes the switch instead of undoing it.
  if (auto r = set_current(target); !r) return r.error();
  crash_point("current");
  if (auto r = remove_file_durable(pending); !r) return r.error();
  return plan;
}

Status IptablesBackend::settle(int n) {
  std::optional<Generation> g;
  if (n > 0) {
    auto l = load_generation(n);
    if (!l) return l.error();
    g = std::move(*l);
  }
  bool reverted = true;
  if (auto r = switch_families(g ? &*g : nullptr, nullptr, -1, nullptr, &reverted); !r) return r;
  std::vector<std::string> keep;
  if (g) {
    g->ipv6 = o_.ipv6;
    if (auto r = store_observed(*g, false); !r) return r;  // durable with `current`, below
    keep = g->set_names();
  }
  if (auto r = set_current(n); !r) return r;
  destroy_stale_sets(keep);
  return {};
}

Result<std::string> IptablesBackend::recover_locked() {
  auto p = read_pending();
  if (!p) return std::string();
  bool committed = current() == p->target;
  int want = committed ? p->target : p->previous;
  int other = committed ? p->previous : p->target;
  std::string how = committed ? "finished" : "undone";
  auto r = settle(want);
  if (!r && other != want && (other == 0 || fs::exists(fs::path(o_.state_dir) / fmt::format("gen-{}.json", other)))) {
    // One generation in force beats the preferred one: e.g. the previous one refers to a cgroup that is gone.
    if (auto r2 = settle(other); r2) {
      how = fmt::format("{} instead ({} failed: {})", committed ? "undone" : "finished", committed ? "finishing" : "undoing", r.error().str());
      want = other;
      r = r2;
    }
  }
  if (!r)
    return Error{fmt::format("policy state {}: an interrupted switch from generation {} to {} could not be finished or undone: {}",
                               o_.state_dir, p->previous, p->target, r.error().str())};
  if (want != p->target && p->fresh) forget(p->target);
  if (auto c = remove_file_durable(pending_path(o_.state_dir)); !c) return c.error();
  auto msg = fmt::format("an interrupted {} of generation {} (from {}) was {}: {}", p->fresh ? "apply" : "switch", p->target,
                         p->previous, how, in_force_text(want));
  spdlog::warn("policy: {}", msg);
  return msg;
}

Result<std::string> IptablesBackend::recover() {
  std::error_code ec;
  if (!fs::exists(pending_path(o_.state_dir), ec)) return std::string();
  auto lock = StateLock::acquire(o_.state_dir);
  if (!lock) return lock.error();
  return recover_locked();  // re-reads the marker: the holder we waited for may have finished
}

Result<StateLock> IptablesBackend::lock_and_recover() {
  auto lock = StateLock::acquire(o_.state_dir);
  if (!lock) return lock.error();
  if (auto r = recover_locked(); !r) return r.error();
  return std::move(*lock);
}

void IptablesBackend::prune(int cur, int parent) const {
  auto gens = generations();
  int keep = std::max(1, o_.keep_generations);
  for (size_t i = 0; i + static_cast<size_t>(keep) < gens.size(); ++i) {
    if (gens[i] == cur || gens[i] == parent) continue;  // keep what rollback needs
    forget(gens[i]);
  }
}

namespace {
// A rule a policy owns: its tag is "hostscope:<policy>:<hash>"; hostscope's own rules (failsafes, neighbour
// discovery, conntrack, dispatch) have owners starting with "hs." and stay whatever the policies say.
bool policy_owned(std::string_view tag_or_line) {
  auto at = tag_or_line.find("hostscope:");
  if (at == std::string_view::npos) return false;
  return tag_or_line.substr(at + 10, 3) != "hs.";
}
}  // namespace

size_t policy_rules_in_force(const BackendStatus& st) {
  size_t n = 0;
  for (const auto& c : st.counters)
    if (policy_owned(c.tag)) n += rules_stood_for(c.what);
  return n;
}

std::string mass_removal(const Plan& plan, size_t installed, const std::vector<std::pair<std::string, SourceLoc>>& unselected,
                         size_t policies, const std::string& prefix) {
  // Per policy: the rules its removed lines stand for, less those its added lines stand for (a folded run moved to a
  // new set, rules folded that were installed one by one, a rule rewritten: replaced, not removed).
  std::map<std::string, std::pair<size_t, size_t>> by_owner;  // owner -> removed, added
  auto count = [&](std::string_view line, bool removed) {
    if (!policy_owned(line)) return;
    auto at = line.find("hostscope:");
    auto tag = line.substr(at, line.find('"', at) - at);
    auto it = plan.rules_per_tag.find(std::string(tag));
    size_t n = it == plan.rules_per_tag.end() ? 1 : it->second;
    auto owner = tag.substr(10, tag.rfind(':') - 10);
    auto& [r, a] = by_owner[std::string(owner)];
    (removed ? r : a) += n;
  };
  for (const auto& d : plan.chains) {
    for (const auto& line : d.removed) count(line, true);
    for (const auto& line : d.added) count(line, false);
  }
  size_t removed = 0;
  for (const auto& [owner, ra] : by_owner) removed += ra.first > ra.second ? ra.first - ra.second : 0;
  if (unselected.empty() || installed == 0 || removed * 2 <= installed) return "";
  std::string names;
  for (size_t i = 0; i < unselected.size() && i < 5; i++) {
    auto loc = unselected[i].second;
    if (!prefix.empty()) loc.file = prefix + "/" + loc.file;
    names += fmt::format("{}'{}' ({})", i ? ", " : "", unselected[i].first, loc.str());
  }
  if (unselected.size() > 5) names += fmt::format(" and {} more", unselected.size() - 5);
  return fmt::format("the plan removes {} of the {} policy rules in force while {} of {} policies select nothing on this node: {}; "
                     "their subjects are not in the service catalogue (add them to policy.context, or start them)",
                     removed, installed, unselected.size(), policies, names);
}

}  // namespace hostscope::policy
