// The files the package ships, checked against the program they describe:
//   - packaging/config.yaml (the conffile) parses as shipped, and with every key uncommented;
//   - the bash completion offers every subcommand and option `--help` lists, and option choices;
//   - the generated man page documents every subcommand and formats without groff warnings;
//   - the Kubernetes installer manifest is well-formed and its install script is valid sh.
#include <gtest/gtest.h>

#include <fstream>
#include <utility>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "agent/daemon/config.h"
#include "support/privileged.h"

namespace hostscope {
namespace {

using testing::sh;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
std::string src() { return env("HOSTSCOPE_SRC"); }
std::string bin() { return env("HOSTSCOPE_BIN"); }

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Names in one section ("Subcommands" or "Options") of `hostscope ARGS --help`, parsed independently of the
// completion script's awk.
std::vector<std::string> help_section(const std::string& args, const std::string& section) {
  auto r = sh(bin() + " " + args + " --help");
  EXPECT_EQ(r.status, 0) << r.out;
  std::vector<std::string> names;
  std::istringstream in(r.out);
  std::string line;
  bool on = false;
  while (std::getline(in, line)) {
    if (line == section + ":") {
      on = true;
      continue;
    }
    if (on && !line.empty() && line[0] != ' ') on = false;
    if (!on || line.size() < 3 || line[2] == ' ') continue;
    std::string first = line.substr(2, line.find(' ', 2) - 2);
    if (section == "Options") {
      std::stringstream parts(first);
      std::string p;
      while (std::getline(parts, p, ',')) names.push_back(p);
    } else {
      names.push_back(first);
    }
  }
  return names;
}

// What the completion script offers for the words typed so far (the last word is the one being completed).
std::set<std::string> complete(const std::vector<std::string>& words) {
  std::string arr = "'" + bin() + "'";
  for (const auto& w : words) arr += " '" + w + "'";
  std::string script = "source '" + src() + "/packaging/hostscope.bash-completion'; COMP_WORDS=(" + arr +
                       "); COMP_CWORD=" + std::to_string(words.size()) +
                       "; _hostscope; printf '%s\\n' \"${COMPREPLY[@]}\"";
  auto r = sh("bash -c \"$(cat <<'HS_EOF'\n" + script + "\nHS_EOF\n)\"");
  EXPECT_EQ(r.status, 0) << r.out;
  std::set<std::string> out;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.insert(line);
  return out;
}

TEST(Conffile, ParsesAsShippedAndWithEveryKeyUncommented) {
  std::string text = slurp(src() + "/packaging/config.yaml");
  ASSERT_FALSE(text.empty());
  auto shipped = daemon::parse_config(text, "config.yaml");
  ASSERT_TRUE(shipped) << shipped.error().str();

  // Uncomment "# key: value" lines; the "or instead of git" alternative is left out (it excludes git).
  std::regex key_line(R"(^# ( *[a-z_][a-z_0-9-]*:.*)$)");
  std::istringstream in(text);
  std::string line, uncommented;
  bool alternative = false;  // the key line right after "# or instead of ..."
  int keys = 0;
  while (std::getline(in, line)) {
    if (line.find("# or instead of") != std::string::npos) {
      alternative = true;
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, key_line)) continue;
    if (std::exchange(alternative, false)) continue;
    uncommented += m[1].str() + "\n";
    keys++;
  }
  EXPECT_GT(keys, 40);
  auto all = daemon::parse_config(uncommented, "config.yaml (uncommented)");
  ASSERT_TRUE(all) << all.error().str() << "\n" << uncommented;
  // The keys other components own are in the file too.
  for (const char* k : {"metrics", "events", "policy"}) EXPECT_TRUE(all->raw[k]) << k;
  EXPECT_EQ(all->identity.kubelet_root, "/");
}

TEST(BashCompletion, OffersEverySubcommandAndOption) {
  ASSERT_FALSE(bin().empty());
  std::vector<std::vector<std::string>> paths = {{}};
  for (size_t i = 0; i < paths.size(); i++) {
    auto path = paths[i];
    std::string args;
    for (const auto& p : path) args += p + " ";
    auto subs = help_section(args, "Subcommands");
    auto words = path;
    words.push_back("");
    auto offered = complete(words);
    for (const auto& s : subs) {
      EXPECT_TRUE(offered.count(s)) << "`hostscope " << args << "<TAB>` does not offer " << s;
      auto next = path;
      next.push_back(s);
      paths.push_back(next);
    }
    words.back() = "-";
    offered = complete(words);
    for (const auto& o : help_section(args, "Options"))
      EXPECT_TRUE(offered.count(o)) << "`hostscope " << args << "-<TAB>` does not offer " << o;
  }
  EXPECT_GT(paths.size(), 15u);  // the whole tree was walked (policy has its own subcommands)
  EXPECT_EQ(complete({"doctor", "-o", ""}), (std::set<std::string>{"text", "json"}));
  EXPECT_EQ(complete({"top", "--emb"}), (std::set<std::string>{"--embedded"}));
}

TEST(ManPage, DocumentsEverySubcommandWithoutWarnings) {
  HS_REQUIRE_SETUP(sh("command -v help2man").status == 0, "help2man missing (bash scripts/setup.sh --no-build)");
  auto page = sh(src() + "/packaging/gen-manpage.sh " + bin() + " 2>/dev/null");
  ASSERT_EQ(page.status, 0) << page.out;
  for (const auto& s : help_section("", "Subcommands"))
    EXPECT_NE(page.out.find(".SS \"hostscope " + s + "\""), std::string::npos) << s;
  for (const auto& s : help_section("policy", "Subcommands"))
    EXPECT_NE(page.out.find(".SS \"hostscope policy " + s + "\""), std::string::npos) << s;
  char dir[] = "/tmp/hs-man-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string file = std::string(dir) + "/hostscope.1";
  std::ofstream(file) << page.out;
  // The same check lintian runs (groff-message): any warning fails.
  auto warn = sh("LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z " + file + " 2>&1 >/dev/null");
  EXPECT_EQ(warn.out, "");
  sh(std::string("rm -rf ") + dir);
}

TEST(KubernetesInstaller, ManifestIsWellFormed) {
  auto docs = YAML::LoadAllFromFile(src() + "/packaging/kubernetes/hostscope-installer.yaml");
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0]["kind"].as<std::string>(), "Namespace");
  EXPECT_EQ(docs[1]["kind"].as<std::string>(), "ConfigMap");
  ASSERT_EQ(docs[2]["kind"].as<std::string>(), "DaemonSet");
  auto spec = docs[2]["spec"]["template"]["spec"];
  EXPECT_TRUE(spec["hostPID"].as<bool>());
  EXPECT_TRUE(spec["containers"][0]["securityContext"]["privileged"].as<bool>());
  EXPECT_EQ(docs[2]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(),
            docs[2]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as<std::string>());
  // The package version the installer asks for is the project's.
  auto version = sh("sed -n 's/^project(hostscope VERSION \\([0-9.]*\\).*/\\1/p' " + src() + "/CMakeLists.txt");
  EXPECT_EQ(docs[1]["data"]["VERSION"].as<std::string>() + "\n", version.out);
  // The agent config the installer writes is valid, and keys network ends by address: the cluster view joins nodes'
  // series through the pod addresses (issue 20).
  auto cfg = daemon::parse_config(docs[1]["data"]["config.yaml"].as<std::string>(), "installer config.yaml");
  ASSERT_TRUE(cfg) << cfg.error().str();
  EXPECT_EQ(cfg->topology.network_ends, topology::NetworkEnds::Address);
  EXPECT_EQ(cfg->metrics.listen, "0.0.0.0:9477");
  EXPECT_TRUE(cfg->networks.count("cluster-pods"));
  char dir[] = "/tmp/hs-k8s-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::ofstream(std::string(dir) + "/install.sh") << docs[1]["data"]["install.sh"].as<std::string>();
  auto check = sh(std::string("sh -n ") + dir + "/install.sh");
  EXPECT_EQ(check.status, 0) << check.out;
  sh(std::string("rm -rf ") + dir);
}

}  // namespace
}  // namespace hostscope
