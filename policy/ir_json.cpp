#include "policy/ir_json.h"

#include <filesystem>
#include <iterator>
#include <string_view>
#include <fstream>

#include <fmt/format.h>

#include "common/json_escape.h"
#include "policy/state_file.h"

namespace hostscope::policy {
namespace {

using json = nlohmann::json;

// rule: [src, dst, src_set, dst_set, proto, [[first,last],...], cgroup, established, target, jump, owner, mode, what, hash,
//        icmpv6 type or -1, loc, dst_local, in_not_loopback, src_local (each absent in IRs stored before it existed)]
json rule_json(const IrRule& r) {
  json ports = json::array();
  for (const auto& p : r.match.dports) ports.push_back({p.first, p.last});
  const auto& m = r.match;
  return {m.src ? m.src->str() : "", m.dst ? m.dst->str() : "", m.src_set, m.dst_set, int(m.proto), std::move(ports),
          m.cgroup, m.established, int(r.target), r.jump, r.owner, int(r.mode), r.what, r.hash,
          m.icmpv6_type ? int(*m.icmpv6_type) : -1, r.loc, m.dst_local, m.in_not_loopback, m.src_local};
}

struct Reader {
  std::string where;
  template <typename T>
  T get(const json& a, size_t i, const char* what) const {
    if (!a.is_array() || i >= a.size()) throw std::runtime_error(fmt::format("{}: {} missing", where, what));
    try {
      return a[i].get<T>();
    } catch (const json::exception&) {
      throw std::runtime_error(fmt::format("{}: {} has the wrong type", where, what));
    }
  }
  std::optional<Cidr> cidr(const json& a, size_t i, const char* what) const {
    auto s = get<std::string>(a, i, what);
    if (s.empty()) return std::nullopt;
    auto c = parse_cidr(s);
    if (!c.cidr) throw std::runtime_error(fmt::format("{}: {} '{}': {}", where, what, s, c.error));
    return c.cidr;
  }
  template <typename E>
  E enumeration(const json& a, size_t i, const char* what, int max) const {
    int v = get<int>(a, i, what);
    if (v < 0 || v > max) throw std::runtime_error(fmt::format("{}: {} {} out of range", where, what, v));
    return E(v);
  }
};

IrRule rule_from(const json& a, const std::string& where) {
  Reader r{where};
  IrRule x;
  x.match.src = r.cidr(a, 0, "src");
  x.match.dst = r.cidr(a, 1, "dst");
  x.match.src_set = r.get<std::string>(a, 2, "src_set");
  x.match.dst_set = r.get<std::string>(a, 3, "dst_set");
  x.match.proto = r.enumeration<Protocol>(a, 4, "protocol", int(Protocol::Icmpv6));
  auto ports = r.get<json>(a, 5, "ports");
  if (!ports.is_array()) throw std::runtime_error(where + ": ports must be an array");
  for (size_t i = 0; i < ports.size(); i++) {
    Reader pr{fmt::format("{}.ports[{}]", where, i)};
    auto first = pr.get<int>(ports[i], 0, "first"), last = pr.get<int>(ports[i], 1, "last");
    if (first < 0 || last > 65535 || first > last) throw std::runtime_error(pr.where + ": bad port range");
    x.match.dports.push_back({uint16_t(first), uint16_t(last)});
  }
  x.match.cgroup = r.get<std::string>(a, 6, "cgroup");
  x.match.established = r.get<bool>(a, 7, "established");
  x.target = r.enumeration<IrTarget>(a, 8, "target", int(IrTarget::Jump));
  x.jump = r.get<std::string>(a, 9, "jump");
  x.owner = r.get<std::string>(a, 10, "owner");
  x.mode = r.enumeration<Mode>(a, 11, "mode", int(Mode::Audit));
  x.what = r.get<std::string>(a, 12, "what");
  x.hash = r.get<std::string>(a, 13, "hash");
  if (a.size() > 14) {
    int t = r.get<int>(a, 14, "icmpv6 type");
    if (t < -1 || t > 255) throw std::runtime_error(fmt::format("{}: icmpv6 type {} out of range", where, t));
    if (t >= 0) x.match.icmpv6_type = uint8_t(t);
  }
  if (a.size() > 15) x.loc = r.get<std::string>(a, 15, "loc");
  if (a.size() > 16) x.match.dst_local = r.get<bool>(a, 16, "dst_local");
  if (a.size() > 17) x.match.in_not_loopback = r.get<bool>(a, 17, "in_not_loopback");
  if (a.size() > 18) x.match.src_local = r.get<bool>(a, 18, "src_local");
  return x;
}

json table_json(const IrTable& t) {
  json chains = json::array(), sets = json::array();
  for (const auto& c : t.chains) {
    json rules = json::array();
    for (const auto& r : c.rules) rules.push_back(rule_json(r));
    chains.push_back({{"name", c.name}, {"rules", std::move(rules)}});
  }
  for (const auto& s : t.sets) {
    json members = json::array();
    for (const auto& m : s.members) members.push_back(m.str());
    sets.push_back({{"name", s.name}, {"members", std::move(members)}});
  }
  return {{"chains", std::move(chains)}, {"sets", std::move(sets)}};
}

IrTable table_from(const json& j, Family f, const std::string& where) {
  IrTable t;
  t.family = f;
  if (!j.is_object() || !j.contains("chains") || !j["chains"].is_array()) throw std::runtime_error(where + ".chains missing");
  for (size_t i = 0; i < j["chains"].size(); i++) {
    const auto& c = j["chains"][i];
    std::string cw = fmt::format("{}.chains[{}]", where, i);
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string() || !c.contains("rules") || !c["rules"].is_array())
      throw std::runtime_error(cw + ": expected {name, rules}");
    IrChain chain{c["name"].get<std::string>(), {}};
    for (size_t k = 0; k < c["rules"].size(); k++) chain.rules.push_back(rule_from(c["rules"][k], fmt::format("{}.rules[{}]", cw, k)));
    t.chains.push_back(std::move(chain));
  }
  if (j.contains("sets")) {
    if (!j["sets"].is_array()) throw std::runtime_error(where + ".sets must be an array");
    for (size_t i = 0; i < j["sets"].size(); i++) {
      const auto& s = j["sets"][i];
      std::string sw = fmt::format("{}.sets[{}]", where, i);
      if (!s.is_object() || !s.contains("name") || !s["name"].is_string() || !s.contains("members") || !s["members"].is_array())
        throw std::runtime_error(sw + ": expected {name, members}");
      IrSet set{s["name"].get<std::string>(), f, {}};
      for (size_t k = 0; k < s["members"].size(); k++) set.members.push_back(*Reader{sw}.cidr(s["members"], k, "member"));
      t.sets.push_back(std::move(set));
    }
  }
  return t;
}

// ---- the same document as ir_to_json(ir).dump(), written directly: a 10k-rule IR is stored on every apply, and building
// it as JSON values first (19 per rule) cost more than the rest of a one-rule change.

// Appends `s` as a JSON string the way nlohmann's dump() does; false when `s` is not valid UTF-8 (dump() throws
// then: the caller falls back to it).
bool put_string(std::string& out, std::string_view s) { return json_text::append_quoted(out, s, json_text::Bytes::Utf8); }

bool put_rule(std::string& out, const IrRule& r) {
  const auto& m = r.match;
  bool ok = true;
  auto str = [&](std::string_view v) {
    ok = put_string(out, v) && ok;
    out += ',';
  };
  auto boolean = [&](bool v, char sep) {
    out += v ? "true" : "false";
    out += sep;
  };
  out += '[';
  str(m.src ? m.src->str() : "");
  str(m.dst ? m.dst->str() : "");
  str(m.src_set);
  str(m.dst_set);
  fmt::format_to(std::back_inserter(out), "{},[", int(m.proto));
  for (size_t i = 0; i < m.dports.size(); ++i) fmt::format_to(std::back_inserter(out), "{}[{},{}]", i ? "," : "", m.dports[i].first, m.dports[i].last);
  out += "],";
  str(m.cgroup);
  boolean(m.established, ',');
  fmt::format_to(std::back_inserter(out), "{},", int(r.target));
  str(r.jump);
  str(r.owner);
  fmt::format_to(std::back_inserter(out), "{},", int(r.mode));
  str(r.what);
  str(r.hash);
  fmt::format_to(std::back_inserter(out), "{},", m.icmpv6_type ? int(*m.icmpv6_type) : -1);
  str(r.loc);
  boolean(m.dst_local, ',');
  boolean(m.in_not_loopback, ',');
  boolean(m.src_local, ']');
  return ok;
}

bool put_table(std::string& out, const IrTable& t) {
  bool ok = true;
  out += "{\"chains\":[";
  for (size_t i = 0; i < t.chains.size(); ++i) {
    out += i ? ",{\"name\":" : "{\"name\":";
    ok = put_string(out, t.chains[i].name) && ok;
    out += ",\"rules\":[";
    for (size_t k = 0; k < t.chains[i].rules.size(); ++k) {
      if (k) out += ',';
      ok = put_rule(out, t.chains[i].rules[k]) && ok;
    }
    out += "]}";
  }
  out += "],\"sets\":[";
  for (size_t i = 0; i < t.sets.size(); ++i) {
    out += i ? ",{\"members\":[" : "{\"members\":[";
    for (size_t k = 0; k < t.sets[i].members.size(); ++k) {
      if (k) out += ',';
      ok = put_string(out, t.sets[i].members[k].str()) && ok;
    }
    out += "],\"name\":";
    ok = put_string(out, t.sets[i].name) && ok;
    out += '}';
  }
  out += "]}";
  return ok;
}

}  // namespace

std::string ir_to_text(const Ir& ir) {
  std::string out = "{\"ipv4\":";
  bool ok = put_table(out, ir.v4);
  out += ",\"ipv6\":";
  ok = put_table(out, ir.v6) && ok;
  out += ",\"modes\":{";
  bool first = true;
  for (const auto& [p, m] : ir.policy_modes) {  // a std::map: in key order, as a JSON object dumps
    if (!first) out += ',';
    first = false;
    ok = put_string(out, p) && ok;
    out += ':';
    ok = put_string(out, to_string(m)) && ok;
  }
  out += "},\"schema\":\"hostscope.ir/v1\",\"source_hash\":";
  ok = put_string(out, ir.source_hash) && ok;
  out += '}';
  return ok ? out : ir_to_json(ir).dump();
}

json ir_to_json(const Ir& ir) {
  json modes = json::object();
  for (const auto& [p, m] : ir.policy_modes) modes[p] = to_string(m);
  return {{"schema", "hostscope.ir/v1"}, {"source_hash", ir.source_hash}, {"modes", std::move(modes)},
          {"ipv4", table_json(ir.v4)}, {"ipv6", table_json(ir.v6)}};
}

Result<Ir> ir_from_json(const json& j) {
  try {
    if (!j.is_object() || j.value("schema", "") != "hostscope.ir/v1") return Error{"IR: not a hostscope.ir/v1 document"};
    Ir ir;
    ir.source_hash = j.value("source_hash", "");
    if (j.contains("modes") && j["modes"].is_object())
      for (auto it = j["modes"].begin(); it != j["modes"].end(); ++it)
        ir.policy_modes[it.key()] = it.value() == "audit" ? Mode::Audit : Mode::Enforce;
    ir.v4 = table_from(j.value("ipv4", json()), Family::V4, "ipv4");
    ir.v6 = table_from(j.value("ipv6", json()), Family::V6, "ipv6");
    return ir;
  } catch (const std::exception& e) {
    return Error{fmt::format("IR: {}", e.what())};
  }
}

std::string ir_path(const std::string& state_dir, int generation) {
  return (std::filesystem::path(state_dir) / fmt::format("gen-{}.ir.json", generation)).string();
}

Status store_ir(const std::string& state_dir, int generation, const Ir& ir) {
  return write_file_atomic(ir_path(state_dir, generation), ir_to_text(ir));
}

Result<Ir> load_ir(const std::string& state_dir, int generation) {
  auto path = ir_path(state_dir, generation);
  std::ifstream f(path);
  if (!f) return Error{fmt::format("policy IR {} open failed", path)};
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded()) return Error{fmt::format("policy IR {} is not valid JSON", path)};
  auto ir = ir_from_json(j);
  if (!ir) return Error{fmt::format("policy IR {}: {}", path, ir.error().str())};
  return ir;
}

int current_generation(const std::string& state_dir) {
  std::ifstream f(std::filesystem::path(state_dir) / "current");
  int n = 0;
  if (f >> n && n > 0) return n;
  return 0;
}

}  // namespace hostscope::policy
