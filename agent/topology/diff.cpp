#include "agent/topology/diff.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "agent/topology/render.h"
#include "common/topology_json.h"

namespace hostscope::topology {

namespace {

using Key = std::tuple<std::string, std::string, uint16_t, Protocol>;

Key key_of(const EdgeSnapshot& e) { return {node_id(e.client), node_id(e.server), e.port, e.protocol}; }

DiffSide side_of(const EdgeSnapshot& e, double seconds) {
  DiffSide s;
  s.present = true;
  s.connections = e.connections;
  s.failed = e.failed_total();
  s.resets = e.resets;
  const uint64_t attempts = s.connections + s.failed;
  s.attempts_per_s = seconds > 0 ? double(attempts) / seconds : 0;
  s.failure_ratio = attempts ? double(s.failed) / double(attempts) : 0;
  s.latency_samples = e.latency.samples;
  s.p90_us = e.latency.p90_us;
  return s;
}

EdgeChange change_of(const EdgeSnapshot& e) {
  EdgeChange c;
  c.client = e.client;
  c.server = e.server;
  c.port = e.port;
  c.protocol = e.protocol;
  return c;
}

// Compares one edge present in both windows; `scale` turns A's counts into B's window length.
void compare(EdgeChange& c, double scale, const DiffOptions& o) {
  const double a_att = double(c.before.connections + c.before.failed) * scale;
  const double b_att = double(c.after.connections + c.after.failed);
  const double busier = std::max(a_att, b_att);
  if (busier >= double(o.min_attempts) && std::fabs(b_att - a_att) >= o.rate_change * busier) {
    c.kinds.push_back("rate");
    c.impact += std::fabs(b_att - a_att);
  }
  if (std::fabs(c.after.failure_ratio - c.before.failure_ratio) >= o.failure_change &&
      (c.before.failed || c.after.failed)) {
    c.kinds.push_back("failures");
    c.impact += std::fabs(double(c.after.failed) - double(c.before.failed) * scale);
  }
  if (busier >= double(o.min_attempts) && c.before.latency_samples && c.after.latency_samples) {
    const double lo = double(std::max<uint64_t>(1, std::min(c.before.p90_us, c.after.p90_us)));
    const double hi = double(std::max(c.before.p90_us, c.after.p90_us));
    if (hi / lo >= o.latency_factor) {
      c.kinds.push_back("latency");
      c.impact += double(c.after.latency_samples);
    }
  }
}

std::string side_text(const DiffSide& s) {
  if (!s.present) return "-";
  std::string t = fmt::format("{} conns ({:.2f}/s)", s.connections, s.attempts_per_s);
  if (s.failed) t += fmt::format(", {} failed ({:.1f}%)", s.failed, 100 * s.failure_ratio);
  if (s.latency_samples) t += fmt::format(", p90 {}", format_us(s.p90_us));
  return t;
}

nlohmann::json side_json(const DiffSide& s) {
  if (!s.present) return nullptr;
  return {{"connections", s.connections}, {"failed", s.failed},          {"resets", s.resets},
          {"attempts_per_s", s.attempts_per_s}, {"failure_ratio", s.failure_ratio},
          {"latency_samples", s.latency_samples}, {"p90_us", s.p90_us}};
}

nlohmann::json end_json(const EdgeEnd& e) {
  nlohmann::json j = {{"id", node_id(e)}, {"kind", to_string(e.kind)}, {"service", sanitize_utf8(e.service)}};
  if (!e.ns.empty()) j["namespace"] = sanitize_utf8(e.ns);
  if (!e.address.empty()) j["address"] = e.address;
  return j;
}

}  // namespace

TopologyDiff diff_topology(const TopologySnapshot& a, WindowSpan wa, const TopologySnapshot& b, WindowSpan wb,
                           const DiffOptions& o) {
  TopologyDiff d{wa, wb, {}, a.edges.size(), b.edges.size(), 0};
  const double scale = wa.seconds() > 0 && wb.seconds() > 0 ? wb.seconds() / wa.seconds() : 1;
  std::map<Key, const EdgeSnapshot*> before;
  for (const auto& e : a.edges) before.emplace(key_of(e), &e);
  for (const auto& e : b.edges) {
    auto it = before.find(key_of(e));
    EdgeChange c = change_of(e);
    c.after = side_of(e, wb.seconds());
    if (it == before.end()) {
      c.kinds.push_back("appeared");
      c.impact = double(c.after.connections + c.after.failed);
    } else {
      c.before = side_of(*it->second, wa.seconds());
      before.erase(it);
      compare(c, scale, o);
      if (c.kinds.empty()) {
        d.unchanged++;
        continue;
      }
    }
    d.changes.push_back(std::move(c));
  }
  for (const auto& [k, e] : before) {
    EdgeChange c = change_of(*e);
    c.before = side_of(*e, wa.seconds());
    c.kinds.push_back("vanished");
    c.impact = double(c.before.connections + c.before.failed) * scale;
    d.changes.push_back(std::move(c));
  }
  // Highest impact first; ties in the edge's canonical order so the output is stable.
  std::stable_sort(d.changes.begin(), d.changes.end(), [](const EdgeChange& x, const EdgeChange& y) {
    if (x.impact != y.impact) return x.impact > y.impact;
    return std::tuple(node_id(x.client), node_id(x.server), x.port) < std::tuple(node_id(y.client), node_id(y.server), y.port);
  });
  return d;
}

std::string render_diff_table(const TopologyDiff& d) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"CHANGE", "CLIENT", "SERVER", "PORT", "BEFORE", "AFTER", "IMPACT"});
  for (const auto& c : d.changes) {
    std::string kinds;
    for (const auto& k : c.kinds) kinds += (kinds.empty() ? "" : ",") + k;
    rows.push_back({kinds, display_name(c.client), display_name(c.server),
                    fmt::format("{}/{}", c.port, to_string(c.protocol)), side_text(c.before), side_text(c.after),
                    fmt::format("{:.0f}", c.impact)});
  }
  std::string out = fmt::format("A: {} .. {} ({} edges)\nB: {} .. {} ({} edges)\n", format_time(d.a.from_ns),
                                format_time(d.a.to_ns), d.edges_a, format_time(d.b.from_ns), format_time(d.b.to_ns),
                                d.edges_b);
  if (d.changes.empty()) return out + fmt::format("no changes ({} edges unchanged)\n", d.unchanged);
  out += render_columns(rows);
  size_t appeared = 0, vanished = 0;
  for (const auto& c : d.changes) {
    appeared += c.kinds.front() == "appeared";
    vanished += c.kinds.front() == "vanished";
  }
  out += fmt::format("{} changes: {} appeared, {} vanished, {} changed; {} unchanged\n", d.changes.size(), appeared,
                     vanished, d.changes.size() - appeared - vanished, d.unchanged);
  return out;
}

nlohmann::json diff_to_json(const TopologyDiff& d) {
  nlohmann::json changes = nlohmann::json::array();
  for (const auto& c : d.changes)
    changes.push_back({{"kinds", c.kinds},
                       {"client", end_json(c.client)},
                       {"server", end_json(c.server)},
                       {"port", c.port},
                       {"protocol", to_string(c.protocol)},
                       {"before", side_json(c.before)},
                       {"after", side_json(c.after)},
                       {"impact", c.impact}});
  auto span = [](const WindowSpan& w) { return nlohmann::json{{"from", format_time(w.from_ns)}, {"to", format_time(w.to_ns)}}; };
  return {{"schema", "hostscope.topology-diff/v1"},
          {"a", span(d.a)},
          {"b", span(d.b)},
          {"edges_a", d.edges_a},
          {"edges_b", d.edges_b},
          {"unchanged", d.unchanged},
          {"changes", std::move(changes)}};
}

}  // namespace hostscope::topology
