#include "policy/loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "policy/hash.h"

namespace hostscope::policy {
namespace fs = std::filesystem;

const char* to_string(Action a) {
  switch (a) {
    case Action::Allow: return "allow";
    case Action::Deny: return "deny";
    case Action::Reject: return "reject";
    case Action::Log: return "log";
  }
  return "?";
}
const char* to_string(Mode m) { return m == Mode::Enforce ? "enforce" : "audit"; }
const char* to_string(Direction d) { return d == Direction::Egress ? "egress" : "ingress"; }

std::string closest_word(std::string_view word, const std::vector<std::string_view>& candidates) {
  if (word.size() > 64) return "";
  std::string best;
  size_t best_d = 3;  // suggest only within 2 edits (or a case/underscore slip)
  auto lower = [](char ch) { return static_cast<char>(std::tolower(static_cast<unsigned char>(ch))); };
  for (auto c : candidates) {
    // Optimal string alignment distance: edits plus adjacent transpositions ("wbe" -> "web" = 1).
    std::vector<std::vector<size_t>> d(word.size() + 1, std::vector<size_t>(c.size() + 1));
    for (size_t i = 0; i <= word.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= c.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= word.size(); ++i)
      for (size_t j = 1; j <= c.size(); ++j) {
        size_t cost = lower(word[i - 1]) == c[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && lower(word[i - 1]) == c[j - 2] && lower(word[i - 2]) == c[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    size_t dist = d[word.size()][c.size()];

    if (dist < best_d && dist <= (c.size() <= 4 ? 1u : 2u)) {
      best_d = dist;
      best = c;
    }
  }
  return best;
}

namespace {

const std::vector<std::string_view> kPolicyKeys = {"apiVersion", "kind", "metadata", "subject", "mode",
                                                    "failsafe", "egress", "ingress", "default"};
const std::vector<std::string_view> kTestKeys = {"apiVersion", "kind", "metadata", "cases"};
const std::vector<std::string_view> kMetadataKeys = {"name", "description", "labels"};
const std::vector<std::string_view> kSubjectKeys = {"service", "go_module", "namespace", "workload", "exe", "cgroup"};
const std::vector<std::string_view> kRuleKeys = {"action", "peers", "ports", "protocol", "comment"};
const std::vector<std::string_view> kPeerKeys = {"service", "cidr", "network"};
const std::vector<std::string_view> kDefaultKeys = {"ingress", "egress"};
const std::vector<std::string_view> kCaseKeys = {"name", "from", "to", "port", "protocol", "expect"};

std::string type_name(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return fmt::format("the scalar '{}'", n.Scalar().substr(0, 40));
    case YAML::NodeType::Null: return "nothing (null)";
    default: return "an undefined value";
  }
}

std::string one_of(const std::vector<std::string_view>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::string(v[i]);
  return s;
}

bool is_dns_label(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return s.front() != '-' && s.back() != '-';
}

class DocLoader {
 public:
  DocLoader(LoadResult& out, std::string file) : out_(out), file_(std::move(file)) {}

  SourceLoc loc(const YAML::Node& n) const {
    auto m = n.Mark();
    if (m.is_null()) return {file_, 0, 0};
    return {file_, m.line + 1, m.column + 1};
  }
  void error(const SourceLoc& l, std::string msg) { out_.diagnostics.push_back({Severity::Error, l, std::move(msg)}); }
  void warning(const SourceLoc& l, std::string msg) {
    out_.diagnostics.push_back({Severity::Warning, l, std::move(msg)});
  }

  // Counts visited nodes so alias bombs cannot make us walk millions of elements.
  bool charge(const YAML::Node& n, size_t k = 1) {
    nodes_ += k;
    if (nodes_ > kMaxNodesPerDocument) {
      if (!over_budget_) error(loc(n), fmt::format("document too large: more than {} elements (after expanding aliases)",
                                                  kMaxNodesPerDocument));
      over_budget_ = true;
    }
    return !over_budget_;
  }

  // Reports unknown and duplicate keys; returns false if `n` is not a map.
  bool check_map(const YAML::Node& n, const std::string& what, const std::vector<std::string_view>& known) {
    if (!n.IsMap()) {
      error(loc(n), fmt::format("'{}' must be a map, got {}", what, type_name(n)));
      return false;
    }
    std::vector<std::pair<std::string, SourceLoc>> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!charge(it->first)) return false;
      if (!it->first.IsScalar()) {
        error(loc(it->first), fmt::format("keys of '{}' must be plain words, got {}", what, type_name(it->first)));
        continue;
      }
      const std::string key = it->first.Scalar();
      for (auto& [k, l] : seen)
        if (k == key) error(loc(it->first), fmt::format("duplicate key '{}' in '{}' (first at {})", key, what, l.str()));
      seen.emplace_back(key, loc(it->first));
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        auto hint = closest_word(key, known);
        error(loc(it->first), hint.empty() ? fmt::format("unknown key '{}' in '{}'; known keys: {}", key, what, one_of(known))
                                           : fmt::format("unknown key '{}' in '{}'; did you mean '{}'?", key, what, hint));
      }
    }
    return true;
  }

  std::optional<std::string> scalar(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      error(loc(n), fmt::format("'{}' must be a string, got {}", what, type_name(n)));
      return std::nullopt;
    }
    return n.Scalar();
  }

  template <typename E>
  std::optional<E> enum_value(const YAML::Node& n, const std::string& what,
                              const std::vector<std::pair<std::string_view, E>>& values) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    std::vector<std::string_view> names;
    for (auto& [name, v] : values) {
      if (*s == name) return v;
      names.push_back(name);
    }
    auto hint = closest_word(*s, names);
    error(loc(n), fmt::format("invalid {} '{}'; expected one of {}{}", what, *s, one_of(names),
                              hint.empty() ? "" : fmt::format(" (did you mean '{}'?)", hint)));
    return std::nullopt;
  }

  std::optional<bool> boolean(const YAML::Node& n, const std::string& what) {
    auto s = scalar(n, what);
    if (!s) return std::nullopt;
    if (*s == "true") return true;
    if (*s == "false") return false;
    error(loc(n), fmt::format("'{}' must be true or false, got '{}'", what, *s));
    return std::nullopt;
  }

  std::optional<long> integer(const std::string& s) {
    if (s.empty() || s.size() > 9) return std::nullopt;
    long v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  std::optional<uint16_t> port_number(const YAML::Node& n, const std::string& text) {
    auto v = integer(text);
    if (!v) {
      error(loc(n), fmt::format("invalid port '{}': expected a number 1-65535 or a range like \"8000-8080\"", text));
      return std::nullopt;
    }
    if (*v < 1 || *v > 65535) {
      error(loc(n), fmt::format("port {} out of range 1-65535", *v));
      return std::nullopt;
    }
    return static_cast<uint16_t>(*v);
  }

  std::optional<PortRange> port_range(const YAML::Node& n) {
    if (!n.IsScalar()) {
      error(loc(n), fmt::format("a port must be a number or a \"first-last\" range, got {}", type_name(n)));
      return std::nullopt;
    }
    const std::string s = n.Scalar();
    auto dash = s.find('-');
    if (dash == std::string::npos) {
      auto p = port_number(n, s);
      if (!p) return std::nullopt;
      return PortRange{*p, *p};
    }
    auto a = port_number(n, s.substr(0, dash));
    if (!a) return std::nullopt;
    auto b = port_number(n, s.substr(dash + 1));
    if (!b) return std::nullopt;
    if (*a > *b) {
      error(loc(n), fmt::format("port range '{}' is empty: {} is greater than {}; write \"{}-{}\"", s, *a, *b, *b, *a));
      return std::nullopt;
    }
    return PortRange{*a, *b};
  }

  template <typename F>
  void each(const YAML::Node& n, const std::string& what, F&& f) {
    if (!n.IsSequence()) {
      error(loc(n), fmt::format("'{}' must be a list, got {}", what, type_name(n)));
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!charge(*it)) return;
      f(*it);
    }
  }

  void load_selector(const YAML::Node& n, Selector& sel) {
    sel.loc = loc(n);
    if (!check_map(n, "subject", kSubjectKeys)) return;
    if (n.size() == 0) error(loc(n), "'subject' is empty; name a service, go_module, namespace, workload, exe or cgroup");
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      if (std::find(kSubjectKeys.begin(), kSubjectKeys.end(), key) == kSubjectKeys.end()) continue;
      auto v = scalar(it->second, "subject." + key);
      if (!v) continue;
      if (v->empty()) {
        error(loc(it->second), fmt::format("'subject.{}' is empty", key));
        continue;
      }
      if (key == "cgroup") {
        if (v->front() != '/')
          error(loc(it->second), fmt::format("cgroup path '{}' must be absolute (start with '/'), relative to the cgroup v2 root", *v));
        else if (!safe_cgroup_path(*v))
          error(loc(it->second), fmt::format("cgroup path '{}' contains quotes, spaces or control characters", *v));
        sel.cgroup = *v;
      } else {
        sel.attrs[key] = *v;
      }
    }
    if (sel.cgroup && !sel.attrs.empty())
      error(loc(n), "'subject.cgroup' cannot be combined with other selector keys; write a separate policy");
  }

  void load_peer(const YAML::Node& n, Rule& r) {
    if (!check_map(n, "peers[]", kPeerKeys)) return;
    if (n.size() != 1) {
      error(loc(n), "each peer must have exactly one of 'service', 'cidr' or 'network'");
      return;
    }
    auto it = n.begin();
    if (!it->first.IsScalar()) return;
    const std::string key = it->first.Scalar();
    Peer p;
    p.loc = loc(it->second);
    if (key == "service") p.kind = Peer::Kind::Service;
    else if (key == "cidr") p.kind = Peer::Kind::Cidr;
    else if (key == "network") p.kind = Peer::Kind::Network;
    else return;  // already reported as unknown key
    auto v = scalar(it->second, "peers[]." + key);
    if (!v) return;
    p.value = *v;
    if (p.kind == Peer::Kind::Cidr) {
      auto c = parse_cidr(*v);
      if (!c.cidr) {
        error(p.loc, fmt::format("invalid CIDR '{}': {}", *v, c.error));
        return;
      }
      if (c.host_bits_set)
        warning(p.loc, fmt::format("CIDR '{}' has host bits set; it means {}", *v, c.cidr->str()));
      p.cidr = c.cidr;
    }
    r.peers.push_back(std::move(p));
  }

  void load_rules(const YAML::Node& n, const std::string& what, std::vector<Rule>& out) {
    int index = 0;
    each(n, what, [&](const YAML::Node& rn) {
      Rule r;
      r.index = ++index;
      r.loc = loc(rn);
      if (!check_map(rn, what + "[]", kRuleKeys)) return;
      if (auto a = rn["action"]) {
        if (auto v = enum_value<Action>(a, "action", {{"allow", Action::Allow}, {"deny", Action::Deny},
                                                     {"reject", Action::Reject}, {"log", Action::Log}}))
          r.action = *v;
      } else {
        error(r.loc, fmt::format("{} rule {} has no 'action'; add one of allow, deny, reject, log", what, r.index));
      }
      if (auto p = rn["peers"]) {
        r.any_peer = false;
        each(p, "peers", [&](const YAML::Node& pn) { load_peer(pn, r); });
      }
      if (auto p = rn["ports"]) {
        r.ports_loc = loc(p);
        if (p.IsScalar()) {
          if (auto pr = port_range(p)) r.ports.push_back(*pr);
        } else {
          each(p, "ports", [&](const YAML::Node& pn) {
            if (auto pr = port_range(pn)) r.ports.push_back(*pr);
          });
        }
      }
      if (auto p = rn["protocol"]) {
        r.protocol_loc = loc(p);
        if (auto v = enum_value<Protocol>(p, "protocol", {{"tcp", Protocol::Tcp}, {"udp", Protocol::Udp}}))
          r.protocol = *v;
      }
      if (auto c = rn["comment"]) {
        if (auto v = scalar(c, "comment")) r.comment = *v;
      }
      out.push_back(std::move(r));
    });
  }

  std::optional<std::string> load_name(const YAML::Node& doc, SourceLoc& name_loc) {
    auto md = doc["metadata"];
    if (!md) {
      error(loc(doc), "missing 'metadata' with a 'name'");
      return std::nullopt;
    }
    if (!check_map(md, "metadata", kMetadataKeys)) return std::nullopt;
    auto n = md["name"];
    if (!n) {
      error(loc(md), "missing 'metadata.name'");
      return std::nullopt;
    }
    name_loc = loc(n);
    auto s = scalar(n, "metadata.name");
    if (!s) return std::nullopt;
    if (!is_dns_label(*s)) {
      error(loc(n), fmt::format("invalid name '{}': use lowercase letters, digits and '-', at most 63 characters", *s));
      return std::nullopt;
    }
    return s;
  }

  void load_policy(const YAML::Node& doc) {
    NetworkPolicy p;
    p.loc = loc(doc);
    if (!check_map(doc, "NetworkPolicy", kPolicyKeys)) return;
    auto name = load_name(doc, p.name_loc);
    if (auto s = doc["subject"]) load_selector(s, p.subject);
    else error(loc(doc), "missing 'subject': say which local workloads this policy applies to");
    if (auto m = doc["mode"]) {
      if (auto v = enum_value<Mode>(m, "mode", {{"enforce", Mode::Enforce}, {"audit", Mode::Audit}})) p.mode = *v;
    }
    if (auto f = doc["failsafe"]) {
      p.failsafe_loc = loc(f);
      if (auto v = boolean(f, "failsafe")) p.failsafe = *v;
    }
    if (auto e = doc["egress"]) load_rules(e, "egress", p.egress);
    if (auto i = doc["ingress"]) load_rules(i, "ingress", p.ingress);
    if (auto d = doc["default"]) {
      p.default_loc = loc(d);
      if (check_map(d, "default", kDefaultKeys)) {
        for (auto dir : {Direction::Ingress, Direction::Egress}) {
          auto v = d[to_string(dir)];
          if (!v) continue;
          auto a = enum_value<Action>(v, fmt::format("default.{}", to_string(dir)),
                                      {{"allow", Action::Allow}, {"deny", Action::Deny}, {"reject", Action::Reject}});
          if (!a) continue;
          (dir == Direction::Egress ? p.default_egress : p.default_ingress) = *a;
        }
      }
    } else {
      p.default_loc = p.loc;
    }
    if (!name) return;
    p.name = *name;
    out_.set.policies.push_back(std::move(p));
  }

  void load_test(const YAML::Node& doc) {
    PolicyTest t;
    t.loc = loc(doc);
    if (!check_map(doc, "PolicyTest", kTestKeys)) return;
    auto name = load_name(doc, t.name_loc);
    auto cases = doc["cases"];
    if (!cases) error(loc(doc), "missing 'cases': a PolicyTest lists connections and their expected verdict");
    else each(cases, "cases", [&](const YAML::Node& cn) {
      TestCase c;
      c.loc = loc(cn);
      if (!check_map(cn, "cases[]", kCaseKeys)) return;
      bool ok = true;
      auto req = [&](const char* key) {
        auto v = cn[key];
        if (!v) {
          error(c.loc, fmt::format("test case is missing '{}'", key));
          ok = false;
        }
        return v;
      };
      if (auto v = cn["name"]) {
        if (auto s = scalar(v, "name")) c.name = *s;
      }
      if (auto v = req("from")) { if (auto s = scalar(v, "from")) c.from = *s; else ok = false; }
      if (auto v = req("to")) { if (auto s = scalar(v, "to")) c.to = *s; else ok = false; }
      if (auto v = req("port")) {
        auto s = scalar(v, "port");
        auto p = s ? port_number(v, *s) : std::nullopt;
        if (p) c.port = *p;
        else ok = false;
      }
      if (auto v = cn["protocol"]) {
        if (auto p = enum_value<Protocol>(v, "protocol", {{"tcp", Protocol::Tcp}, {"udp", Protocol::Udp}})) c.protocol = *p;
        else ok = false;
      }
      if (auto v = req("expect")) {
        enum class Expect { Allow, Deny, AuditWouldDeny };
        if (auto e = enum_value<Expect>(v, "expect", {{"allow", Expect::Allow}, {"deny", Expect::Deny},
                                                      {"audit-would-deny", Expect::AuditWouldDeny}})) {
          c.expect_allow = *e != Expect::Deny;
          c.expect_audit = *e == Expect::AuditWouldDeny;
        }
        else ok = false;
      }
      if (c.name.empty()) c.name = fmt::format("{} -> {}:{}/{}", c.from, c.to, c.port, to_string(c.protocol));
      if (ok) t.cases.push_back(std::move(c));
    });
    if (!name) return;
    t.name = *name;
    out_.set.tests.push_back(std::move(t));
  }

  void load_document(const YAML::Node& doc) {
    if (doc.IsNull()) return;  // empty document between '---' separators
    if (!doc.IsMap()) {
      error(loc(doc), fmt::format("a policy document must be a map with apiVersion, kind and metadata, got {}", type_name(doc)));
      return;
    }
    auto api = doc["apiVersion"];
    if (!api) {
      error(loc(doc), fmt::format("missing 'apiVersion: {}'", kApiVersion));
      return;
    }
    auto v = scalar(api, "apiVersion");
    if (!v) return;
    if (*v != kApiVersion) {
      error(loc(api), fmt::format("unsupported apiVersion '{}'; expected '{}'", *v, kApiVersion));
      return;
    }
    auto kind = doc["kind"];
    if (!kind) {
      error(loc(doc), "missing 'kind' (NetworkPolicy or PolicyTest)");
      return;
    }
    auto k = enum_value<int>(kind, "kind", {{"NetworkPolicy", 0}, {"PolicyTest", 1}});
    if (!k) return;
    if (*k == 0) load_policy(doc);
    else load_test(doc);
  }

 private:
  LoadResult& out_;
  std::string file_;
  size_t nodes_ = 0;
  bool over_budget_ = false;
};

// Counts documents without building nodes.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

bool within_document_limit(std::string_view text) {
  std::stringstream in{std::string(text)};
  YAML::Parser parser(in);
  DocumentCounter counter;
  for (size_t n = 0; n <= kMaxDocumentsPerFile; ++n)
    if (!parser.HandleNextDocument(counter)) return true;
  return false;
}

}  // namespace

void load_into(LoadResult& out, std::string_view text, const std::string& file_name) {
  out.set.files.push_back(file_name);
  if (text.size() > kMaxFileBytes) {
    out.diagnostics.push_back({Severity::Error, {file_name, 0, 0},
                               fmt::format("file is {} bytes; the limit is {} bytes", text.size(), kMaxFileBytes)});
    return;
  }
  std::vector<YAML::Node> docs;
  try {
    // yaml-cpp 0.7 can report an endless stream of documents for some malformed input (found by
    // fuzz_policy); count them with a cheap event pass before building nodes.
    if (!within_document_limit(text)) {
      out.diagnostics.push_back({Severity::Error, {file_name, 0, 0},
                                 fmt::format("more than {} YAML documents in one file", kMaxDocumentsPerFile)});
      return;
    }
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    SourceLoc l{file_name, e.mark.is_null() ? 0 : e.mark.line + 1, e.mark.is_null() ? 0 : e.mark.column + 1};
    out.diagnostics.push_back({Severity::Error, l, fmt::format("YAML syntax error: {}", e.msg)});
    return;
  }
  for (const auto& d : docs) {
    DocLoader l(out, file_name);
    try {
      l.load_document(d);
    } catch (const YAML::Exception& e) {
      // Conversions are checked before use; this guards against yaml-cpp surprises on odd input.
      out.diagnostics.push_back({Severity::Error, l.loc(d), fmt::format("cannot read document: {}", e.msg)});
    }
  }
}

LoadResult load_text(std::string_view text, const std::string& file_name) {
  LoadResult r;
  load_into(r, text, file_name);
  r.set.source_hash = hash_hex(fmt::format("{}\n{}", file_name, text), 16);
  return r;
}

namespace {

const char* file_type(mode_t m) {
  if (S_ISREG(m)) return "a regular file";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISLNK(m)) return "a symlink";
  return "a special file";
}

Error unreadable(const std::string& why) { return Error{"cannot read policy file: " + why}; }

}  // namespace

bool is_policy_file_name(const std::string& name) {
  auto ext = fs::path(name).extension();
  return ext == ".yaml" || ext == ".yml";
}

Result<std::string> read_policy_file(const std::string& path, size_t limit) {
  // The type is checked before open: opening a FIFO blocks and opening a device can have side effects.
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return unreadable(fmt::format("stat failed ({})", std::strerror(errno)));
  bool link = S_ISLNK(st.st_mode);
  std::string what = "it is ";
  if (link) {
    std::error_code ec;
    auto target = fs::read_symlink(path, ec);
    what = fmt::format("it is a symlink to '{}', which is ", ec ? "?" : target.string());
    if (stat(path.c_str(), &st) != 0) {
      int e = errno;
      what.resize(what.size() - 3);  // "which is " -> "which "
      return unreadable(fmt::format("{}{} ({})", what, e == ENOENT ? "does not exist" : "cannot be resolved", std::strerror(e)));
    }
  }
  if (!S_ISREG(st.st_mode)) return unreadable(fmt::format("{}{}, not a regular file", what, file_type(st.st_mode)));
  // O_NONBLOCK: should the entry be swapped for a FIFO after the check, open does not block; fstat catches it.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (link ? 0 : O_NOFOLLOW));
  if (fd < 0) return unreadable(fmt::format("open failed ({})", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  if (fstat(fd, &st) != 0) return unreadable(fmt::format("fstat failed ({})", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) return unreadable(fmt::format("{}{}, not a regular file (changed while being opened)", what, file_type(st.st_mode)));
  std::string text;
  text.resize(std::min<size_t>(limit, static_cast<size_t>(st.st_size) + 1));
  size_t got = 0;
  while (got < limit) {
    if (got == text.size()) text.resize(std::min(limit, text.size() * 2 + 4096));  // the file grew since fstat
    ssize_t n = read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return unreadable(fmt::format("read failed ({})", std::strerror(errno)));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  return text;
}

LoadResult load_dir(const std::string& dir) {
  LoadResult r;
  std::error_code ec;
  std::vector<std::string> names;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    r.diagnostics.push_back({Severity::Error, {dir, 0, 0}, fmt::format("cannot read policy directory: {}", ec.message())});
    return r;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    // Whatever its type: an entry named like a policy file that is not one is an error, never skipped.
    if (is_policy_file_name(it->path().filename().string())) names.push_back(it->path().filename().string());
  }
  if (ec) {
    r.diagnostics.push_back({Severity::Error, {dir, 0, 0}, fmt::format("cannot read policy directory: {}", ec.message())});
    return r;
  }
  std::sort(names.begin(), names.end());
  if (names.size() > kMaxFiles) {
    r.diagnostics.push_back({Severity::Error, {dir, 0, 0}, fmt::format("{} policy files; the limit is {}", names.size(), kMaxFiles)});
    return r;
  }
  if (names.empty())
    r.diagnostics.push_back({Severity::Warning, {dir, 0, 0}, "no *.yaml files in the policy directory"});
  Hasher h;
  for (const auto& n : names) {
    auto text = read_policy_file((fs::path(dir) / n).string());
    if (!text) {
      r.diagnostics.push_back({Severity::Error, {n, 0, 0}, text.error().str()});
      continue;
    }
    h.add(n);
    h.add(*text);
    load_into(r, *text, n);
  }
  r.set.source_hash = h.hex(16);
  return r;
}

}  // namespace hostscope::policy
