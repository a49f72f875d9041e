#pragma once
// A fake iptables-save/restore for unit tests of the policy backend and the reconciler: keeps one table per family
// as text and fails on demand.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "policy/command.h"
#include "policy/iptables.h"

namespace hostscope::policy::fakes {

// A fake iptables-save/restore that keeps one table per family as text and fails on demand.
class FakeIptables : public CommandRunner {
 public:
  std::map<std::string, std::string> tables;  // "iptables" / "ip6tables" -> saved text
  std::vector<std::string> restores;
  std::vector<std::string> ipset_restores;  // inputs of `ipset restore`
  bool fail_restore = false;
  int restores_left = -1;  // >= 0: that many more restores succeed, then every one fails
  // Runs before each restore: someone else changing the table between the backend's save and its restore.
  std::function<void(const std::string& family, std::string& table)> before_restore;
  // iptables-save words NFLOG's options in another order than they were given: so does the fake when set.
  bool reword_nflog = false;
  CommandResult run(const std::vector<std::string>& argv, const std::string& input) override {
    std::string bin = argv[0];
    std::string fam = bin.rfind("ip6tables", 0) == 0 ? "ip6tables" : "iptables";
    if (bin == "ipset") {
      if (argv.back() == "restore") ipset_restores.push_back(input);
      return {0, "", ""};
    }
    if (bin.find("-save") != std::string::npos) return {0, reword_nflog ? reworded(tables[fam]) : tables[fam], ""};
    if (bin.find("-restore") != std::string::npos) {
      restores.push_back(input);
      if (before_restore) before_restore(fam, tables[fam]);
      if (fail_restore || restores_left == 0) return {1, "", "iptables-restore: line 3 failed"};
      if (restores_left > 0) --restores_left;
      auto after = try_apply(tables[fam], input);
      if (after.empty()) return {2, "", "iptables-restore: a command failed"};
      tables[fam] = after;
      return {0, "", ""};
    }
    return {127, "", "unknown command"};
  }
  // "... --nflog-group G --nflog-prefix "P"" read back as "... --nflog-prefix "P" --nflog-group G".
  static std::string reworded(const std::string& table) {
    std::istringstream in(table);
    std::string out;
    for (std::string l; std::getline(in, l);) {
      auto g = l.find(" --nflog-group ");
      auto p = l.find(" --nflog-prefix ");
      if (g != std::string::npos && p != std::string::npos && g < p) l = l.substr(0, g) + l.substr(p) + l.substr(g, p - g);
      out += l + "\n";
    }
    return out;
  }
  // Minimal --noflush semantics: declared chains are flushed; -A, -I/-D/-R (by position within the chain, -D also by
  // rule), -X. Like iptables-save, rules come out grouped by chain in the order the chains were declared. A command
  // the kernel would refuse (a position past the chain's end, -D of a rule that is not there) fails the whole input.
  static std::string apply(const std::string& before, const std::string& input) {
    auto r = try_apply(before, input);
    return r.empty() ? before : r;
  }
  // "" when a command fails (then nothing changes, as with iptables-restore).
  static std::string try_apply(const std::string& before, const std::string& input) {
    auto t = parse_save(before);
    std::vector<std::string> chains = t.chains;
    std::map<std::string, std::vector<std::string>> rules;  // chain -> "-A CHAIN ..." lines
    auto declare = [&](const std::string& c) {
      if (std::find(chains.begin(), chains.end(), c) == chains.end()) chains.push_back(c);
    };
    for (const auto& r : t.rules) {
      declare(r.chain);
      rules[r.chain].push_back(r.line);
    }
    std::istringstream in(input);
    std::string l;
    while (std::getline(in, l)) {
      if (l.empty() || l[0] == '*' || l == "COMMIT") continue;
      if (l[0] == ':') {
        auto c = l.substr(1, l.find(' ') - 1);
        declare(c);
        rules[c].clear();
        continue;
      }
      if (l.size() < 4 || l[0] != '-') return "";
      char op = l[1];
      auto sp = l.find(' ', 3);
      auto chain = l.substr(3, sp == std::string::npos ? std::string::npos : sp - 3);
      auto rest = sp == std::string::npos ? std::string() : l.substr(sp + 1);  // "[N ]spec"
      auto& v = rules[chain];
      size_t pos = 0;  // 1-based position when the command has one
      if (op != 'A' && op != 'X' && !rest.empty() && std::isdigit(static_cast<unsigned char>(rest[0]))) {
        auto n = rest.find(' ');
        pos = std::stoul(rest.substr(0, n));
        rest = n == std::string::npos ? "" : rest.substr(n + 1);
      }
      std::string line = "-A " + chain + " " + rest;
      if (op == 'A') {
        v.push_back(line);
      } else if (op == 'I') {
        if (pos == 0) pos = 1;
        if (pos > v.size() + 1) return "";
        v.insert(v.begin() + static_cast<long>(pos - 1), line);
      } else if (op == 'R') {
        if (pos == 0 || pos > v.size()) return "";
        v[pos - 1] = line;
      } else if (op == 'D') {
        if (pos > 0) {
          if (pos > v.size()) return "";
          v.erase(v.begin() + static_cast<long>(pos - 1));
        } else {
          auto it = std::find(v.begin(), v.end(), line);
          if (it == v.end()) return "";
          v.erase(it);
        }
      } else if (op == 'X') {
        std::erase(chains, chain);
        rules.erase(chain);
      } else {
        return "";
      }
    }
    std::string out = "*filter\n";
    for (const auto& c : chains) out += ":" + c + (c.rfind("HOSTSCOPE", 0) == 0 ? " - [0:0]\n" : " ACCEPT [0:0]\n");
    for (const auto& c : chains)
      for (const auto& r : rules[c]) out += "[1:60] " + r + "\n";
    return out + "COMMIT\n";
  }
};

}  // namespace hostscope::policy::fakes
