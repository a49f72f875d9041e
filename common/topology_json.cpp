#include "common/topology_json.h"

#include <array>
#include <ctime>

#include <fmt/format.h>

#include "common/json_escape.h"
#include "common/json_nesting.h"

namespace hostscope::topology {

using nlohmann::json;

std::string format_time(uint64_t ns) {
  time_t secs = time_t(ns / 1'000'000'000ull);
  tm t{};
  gmtime_r(&secs, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
                     t.tm_min, t.tm_sec, ns % 1'000'000'000ull);
}

std::optional<uint64_t> parse_time(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z
  auto digits = [&](size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, se;
  if (s.size() < 20 || !digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' || !digits(8, 2, d) ||
      s[10] != 'T' || !digits(11, 2, h) || s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, se))
    return std::nullopt;
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t pos = 19;
  uint64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && n < 9) {
      frac = frac * 10 + uint64_t(s[pos] - '0');
      ++pos;
      ++n;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
  tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  t.tm_sec = se;
  time_t secs = timegm(&t);
  if (secs < 0) return std::nullopt;
  return uint64_t(secs) * 1'000'000'000ull + frac;
}

static json end_json(const EdgeEnd& e) {
  json j = {{"kind", to_string(e.kind)}, {"service", e.service}, {"namespace", e.ns}, {"pod", e.pod},
            {"address", e.address}};
  // Only where known (Kubernetes pods, Go binaries): other ends' documents stay as they were before these fields.
  if (!e.workload.empty()) j["workload"] = e.workload;
  if (!e.go_module.empty()) j["go_module"] = e.go_module;
  if (e.exact_address) j["exact_address"] = true;  // per-address network ends only (topology.network_ends)
  return j;
}

static json edge_json(const EdgeSnapshot& e) {
  json anomalies = json::array();
  for (const auto& a : e.anomalies)
    anomalies.push_back({{"reason", a.reason},
                         {"first", format_time(a.first_ns)},
                         {"last", format_time(a.last_ns)},
                         {"windows", a.windows},
                         {"value", a.value},
                         {"baseline", a.baseline}});
  json j = {{"client", end_json(e.client)},
            {"server", end_json(e.server)},
            {"port", e.port},
            {"protocol", to_string(e.protocol)},
            {"connections", e.connections},
            {"closed", e.closed},
            {"failed", e.failed},
            {"resets", e.resets},
            {"active", e.active},
            {"bytes_sent", e.bytes_sent},
            {"bytes_received", e.bytes_received},
            {"latency_us",
             {{"samples", e.latency.samples}, {"p50", e.latency.p50_us}, {"p90", e.latency.p90_us},
              {"p99", e.latency.p99_us}}},
            {"srtt_us", e.srtt_us},
            {"retransmits", e.retransmits},
            {"first_seen", format_time(e.first_seen_ns)},
            {"last_seen", format_time(e.last_seen_ns)},
            {"anomalies", anomalies}};
  if (!e.dialed.empty()) j["dialed"] = e.dialed;
  if (!e.actual.empty()) j["actual"] = e.actual;
  if (!e.policy.empty()) j["policy"] = e.policy;
  if (e.address_reused) j["address_reused"] = true;
  if (!e.observed_by.empty()) {
    json obs = json::array();
    for (const auto& o : e.observed_by)
      obs.push_back({{"node", o.node}, {"side", o.side}, {"counted", o.counted}, {"connections", o.connections},
                     {"failed", o.failed}, {"resets", o.resets}, {"active", o.active}, {"bytes_sent", o.bytes_sent},
                     {"bytes_received", o.bytes_received}});
    j["observed_by"] = obs;
  }
  return j;
}

static json node_json(const NodeSnapshot& n) {
  return {{"id", n.id}, {"kind", to_string(n.kind)}, {"service", n.service}, {"namespace", n.ns}, {"address", n.address}};
}

static json counters_json(const TopologyCounters& c) {
  return {{"events", c.events},
          {"stitched", c.stitched},
          {"dropped", c.dropped},
          {"edges_expired", c.edges_expired},
          {"edges_evicted", c.edges_evicted},
          {"connections_evicted", c.connections_evicted},
          {"node_overflow", c.node_overflow},
          {"anomalies", c.anomalies},
          {"nat_requests", c.nat_requests},
          {"nat_dropped", c.nat_dropped},
          {"nat_translated", c.nat_translated},
          {"identities_dropped", c.identities_dropped}};
}

json to_json(const TopologySnapshot& s) {
  json edges = json::array();
  for (const auto& e : s.edges) edges.push_back(edge_json(e));
  json nodes = json::array();
  for (const auto& n : s.nodes) nodes.push_back(node_json(n));
  return json{{"schema", kJsonSchema},
              {"taken_at", format_time(s.taken_ns)},
              {"counters", counters_json(s.counters)},
              {"nodes", nodes},
              {"edges", edges}};
}

namespace {

// Writes the document's bytes directly, the way nlohmann's dump(indent) lays them out (keys in sorted order, which
// the callers below keep by hand; "{}"/"[]" when empty; ": " after a key only when indented), without building a
// json tree. Strings are escaped as dump() escapes them (json_text::Bytes::Utf8); invalid UTF-8 goes through
// nlohmann's own replacement so the bytes stay identical to dump().
class Emitter {
 public:
  Emitter(int indent, const std::function<bool(std::string_view)>& out) : indent_(indent), out_(out) {}

  void open(char c) {
    before_value();
    buf_ += c;
    first_[++depth_] = true;
  }
  void close(char c) {
    if (!first_[depth_]) newline(depth_ - 1);
    --depth_;
    buf_ += c;
  }
  Emitter& key(std::string_view k) {
    element();
    put_string(k);
    buf_ += indent_ >= 0 ? ": " : ":";
    after_key_ = true;
    return *this;
  }
  void num(uint64_t v) {
    before_value();
    buf_ += fmt::format_int(v).str();
  }
  void boolean(bool v) {
    before_value();
    buf_ += v ? "true" : "false";
  }
  void num(double v) {
    before_value();
    buf_ += json(v).dump();
  }
  void str(std::string_view v) {
    before_value();
    put_string(v);
  }
  // Hands what was written so far to `out`; false once `out` said stop.
  bool flush() {
    if (ok_ && !buf_.empty()) ok_ = out_(buf_);
    buf_.clear();
    return ok_;
  }

 private:
  void put_string(std::string_view v) {
    if (!json_text::append_quoted(buf_, v, json_text::Bytes::Utf8))
      buf_ += json(std::string(v)).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  void newline(int depth) {
    if (indent_ < 0) return;
    buf_ += '\n';
    buf_.append(size_t(indent_) * size_t(depth), ' ');
  }
  void element() {
    if (!first_[depth_]) buf_ += ',';
    first_[depth_] = false;
    newline(depth_);
  }
  void before_value() {
    if (after_key_)
      after_key_ = false;
    else if (depth_ > 0)
      element();
  }

  int indent_;
  const std::function<bool(std::string_view)>& out_;
  std::string buf_;
  std::array<bool, 8> first_{};  // the document nests 4 deep
  int depth_ = 0;
  bool after_key_ = false;
  bool ok_ = true;
};

void emit_end(Emitter& w, const EdgeEnd& e) {
  w.open('{');
  w.key("address").str(e.address);
  if (e.exact_address) w.key("exact_address").boolean(true);
  if (!e.go_module.empty()) w.key("go_module").str(e.go_module);
  w.key("kind").str(to_string(e.kind));
  w.key("namespace").str(e.ns);
  w.key("pod").str(e.pod);
  w.key("service").str(e.service);
  if (!e.workload.empty()) w.key("workload").str(e.workload);
  w.close('}');
}

void emit_edge(Emitter& w, const EdgeSnapshot& e) {
  w.open('{');
  w.key("active").num(e.active);
  if (!e.actual.empty()) {
    w.key("actual").open('[');
    for (const auto& a : e.actual) w.str(a);
    w.close(']');
  }
  if (e.address_reused) w.key("address_reused").boolean(true);
  w.key("anomalies").open('[');
  for (const auto& a : e.anomalies) {
    w.open('{');
    w.key("baseline").num(a.baseline);
    w.key("first").str(format_time(a.first_ns));
    w.key("last").str(format_time(a.last_ns));
    w.key("reason").str(a.reason);
    w.key("value").num(a.value);
    w.key("windows").num(uint64_t(a.windows));
    w.close('}');
  }
  w.close(']');
  w.key("bytes_received").num(e.bytes_received);
  w.key("bytes_sent").num(e.bytes_sent);
  w.key("client");
  emit_end(w, e.client);
  w.key("closed").num(e.closed);
  w.key("connections").num(e.connections);
  if (!e.dialed.empty()) w.key("dialed").str(e.dialed);
  w.key("failed").open('{');
  for (const auto& [reason, n] : e.failed) w.key(reason).num(n);
  w.close('}');
  w.key("first_seen").str(format_time(e.first_seen_ns));
  w.key("last_seen").str(format_time(e.last_seen_ns));
  w.key("latency_us").open('{');
  w.key("p50").num(e.latency.p50_us);
  w.key("p90").num(e.latency.p90_us);
  w.key("p99").num(e.latency.p99_us);
  w.key("samples").num(e.latency.samples);
  w.close('}');
  if (!e.observed_by.empty()) {
    w.key("observed_by").open('[');
    for (const auto& o : e.observed_by) {
      w.open('{');
      w.key("active").num(o.active);
      w.key("bytes_received").num(o.bytes_received);
      w.key("bytes_sent").num(o.bytes_sent);
      w.key("connections").num(o.connections);
      w.key("counted").boolean(o.counted);
      w.key("failed").num(o.failed);
      w.key("node").str(o.node);
      w.key("resets").num(o.resets);
      w.key("side").str(o.side);
      w.close('}');
    }
    w.close(']');
  }
  if (!e.policy.empty()) w.key("policy").str(e.policy);
  w.key("port").num(uint64_t(e.port));
  w.key("protocol").str(to_string(e.protocol));
  w.key("resets").num(e.resets);
  w.key("retransmits").num(e.retransmits);
  w.key("server");
  emit_end(w, e.server);
  w.key("srtt_us").num(uint64_t(e.srtt_us));
  w.close('}');
}

void emit_node(Emitter& w, const NodeSnapshot& n) {
  w.open('{');
  w.key("address").str(n.address);
  w.key("id").str(n.id);
  w.key("kind").str(to_string(n.kind));
  w.key("namespace").str(n.ns);
  w.key("service").str(n.service);
  w.close('}');
}

void emit_counters(Emitter& w, const TopologyCounters& c) {
  w.open('{');
  w.key("anomalies").num(c.anomalies);
  w.key("connections_evicted").num(c.connections_evicted);
  w.key("dropped").num(c.dropped);
  w.key("edges_evicted").num(c.edges_evicted);
  w.key("edges_expired").num(c.edges_expired);
  w.key("events").num(c.events);
  w.key("identities_dropped").num(c.identities_dropped);
  w.key("nat_dropped").num(c.nat_dropped);
  w.key("nat_requests").num(c.nat_requests);
  w.key("nat_translated").num(c.nat_translated);
  w.key("node_overflow").num(c.node_overflow);
  w.key("stitched").num(c.stitched);
  w.close('}');
}

// The document, handed to `out` a piece (an edge, a node) at a time.
bool emit(const TopologySnapshot& s, int indent, const std::function<bool(std::string_view)>& out) {
  Emitter w(indent, out);
  w.open('{');
  w.key("counters");
  emit_counters(w, s.counters);
  w.key("edges").open('[');
  for (const auto& e : s.edges) {
    emit_edge(w, e);
    if (!w.flush()) return false;
  }
  w.close(']');
  w.key("nodes").open('[');
  for (const auto& n : s.nodes) {
    emit_node(w, n);
    if (!w.flush()) return false;
  }
  w.close(']');
  w.key("schema").str(kJsonSchema);
  w.key("taken_at").str(format_time(s.taken_ns));
  w.close('}');
  return w.flush();
}

}  // namespace

bool write_json(const TopologySnapshot& s, const std::function<bool(std::string_view)>& out) {
  return emit(s, -1, out);
}

std::string render_json(const TopologySnapshot& s, int indent) {
  // Names come from processes and pods; invalid UTF-8 is replaced rather than aborting the output.
  std::string text;
  text.reserve(1024 * (s.edges.size() + 1));  // about 0.9 KiB an edge indented: no regrowth copies of megabytes
  emit(s, indent, [&text](std::string_view piece) {
    text += piece;
    return true;
  });
  text += '\n';
  return text;
}

namespace {

// Parsed text gives unsigned numbers; a document built in code may hold signed ones.
bool non_negative_integer(const json& v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0); }

// Typed accessors that name the JSON path in their errors.
struct Reader {
  std::string err;
  bool lenient = false;  // null counts as missing (ReadOptions::lenient)

  const json* field(const json& obj, const std::string& path, const char* key, bool required) {
    if (!err.empty()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || (lenient && it->is_null())) {
      if (required) err = fmt::format("{}.{}: missing", path, key);
      return nullptr;
    }
    return &*it;
  }
  std::string str(const json& obj, const std::string& path, const char* key, bool required = true) {
    const json* v = field(obj, path, key, required);
    if (!v) return "";
    if (!v->is_string()) {
      err = fmt::format("{}.{}: expected a string", path, key);
      return "";
    }
    return v->get<std::string>();
  }
  uint64_t uint(const json& obj, const std::string& path, const char* key, uint64_t max = UINT64_MAX,
                bool required = true) {
    const json* v = field(obj, path, key, required);
    if (!v) return 0;
    if (!non_negative_integer(*v) || v->get<uint64_t>() > max) {
      err = fmt::format("{}.{}: expected an integer 0..{}", path, key, max);
      return 0;
    }
    return v->get<uint64_t>();
  }
  double num(const json& obj, const std::string& path, const char* key) {
    const json* v = field(obj, path, key, true);
    if (!v) return 0;
    if (!v->is_number()) {
      err = fmt::format("{}.{}: expected a number", path, key);
      return 0;
    }
    return v->get<double>();
  }
  uint64_t time(const json& obj, const std::string& path, const char* key, bool required = true) {
    if (!field(obj, path, key, required)) return 0;
    std::string s = str(obj, path, key);
    if (!err.empty()) return 0;
    auto t = parse_time(s);
    if (!t) err = fmt::format("{}.{}: expected an RFC 3339 UTC time like 2024-05-01T12:00:00.000000000Z", path, key);
    return t.value_or(0);
  }
  const json* object(const json& obj, const std::string& path, const char* key, bool required = true) {
    const json* v = field(obj, path, key, required);
    if (v && !v->is_object()) {
      err = fmt::format("{}.{}: expected an object", path, key);
      return nullptr;
    }
    return v;
  }
  const json* array(const json& obj, const std::string& path, const char* key, bool required = true) {
    const json* v = field(obj, path, key, required);
    if (v && !v->is_array()) {
      err = fmt::format("{}.{}: expected an array", path, key);
      return nullptr;
    }
    return v;
  }

  EdgeEnd end(const json& obj, const std::string& path) {
    const bool req = !lenient;
    EdgeEnd e;
    std::string kind = str(obj, path, "kind");
    if (!err.empty()) return e;
    auto k = node_kind_from_string(kind);
    if (!k) {
      err = fmt::format("{}.kind: unknown node kind '{}' (service, network, external)", path, kind);
      return e;
    }
    e.kind = *k;
    e.service = str(obj, path, "service");
    e.ns = str(obj, path, "namespace", req);
    e.pod = str(obj, path, "pod", req);
    e.address = str(obj, path, "address", req);
    e.workload = str(obj, path, "workload", false);  // optional in both forms: absent when unknown
    e.go_module = str(obj, path, "go_module", false);
    if (const json* x = field(obj, path, "exact_address", false)) {  // optional: absent when false
      if (x->is_boolean()) e.exact_address = x->get<bool>();
      else err = fmt::format("{}.exact_address: expected true or false", path);
    }
    return e;
  }
};

}  // namespace

Result<TopologySnapshot> from_json(const json& j, ReadOptions opts) {
  if (!j.is_object()) return errorf("topology JSON: expected an object at the top level");
  Reader r;
  r.lenient = opts.lenient;
  const bool req = !opts.lenient;  // fields only the strict form requires
  TopologySnapshot s;
  std::string schema = r.str(j, "$", "schema");
  if (!r.err.empty()) return errorf("topology JSON: {}", r.err);
  if (schema != kJsonSchema) return errorf("topology JSON: $.schema: unsupported schema '{}' (this build reads {})", schema, kJsonSchema);
  s.taken_ns = r.time(j, "$", "taken_at", req);
  if (const json* c = r.object(j, "$", "counters", false)) {
    auto& k = s.counters;
    const std::string p = "$.counters";
    k.events = r.uint(*c, p, "events", UINT64_MAX, false);
    k.stitched = r.uint(*c, p, "stitched", UINT64_MAX, false);
    k.dropped = r.uint(*c, p, "dropped", UINT64_MAX, false);
    k.edges_expired = r.uint(*c, p, "edges_expired", UINT64_MAX, false);
    k.edges_evicted = r.uint(*c, p, "edges_evicted", UINT64_MAX, false);
    k.connections_evicted = r.uint(*c, p, "connections_evicted", UINT64_MAX, false);
    k.node_overflow = r.uint(*c, p, "node_overflow", UINT64_MAX, false);
    k.anomalies = r.uint(*c, p, "anomalies", UINT64_MAX, false);
    k.nat_requests = r.uint(*c, p, "nat_requests", UINT64_MAX, false);
    k.nat_dropped = r.uint(*c, p, "nat_dropped", UINT64_MAX, false);
    k.nat_translated = r.uint(*c, p, "nat_translated", UINT64_MAX, false);
    k.identities_dropped = r.uint(*c, p, "identities_dropped", UINT64_MAX, false);
  }
  const json* edges = r.array(j, "$", "edges");
  if (!r.err.empty()) return errorf("topology JSON: {}", r.err);
  for (size_t i = 0; i < edges->size(); ++i) {
    const json& ej = (*edges)[i];
    std::string p = fmt::format("$.edges[{}]", i);
    if (!ej.is_object()) return errorf("topology JSON: {}: expected an object", p);
    EdgeSnapshot e;
    if (const json* c = r.object(ej, p, "client")) e.client = r.end(*c, p + ".client");
    if (const json* c = r.object(ej, p, "server")) e.server = r.end(*c, p + ".server");
    e.port = uint16_t(r.uint(ej, p, "port", 65535));
    std::string proto = r.str(ej, p, "protocol");
    if (r.err.empty()) {
      auto pr = protocol_from_string(proto);
      if (!pr) r.err = fmt::format("{}.protocol: unknown protocol '{}' (tcp, udp)", p, proto);
      else e.protocol = *pr;
    }
    e.connections = r.uint(ej, p, "connections");
    e.closed = r.uint(ej, p, "closed", UINT64_MAX, req);
    if (const json* f = r.object(ej, p, "failed", req)) {
      for (auto it = f->begin(); it != f->end() && r.err.empty(); ++it) {
        if (!non_negative_integer(it.value())) {
          r.err = fmt::format("{}.failed.{}: expected an integer", p, it.key());
          break;
        }
        e.failed[it.key()] = it.value().get<uint64_t>();
      }
    }
    e.resets = r.uint(ej, p, "resets", UINT64_MAX, req);
    e.active = r.uint(ej, p, "active", UINT64_MAX, req);
    e.bytes_sent = r.uint(ej, p, "bytes_sent", UINT64_MAX, req);
    e.bytes_received = r.uint(ej, p, "bytes_received", UINT64_MAX, req);
    if (const json* l = r.object(ej, p, "latency_us", req)) {
      e.latency.samples = r.uint(*l, p + ".latency_us", "samples");
      e.latency.p50_us = r.uint(*l, p + ".latency_us", "p50");
      e.latency.p90_us = r.uint(*l, p + ".latency_us", "p90");
      e.latency.p99_us = r.uint(*l, p + ".latency_us", "p99");
    }
    e.srtt_us = uint32_t(r.uint(ej, p, "srtt_us", UINT32_MAX, req));
    e.retransmits = r.uint(ej, p, "retransmits", UINT64_MAX, req);
    e.first_seen_ns = r.time(ej, p, "first_seen", req);
    e.last_seen_ns = r.time(ej, p, "last_seen", req);
    e.dialed = r.str(ej, p, "dialed", false);
    e.policy = r.str(ej, p, "policy", false);
    if (!e.policy.empty() && e.policy != "denied" && e.policy != "would-deny")
      r.err = fmt::format("{}.policy: unknown verdict '{}' (denied, would-deny)", p, e.policy);
    if (const json* a = r.array(ej, p, "actual", false)) {
      for (size_t k = 0; k < a->size() && r.err.empty(); ++k) {
        const json& v = (*a)[k];
        if (!v.is_string() || !parse_addr_port(v.get<std::string>()))
          r.err = fmt::format("{}.actual[{}]: expected \"address:port\"", p, k);
        else e.actual.push_back(v.get<std::string>());
      }
    }
    if (const json* an = r.array(ej, p, "anomalies", false)) {
      for (size_t k = 0; k < an->size() && r.err.empty(); ++k) {
        const json& aj = (*an)[k];
        std::string ap = fmt::format("{}.anomalies[{}]", p, k);
        if (!aj.is_object()) {
          r.err = ap + ": expected an object";
          break;
        }
        AnomalyFlag f;
        f.reason = r.str(aj, ap, "reason");
        f.first_ns = r.time(aj, ap, "first");
        f.last_ns = r.time(aj, ap, "last");
        f.windows = uint32_t(r.uint(aj, ap, "windows", UINT32_MAX));
        f.value = r.num(aj, ap, "value");
        f.baseline = r.num(aj, ap, "baseline");
        e.anomalies.push_back(std::move(f));
      }
    }
    if (const json* reused = r.field(ej, p, "address_reused", false)) {
      if (!reused->is_boolean()) r.err = fmt::format("{}.address_reused: expected true or false", p);
      else e.address_reused = reused->get<bool>();
    }
    if (const json* ob = r.array(ej, p, "observed_by", false)) {
      for (size_t k = 0; k < ob->size() && r.err.empty(); ++k) {
        const json& oj = (*ob)[k];
        std::string op = fmt::format("{}.observed_by[{}]", p, k);
        if (!oj.is_object()) {
          r.err = op + ": expected an object";
          break;
        }
        NodeObservation o;
        o.node = r.str(oj, op, "node");
        o.side = r.str(oj, op, "side");
        if (r.err.empty() && o.side != "client" && o.side != "server" && o.side != "both")
          r.err = fmt::format("{}.side: unknown side '{}' (client, server, both)", op, o.side);
        if (const json* c = r.field(oj, op, "counted", true); c && !c->is_boolean())
          r.err = fmt::format("{}.counted: expected true or false", op);
        else if (c)
          o.counted = c->get<bool>();
        o.connections = r.uint(oj, op, "connections");
        o.failed = r.uint(oj, op, "failed");
        o.resets = r.uint(oj, op, "resets");
        o.active = r.uint(oj, op, "active");
        o.bytes_sent = r.uint(oj, op, "bytes_sent");
        o.bytes_received = r.uint(oj, op, "bytes_received");
        e.observed_by.push_back(std::move(o));
      }
    }
    if (!r.err.empty()) return errorf("topology JSON: {}", r.err);
    s.edges.push_back(std::move(e));
  }
  canonicalize(s);
  return s;
}

Result<TopologySnapshot> parse_json(std::string_view text) {
  if (text.size() > kMaxJsonBytes) return errorf("topology JSON: {} bytes is over the {} byte limit", text.size(), kMaxJsonBytes);
  if (!json_nesting_within(text, kMaxJsonDepth)) return errorf("topology JSON: nested deeper than {} levels", kMaxJsonDepth);
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    try {
      (void)json::parse(text);
    } catch (const json::parse_error& e) {
      return errorf("topology JSON: {}", e.what());
    }
    return errorf("topology JSON: not valid JSON");
  }
  return from_json(j);
}

}  // namespace hostscope::topology
