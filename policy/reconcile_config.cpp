#include "policy/reconcile_config.h"

#include <set>

#include <fmt/format.h>

#include "policy/context.h"

namespace hostscope::policy {
namespace {

// Collects file:line:column errors like the agent's config checker (policy/ cannot use agent/).
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}
  void at(const YAML::Node& n, const std::string& msg) {
    auto m = n.Mark();
    list_.push_back(m.is_null() ? fmt::format("{}: {}", file_, msg) : fmt::format("{}:{}:{}: {}", file_, m.line + 1, m.column + 1, msg));
  }
  bool map(const YAML::Node& n, const std::string& where, const std::set<std::string>& known) {
    if (!n.IsMap()) {
      at(n, fmt::format("{} must be a mapping", where));
      return false;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto key = it->first.as<std::string>("");
      if (known.count(key)) continue;
      std::string names;
      for (const auto& k : known) names += (names.empty() ? "" : ", ") + k;
      at(it->first, fmt::format("unknown key '{}' in {} (known keys: {})", key, where, names));
    }
    return true;
  }
  template <typename T>
  bool get(const YAML::Node& parent, const char* key, T& out, const std::string& where) {
    auto n = parent[key];
    if (!n) return false;
    if (!n.IsScalar()) {
      at(n, fmt::format("{}.{} must be a scalar", where, key));
      return false;
    }
    try {
      out = n.as<T>();
      return true;
    } catch (const YAML::Exception&) {
      at(n, fmt::format("{}.{} has the wrong type", where, key));
      return false;
    }
  }
  bool ok() const { return list_.empty(); }
  std::string joined() const {
    std::string s;
    for (const auto& e : list_) s += (s.empty() ? "" : "\n") + e;
    return s;
  }

 private:
  std::string file_;
  std::vector<std::string> list_;
};

void poll(Errors& e, const YAML::Node& parent, uint32_t& out, const std::string& where) {
  if (e.get(parent, "poll_seconds", out, where) && (out < 1 || out > 86400))
    e.at(parent["poll_seconds"], fmt::format("{}.poll_seconds must be between 1 and 86400", where));
}

void absolute(Errors& e, const YAML::Node& parent, const char* key, const std::string& value, const std::string& where) {
  if (parent[key] && (value.empty() || value.front() != '/')) e.at(parent[key], fmt::format("{}.{} must be an absolute path", where, key));
}

}  // namespace

std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  auto start = scheme == std::string::npos ? 0 : scheme + 3;
  auto at = url.find('@', start);
  auto slash = url.find('/', start);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) return url;
  auto colon = url.find(':', start);
  if (colon == std::string::npos || colon > at) return url;  // user@ only: no secret in it
  return url.substr(0, start) + url.substr(start, colon - start) + ":***" + url.substr(at);
}

std::string ReconcileConfig::describe() const {
  switch (kind) {
    case Kind::Git:
      return fmt::format("git {} branch {} dir {}", redact_url(git.url), git.branch, git.directory.empty() ? "/" : git.directory);
    case Kind::Directory:
      return "dir " + directory;
    case Kind::None:
      break;
  }
  return "";
}

Result<ReconcileConfig> parse_reconcile_config(const YAML::Node& node, const std::string& file) {
  ReconcileConfig c;
  if (!node || node.IsNull()) return c;
  Errors e(file);
  if (!e.map(node, "policy", {"state_dir", "work_dir", "iptables", "netns", "ipv6", "allow_failsafe_off", "allow_mass_removal", "impact", "context", "source"}))
    return Error{e.joined()};
  e.get(node, "state_dir", c.state_dir, "policy");
  absolute(e, node, "state_dir", c.state_dir, "policy");
  e.get(node, "work_dir", c.work_dir, "policy");
  absolute(e, node, "work_dir", c.work_dir, "policy");
  if (e.get(node, "iptables", c.iptables, "policy") && c.iptables != "iptables" && c.iptables != "nft" && c.iptables != "legacy")
    e.at(node["iptables"], "policy.iptables must be one of iptables, nft, legacy");
  if (e.get(node, "netns", c.netns, "policy") &&
      (c.netns.empty() || c.netns.find('/') != std::string::npos || c.netns == "." || c.netns == ".."))
    e.at(node["netns"], "policy.netns must be the name of a network namespace in /run/netns");
  e.get(node, "ipv6", c.ipv6, "policy");
  e.get(node, "allow_failsafe_off", c.allow_failsafe_off, "policy");
  e.get(node, "allow_mass_removal", c.allow_mass_removal, "policy");
  if (std::string impact; e.get(node, "impact", impact, "policy")) {
    if (impact == "off") c.impact = ReconcileConfig::Impact::Off;
    else if (impact == "warn") c.impact = ReconcileConfig::Impact::Warn;
    else if (impact == "refuse") c.impact = ReconcileConfig::Impact::Refuse;
    else if (impact == "audit-first") c.impact = ReconcileConfig::Impact::AuditFirst;
    else e.at(node["impact"], "policy.impact must be one of off, warn, refuse, audit-first");
  }
  if (e.get(node, "context", c.context_file, "policy")) {
    absolute(e, node, "context", c.context_file, "policy");
    if (!c.context_file.empty() && c.context_file.front() == '/')
      if (auto ctx = load_context_file(c.context_file); !ctx) e.at(node["context"], "policy.context: " + ctx.error().str());
  }

  auto src = node["source"];
  if (src && !src.IsNull() && e.map(src, "policy.source", {"git", "directory", "poll_seconds"})) {
    auto git = src["git"];
    auto dir = src["directory"];
    if (git && dir) e.at(src, "policy.source takes either git or directory, not both");
    else if (!git && !dir) e.at(src, "policy.source needs git or directory");
    if (dir) {
      c.kind = ReconcileConfig::Kind::Directory;
      e.get(src, "directory", c.directory, "policy.source");
      absolute(e, src, "directory", c.directory, "policy.source");
      poll(e, src, c.poll_seconds, "policy.source");
    } else if (src["poll_seconds"]) {
      e.at(src["poll_seconds"], "policy.source.poll_seconds is for directory sources; use policy.source.git.poll_seconds");
    }
    if (git && e.map(git, "policy.source.git",
                     {"url", "branch", "directory", "poll_seconds", "ssh_key_file", "token_file", "allowed_signers_file", "follow_force_push"})) {
      c.kind = ReconcileConfig::Kind::Git;
      const std::string w = "policy.source.git";
      if (!e.get(git, "url", c.git.url, w) || c.git.url.empty()) e.at(git["url"] ? git["url"] : git, w + ".url is required");
      if (e.get(git, "branch", c.git.branch, w) &&
          (c.git.branch.empty() || c.git.branch.find("..") != std::string::npos || c.git.branch.find_first_of(" ~^:?*[\\") != std::string::npos))
        e.at(git["branch"], w + ".branch is not a valid branch name");
      if (e.get(git, "directory", c.git.directory, w)) {
        while (!c.git.directory.empty() && c.git.directory.back() == '/') c.git.directory.pop_back();
        while (!c.git.directory.empty() && c.git.directory.front() == '/') c.git.directory.erase(0, 1);
        if (c.git.directory == "." ) c.git.directory.clear();
        if (("/" + c.git.directory + "/").find("/../") != std::string::npos)
          e.at(git["directory"], w + ".directory must stay inside the repository");
      }
      poll(e, git, c.poll_seconds, w);
      e.get(git, "ssh_key_file", c.git.ssh_key_file, w);
      absolute(e, git, "ssh_key_file", c.git.ssh_key_file, w);
      e.get(git, "token_file", c.git.token_file, w);
      absolute(e, git, "token_file", c.git.token_file, w);
      e.get(git, "allowed_signers_file", c.git.allowed_signers_file, w);
      absolute(e, git, "allowed_signers_file", c.git.allowed_signers_file, w);
      e.get(git, "follow_force_push", c.git.follow_force_push, w);
      if (!c.git.ssh_key_file.empty() && !c.git.token_file.empty())
        e.at(git, w + " takes ssh_key_file or token_file, not both");
    }
  }
  if (!e.ok()) return Error{e.joined()};
  return c;
}

}  // namespace hostscope::policy
