#pragma once
// A fake iptables-save/restore for unit tests of the policy backend and the reconciler: keeps one table per family
// as text and fails on demand.
#include <algorithm>
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
  bool fail_restore = false;
  int restores_left = -1;  // >= 0: that many more restores succeed, then every one fails
  CommandResult run(const std::vector<std::string>& argv, const std::string& input) override {
    std::string bin = argv[0];
    std::string fam = bin.rfind("ip6tables", 0) == 0 ? "ip6tables" : "iptables";
    if (bin == "ipset") return {0, "", ""};
    if (bin.find("-save") != std::string::npos) return {0, tables[fam], ""};
    if (bin.find("-restore") != std::string::npos) {
      restores.push_back(input);
      if (fail_restore || restores_left == 0) return {1, "", "iptables-restore: line 3 failed"};
      if (restores_left > 0) --restores_left;
      tables[fam] = apply(tables[fam], input);
      return {0, "", ""};
    }
    return {127, "", "unknown command"};
  }
  // Minimal --noflush semantics over our chains: declared chains are flushed, -A/-I/-D/-X.
  static std::string apply(const std::string& before, const std::string& input) {
    auto t = parse_save(before);
    std::vector<std::string> chains = t.chains;
    std::vector<std::string> rules;
    for (const auto& r : t.rules) rules.push_back(r.line);
    std::istringstream in(input);
    std::string l;
    while (std::getline(in, l)) {
      if (l.empty() || l[0] == '*' || l == "COMMIT") continue;
      if (l[0] == ':') {
        auto c = l.substr(1, l.find(' ') - 1);
        if (std::find(chains.begin(), chains.end(), c) == chains.end()) chains.push_back(c);
        std::erase_if(rules, [&](const std::string& r) { return r.rfind("-A " + c + " ", 0) == 0; });
      } else if (l.rfind("-A ", 0) == 0) {
        rules.push_back(l);
      } else if (l.rfind("-I ", 0) == 0) {
        auto sp = l.find(' ', 3);
        auto chain = l.substr(3, sp - 3);
        rules.insert(rules.begin(), "-A " + chain + l.substr(l.find(' ', sp + 1)));
      } else if (l.rfind("-D ", 0) == 0) {
        std::erase(rules, "-A" + l.substr(2));
      } else if (l.rfind("-X ", 0) == 0) {
        std::erase(chains, l.substr(3));
      }
    }
    std::string out = "*filter\n";
    for (const auto& c : chains) out += ":" + c + (c.rfind("HOSTSCOPE", 0) == 0 ? " - [0:0]\n" : " ACCEPT [0:0]\n");
    for (const auto& r : rules) out += "[1:60] " + r + "\n";
    return out + "COMMIT\n";
  }
};

}  // namespace hostscope::policy::fakes
