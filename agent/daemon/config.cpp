#include "agent/daemon/config.h"

#include "agent/topology/networks.h"
#include "exporters/metrics_server.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <set>
#include <string_view>

#include "agent/util/file.h"
#include "common/time_arg.h"

namespace hostscope::daemon {

namespace {

class Checker {
 public:
  explicit Checker(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Node& n, const std::string& msg) {
    auto m = n.Mark();
    errors_.push_back(m.is_null() ? fmt::format("{}: {}", file_, msg)
                                  : fmt::format("{}:{}:{}: {}", file_, m.line + 1, m.column + 1, msg));
  }

  // A mapping whose keys must all be known; returns false (and records) when it is not a map.
  bool map(const YAML::Node& n, const std::string& where, const std::set<std::string>& known) {
    if (!n.IsMap()) {
      error(n, fmt::format("{} must be a mapping", where));
      return false;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto key = it->first.as<std::string>("");
      if (!known.count(key)) {
        std::string list;
        for (auto& k : known) list += (list.empty() ? "" : ", ") + k;
        error(it->first, fmt::format("unknown key '{}' in {} (known keys: {})", key, where, list));
      }
    }
    return true;
  }

  template <typename T>
  void get(const YAML::Node& parent, const char* key, T& out, const std::string& where) {
    auto n = parent[key];
    if (!n) return;
    try {
      out = n.as<T>();
    } catch (const YAML::Exception&) {
      error(n, fmt::format("{}.{} has the wrong type", where, key));
    }
  }

  // An integer key: decimal digits only, within [lo, hi]. Anything else (negative, past 32 bits, hex, a fraction,
  // text) is one error naming the range, so no value can wrap into a valid-looking one.
  void integer(const YAML::Node& parent, const char* key, uint32_t& out, uint32_t lo, uint32_t hi, const std::string& where) {
    auto n = parent[key];
    if (!n) return;
    uint64_t v = 0;
    const std::string s = n.IsScalar() ? n.Scalar() : std::string();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || s[0] < '0' || s[0] > '9' || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
      error(n, fmt::format("{}.{} must be an integer from {} to {}", where, key, lo, hi));
      return;
    }
    out = static_cast<uint32_t>(v);
  }

  // A duration key ("7d", "12h", "90m"; common/time_arg.h) within [lo, hi].
  void duration(const YAML::Node& parent, const char* key, uint64_t& out, uint64_t lo, uint64_t hi, const char* range,
                const std::string& where) {
    auto n = parent[key];
    if (!n) return;
    auto d = n.IsScalar() ? parse_duration_ns(n.Scalar()) : std::nullopt;
    if (!d || *d < lo || *d > hi) {
      error(n, fmt::format("{}.{} must be a duration like 12h or 7d, from {}", where, key, range));
      return;
    }
    out = *d;
  }

  // A size key: bytes, or a number with KiB, MiB or GiB ("256MiB"), within [lo, hi].
  void bytes(const YAML::Node& parent, const char* key, uint64_t& out, uint64_t lo, uint64_t hi, const char* range,
             const std::string& where) {
    auto n = parent[key];
    if (!n) return;
    std::string s = n.IsScalar() ? n.Scalar() : std::string();
    uint64_t unit = 1;
    for (auto [suffix, u] : {std::pair{"KiB", 1ull << 10}, std::pair{"MiB", 1ull << 20}, std::pair{"GiB", 1ull << 30}})
      if (s.size() > 3 && s.ends_with(suffix)) {
        unit = u;
        s.resize(s.size() - 3);
      }
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || s[0] < '0' || s[0] > '9' || ec != std::errc() || end != s.data() + s.size() || v > hi / unit ||
        v * unit < lo) {
      error(n, fmt::format("{}.{} must be a size in bytes or with KiB, MiB or GiB, from {}", where, key, range));
      return;
    }
    out = v * unit;
  }

  bool ok() const { return errors_.empty(); }
  std::string joined() const {
    std::string s;
    for (auto& e : errors_) s += (s.empty() ? "" : "\n") + e;
    return s;
  }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

// The strict CIDR parser the topology uses (common/net.h), so a network the config accepts is one it can use.
std::string cidr_error(const std::string& s) {
  auto r = Cidr::parse(s);
  return r ? std::string() : r.error().str();
}

// Whether the quoted scalar that opens at text[pos] is closed (YAML: "\\" escapes in double quotes, '' is a
// quote inside single quotes).
bool quote_closed(std::string_view text, size_t pos) {
  const char q = text[pos];
  for (size_t i = pos + 1; i < text.size(); i++) {
    if (q == '"' && text[i] == '\\') {
      i++;
    } else if (text[i] == q) {
      if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
        i++;
        continue;
      }
      return true;
    }
  }
  return false;
}

// yaml-cpp 0.7 takes a quoted scalar that runs to the end of the file as closed there (issue 15: an unterminated
// `"` was accepted, swallowing the rest of the file): the mark of the first quoted key or value that never closes.
std::optional<YAML::Mark> unterminated_quote(const YAML::Node& root, std::string_view text) {
  std::vector<YAML::Node> todo{root};
  while (!todo.empty()) {
    const YAML::Node n = todo.back();
    todo.pop_back();
    if (n.IsScalar()) {
      const auto m = n.Mark();
      // Quoted and block scalars carry the non-specific tag "!"; only the quoted ones start with a quote.
      if (n.Tag() == "!" && !m.is_null() && m.pos >= 0 && size_t(m.pos) < text.size() &&
          (text[m.pos] == '"' || text[m.pos] == '\'') && !quote_closed(text, size_t(m.pos)))
        return m;
    } else if (n.IsSequence()) {
      for (const auto& v : n) todo.push_back(v);
    } else if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it) {
        todo.push_back(it->first);
        todo.push_back(it->second);
      }
    }
  }
  return std::nullopt;
}

}  // namespace

Result<Config> parse_config(const std::string& text, const std::string& name) {
  Config c;
  c.source = name;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  c.node_name = host;
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return errorf("{}:{}:{}: invalid YAML: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  if (auto open = unterminated_quote(root, text))
    return errorf("{}:{}:{}: invalid YAML: unterminated quoted string", name, open->line + 1, open->column + 1);
  c.raw = root;
  if (!root || root.IsNull()) return c;  // empty file: all defaults
  Checker ck(name);
  if (!ck.map(root, "the configuration",
              {"node_name", "kernel", "api", "topology", "networks", "identity", "service_rules", "metrics", "events", "policy",
               "history"}))
    return errorf("{}", ck.joined());

  ck.get(root, "node_name", c.node_name, "config");
  if (auto k = root["kernel"];
      k && ck.map(k, "kernel", {"attach", "socket_table_size", "edge_table_size", "ring_buffer_mb",
                                  "process_ring_buffer_mb"})) {
    std::string attach = "auto";
    ck.get(k, "attach", attach, "kernel");
    if (auto m = bpf::parse_attach_mode(attach)) c.kernel.attach = *m;
    else if (k["attach"]) ck.error(k["attach"], fmt::format("kernel.attach must be one of {}", bpf::kAttachModeNames));
    ck.integer(k, "socket_table_size", c.kernel.socket_table_size, 1024, 4u << 20, "kernel");
    ck.integer(k, "edge_table_size", c.kernel.edge_table_size, 0, 1u << 20, "kernel");
    if (c.kernel.edge_table_size && c.kernel.edge_table_size < 1024)
      ck.error(k["edge_table_size"], "kernel.edge_table_size must be 0 (off) or from 1024 to 1048576");
    for (auto [key, mb] : {std::pair{"ring_buffer_mb", &c.kernel.ring_buffer_mb},
                           std::pair{"process_ring_buffer_mb", &c.kernel.process_ring_buffer_mb}}) {
      ck.integer(k, key, *mb, 1, 1024, "kernel");
      if (k[key] && (*mb & (*mb - 1)))
        ck.error(k[key], std::string("kernel.") + key + " must be a power of two from 1 to 1024");
    }
  }
  if (auto m = root["metrics"]; m && ck.map(m, "metrics", {"listen", "max_series"})) {
    ck.get(m, "listen", c.metrics.listen, "metrics");
    if (m["listen"] && !c.metrics.listen.empty())
      if (auto a = exporters::parse_listen(c.metrics.listen); !a) ck.error(m["listen"], "metrics." + a.error().str());
    ck.integer(m, "max_series", c.metrics.max_series, 0, 10'000'000, "metrics");
  }
  if (auto e = root["events"]; e && ck.map(e, "events", {"output", "file", "max_file_mb", "max_files", "queue"})) {
    ck.get(e, "output", c.events.output, "events");
    if (e["output"] && c.events.output != "none" && c.events.output != "stdout" && c.events.output != "file")
      ck.error(e["output"], "events.output must be one of none, stdout, file");
    ck.get(e, "file", c.events.file, "events");
    if (e["file"] && c.events.file.empty()) ck.error(e["file"], "events.file must not be empty");
    ck.integer(e, "max_file_mb", c.events.max_file_mb, 1, 1u << 20, "events");
    ck.integer(e, "max_files", c.events.max_files, 1, 1000, "events");
    ck.integer(e, "queue", c.events.queue, 16, 16u << 20, "events");
  }
  if (auto a = root["api"]; a && ck.map(a, "api", {"socket", "group", "max_request_bytes", "max_clients", "stream_queue",
                                                 "request_timeout_ms", "max_snapshots"})) {
    ck.get(a, "socket", c.api.socket, "api");
    ck.get(a, "group", c.api.group, "api");
    ck.integer(a, "max_request_bytes", c.api.max_request_bytes, 256, 1u << 20, "api");
    ck.integer(a, "max_clients", c.api.max_clients, 1, 1024, "api");
    ck.integer(a, "stream_queue", c.api.stream_queue, 16, 1u << 20, "api");
    ck.integer(a, "request_timeout_ms", c.api.request_timeout_ms, 100, 60000, "api");
    ck.integer(a, "max_snapshots", c.api.max_snapshots, 1, 64, "api");
  }
  if (auto t = root["topology"]; t && ck.map(t, "topology", {"max_edges", "max_nodes", "idle_expiry_seconds", "max_identities",
                                                                      "network_ends", "anomalies"})) {
    ck.integer(t, "max_edges", c.topology.max_edges, 16, 10'000'000, "topology");
    ck.integer(t, "max_nodes", c.topology.max_nodes, 16, 10'000'000, "topology");
    ck.integer(t, "idle_expiry_seconds", c.topology.idle_expiry_seconds, 1, 30 * 86400, "topology");
    ck.integer(t, "max_identities", c.topology.max_identities, 1, 65535, "topology");
    std::string ends = "network";
    ck.get(t, "network_ends", ends, "topology");
    if (auto m = topology::parse_network_ends(ends)) c.topology.network_ends = *m;
    else ck.error(t["network_ends"], fmt::format("topology.network_ends must be one of {}", topology::kNetworkEndsNames));
  }
  if (auto n = root["networks"]; n) {
    if (!n.IsMap()) {
      ck.error(n, "networks must map a name to a list of CIDRs");
    } else {
      for (auto it = n.begin(); it != n.end(); ++it) {
        // Copies: `it->second` lives in a temporary proxy, so iterating it directly would dangle.
        const YAML::Node key = it->first, val = it->second;
        auto nm = key.as<std::string>("");
        std::vector<std::string> cidrs;
        if (val.IsScalar()) cidrs.push_back(val.as<std::string>());
        else if (val.IsSequence())
          for (auto v : val) {
            if (!v.IsScalar()) {
              ck.error(v, fmt::format("networks.{}: each entry must be a CIDR", nm));
              continue;
            }
            if (auto e = cidr_error(v.as<std::string>()); !e.empty()) ck.error(v, fmt::format("networks.{}: {}", nm, e));
            cidrs.push_back(v.as<std::string>());
          }
        else ck.error(val, fmt::format("networks.{} must be a CIDR or a list of CIDRs", nm));
        if (val.IsScalar())
          if (auto e = cidr_error(cidrs.back()); !e.empty()) ck.error(val, fmt::format("networks.{}: {}", nm, e));
        c.networks[nm] = cidrs;
      }
    }
  }
  if (auto i = root["identity"]; i && ck.map(i, "identity", {"kubelet_root", "max_processes"})) {
    ck.get(i, "kubelet_root", c.identity.kubelet_root, "identity");
    ck.integer(i, "max_processes", c.identity.max_processes, 64, 4u << 20, "identity");
  }
  if (auto h = root["history"]; h && ck.map(h, "history", {"enabled", "path", "retention", "max_bytes"})) {
    ck.get(h, "enabled", c.history.enabled, "history");
    ck.get(h, "path", c.history.path, "history");
    if (h["path"] && (c.history.path.empty() || c.history.path[0] != '/'))
      ck.error(h["path"], "history.path must be an absolute path");
    ck.duration(h, "retention", c.history.retention_ns, 3'600'000'000'000ull, 400ull * 86'400'000'000'000ull,
                "1h to 400d", "history");
    ck.bytes(h, "max_bytes", c.history.max_bytes, 1ull << 20, 1ull << 40, "1MiB to 1024GiB", "history");
  }
  auto pol = policy::parse_reconcile_config(root["policy"], name);
  if (!pol) return errorf("{}", ck.ok() ? pol.error().str() : ck.joined() + "\n" + pol.error().str());
  c.policy = std::move(*pol);
  c.service_rules = root["service_rules"];
  if (!ck.ok()) return errorf("{}", ck.joined());
  return c;
}

Result<Config> load_config(const std::string& path) {
  auto text = read_regular_file(path, kMaxConfigBytes);
  if (!text) return make_error("config " + text.error().message, text.error().err);
  return parse_config(*text, path);
}

}  // namespace hostscope::daemon
