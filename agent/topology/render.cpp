#include "agent/topology/render.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "common/topology_json.h"

namespace hostscope::topology {

std::optional<Format> format_from_string(std::string_view s) {
  for (auto f : {Format::Table, Format::Tree, Format::Json, Format::Dot, Format::Mermaid})
    if (to_string(f) == s) return f;
  return std::nullopt;
}

std::string_view to_string(Format f) {
  switch (f) {
    case Format::Tree: return "tree";
    case Format::Json: return "json";
    case Format::Dot: return "dot";
    case Format::Mermaid: return "mermaid";
    default: return "table";
  }
}

std::string render(const TopologySnapshot& s, Format f) {
  switch (f) {
    case Format::Tree: return render_tree(s);
    case Format::Json: return render_json(s);
    case Format::Dot: return render_dot(s);
    case Format::Mermaid: return render_mermaid(s);
    default: return render_table(s);
  }
}

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid (overlong, surrogate, truncated).
size_t utf8_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return uint8_t(s[k]); };
  uint8_t c = b(i);
  if (c < 0x80) return 1;
  size_t n = c > 0xf4 ? 0 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  if (n == 3) {
    uint32_t cp = (uint32_t(c & 0x0f) << 12) | (uint32_t(b(i + 1) & 0x3f) << 6) | (b(i + 2) & 0x3f);
    if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  }
  if (n == 4) {
    uint32_t cp = (uint32_t(c & 0x07) << 18) | (uint32_t(b(i + 1) & 0x3f) << 12) | (uint32_t(b(i + 2) & 0x3f) << 6) |
                  (b(i + 3) & 0x3f);
    if (cp < 0x10000 || cp > 0x10ffff) return 0;
  }
  return n;
}

// Display columns of a UTF-8 string (one per code point; good enough for alignment of names).
size_t width(std::string_view s) {
  size_t w = 0;
  for (unsigned char c : s) w += (c & 0xc0) != 0x80;
  return w;
}

std::string pad(std::string_view s, size_t w) {
  std::string out(s);
  size_t cur = width(s);
  if (cur < w) out.append(w - cur, ' ');
  return out;
}

}  // namespace

std::string render_columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], width(r[i]));
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += i + 1 == r.size() ? r[i] : pad(r[i], widths[i]) + "  ";
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

namespace {

std::string failures(const EdgeSnapshot& e) {
  uint64_t n = e.failed_total();
  if (n == 0) return "0";
  std::string detail;
  for (const auto& [reason, c] : e.failed) detail += fmt::format("{}{}={}", detail.empty() ? "" : ",", reason, c);
  return fmt::format("{} ({})", n, text_quote(detail));
}

std::string flags(const EdgeSnapshot& e) {
  std::set<std::string> reasons;
  for (const auto& a : e.anomalies) reasons.insert(text_quote(a.reason));
  std::string out;
  for (const auto& r : reasons) out += (out.empty() ? "!" : ",") + r;
  if (!e.policy.empty()) out += (out.empty() ? "" : " ") + std::string("policy:") + e.policy;
  // Cluster view: an end's address had another owner earlier in the window (named by its latest one).
  if (e.address_reused) out += (out.empty() ? "" : " ") + std::string("address-reused");
  return out;
}

std::string edge_summary(const EdgeSnapshot& e) {
  std::string s = fmt::format("{} conns", e.connections);
  if (e.failed_total()) s += fmt::format(", {} failed", e.failed_total());
  if (e.resets) s += fmt::format(", {} resets", e.resets);
  if (e.latency.samples) s += fmt::format(", p50 {}", format_us(e.latency.p50_us));
  return s;
}

std::string port_proto(const EdgeSnapshot& e) { return fmt::format("{}/{}", e.port, to_string(e.protocol)); }

}  // namespace

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_len(s, i);
    if (n == 0) {
      out += "\xef\xbf\xbd";
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string text_quote(std::string_view s) {
  bool plain = !s.empty();
  for (size_t i = 0; i < s.size() && plain;) {
    unsigned char c = uint8_t(s[i]);
    size_t n = utf8_len(s, i);
    if (n == 0 || c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '\'') plain = false;
    i += n ? n : 1;
  }
  if (plain) return std::string(s);
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = uint8_t(s[i]);
    size_t n = utf8_len(s, i);
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    if (c == '"' || c == '\\') out += {'\\', char(c)};
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (n == 0 || c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += char(c);
    ++i;
  }
  return out + "\"";
}

std::string dot_escape(std::string_view raw) {
  std::string s = sanitize_utf8(raw), out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') out += {'\\', char(c)};
    else if (c == '\n') out += "\\n";
    else if (c < 0x20 || c == 0x7f) out += ' ';  // Graphviz has no escape for other control bytes
    else out += char(c);
  }
  return out;
}

std::string mermaid_escape(std::string_view raw) {
  std::string s = sanitize_utf8(raw), out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "#quot;"; break;
      case '#': out += "#35;"; break;
      case '&': out += "#amp;"; break;
      case '<': out += "#lt;"; break;
      case '>': out += "#gt;"; break;
      case '`': out += "#96;"; break;
      case '|': out += "#124;"; break;
      default: out += c < 0x20 || c == 0x7f ? ' ' : char(c);
    }
  }
  return out;
}

std::string format_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{}B", n);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = double(n) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f}{}", v, units[u]);
}

std::string format_us(uint64_t us) {
  if (us < 1000) return fmt::format("{}us", us);
  if (us < 1'000'000) return fmt::format("{:.1f}ms", double(us) / 1e3);
  return fmt::format("{:.2f}s", double(us) / 1e6);
}

std::string display_name(const EdgeEnd& e) {
  switch (e.kind) {
    case NodeKind::Network:  // a per-address end (topology.network_ends: address) shows its address: its own row
      return "network:" + text_quote(e.service) + (e.exact_address ? "@" + text_quote(e.address) : "");
    case NodeKind::External: return "external:" + text_quote(e.address);
    default: return e.ns.empty() ? text_quote(e.service) : text_quote(e.ns) + "/" + text_quote(e.service);
  }
}

std::string render_table(const TopologySnapshot& s) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"CLIENT", "SERVER", "PORT", "CONNS", "ACTIVE", "FAILED", "RESETS", "SENT", "RECV", "P50", "P99",
                  "SRTT", "RETRANS", "DNAT", "FLAGS"});
  for (const auto& e : s.edges) {
    std::string nat = e.dialed.empty() ? "" : text_quote(e.dialed) + "->";
    for (size_t i = 0; i < e.actual.size(); ++i) nat += (i ? "," : "") + text_quote(e.actual[i]);
    rows.push_back({display_name(e.client), display_name(e.server), port_proto(e), std::to_string(e.connections),
                    std::to_string(e.active), failures(e), std::to_string(e.resets), format_bytes(e.bytes_sent),
                    format_bytes(e.bytes_received), e.latency.samples ? format_us(e.latency.p50_us) : "-",
                    e.latency.samples ? format_us(e.latency.p99_us) : "-", e.srtt_us ? format_us(e.srtt_us) : "-",
                    std::to_string(e.retransmits), nat.empty() ? "-" : nat, flags(e)});
  }
  const auto& c = s.counters;
  std::string out = render_columns(rows);
  out += fmt::format("{} edges, {} nodes; events {}, dropped {}, evicted edges {} (expired {}), evicted connections {}, "
                     "node overflow {}\n",
                     s.edges.size(), s.nodes.size(), c.events, c.dropped, c.edges_evicted, c.edges_expired,
                     c.connections_evicted, c.node_overflow);
  return out;
}

std::string render_tree(const TopologySnapshot& s) {
  // Per service: who calls it, then whom it calls. Networks and external peers only appear as leaves.
  std::map<std::string, std::pair<std::vector<const EdgeSnapshot*>, std::vector<const EdgeSnapshot*>>> by_service;
  std::map<std::string, std::string> names;
  for (const auto& e : s.edges) {
    if (e.server.kind == NodeKind::Service) {
      by_service[node_id(e.server)].first.push_back(&e);
      names[node_id(e.server)] = display_name(e.server);
    }
    if (e.client.kind == NodeKind::Service) {
      by_service[node_id(e.client)].second.push_back(&e);
      names[node_id(e.client)] = display_name(e.client);
    }
  }
  std::string out;
  for (const auto& [id, io] : by_service) {
    out += names[id] + "\n";
    const auto& [callers, callees] = io;
    auto branch = [&](const char* title, const std::vector<const EdgeSnapshot*>& list, bool incoming) {
      if (list.empty()) return;
      out += fmt::format("  {}\n", title);
      for (size_t i = 0; i < list.size(); ++i) {
        const auto& e = *list[i];
        bool last = i + 1 == list.size();
        out += fmt::format("    {} {} {} {}{}{}\n", last ? "└─" : "├─", incoming ? "←" : "→",
                           display_name(incoming ? e.client : e.server), port_proto(e),
                           "  " + edge_summary(e), flags(e).empty() ? "" : "  " + flags(e));
      }
    };
    branch("called by:", callers, true);
    branch("calls:", callees, false);
  }
  if (out.empty()) out = "(no services)\n";
  return out;
}

std::string render_dot(const TopologySnapshot& s) {
  std::string out = "digraph hostscope {\n  rankdir=LR;\n  node [fontname=\"sans-serif\"];\n";
  for (const auto& n : s.nodes) {
    std::string label, shape = "box";
    switch (n.kind) {
      case NodeKind::Network:
        label = n.service + (n.address.empty() ? "" : "\n" + n.address) + "\n(network)";
        shape = "ellipse";
        break;
      case NodeKind::External:
        label = n.service + "\n" + n.address;
        shape = "ellipse";
        break;
      default: label = n.ns.empty() ? n.service : n.ns + "/" + n.service;
    }
    out += fmt::format("  \"{}\" [label=\"{}\", shape={}];\n", dot_escape(n.id), dot_escape(label), shape);
  }
  for (const auto& e : s.edges) {
    std::string label = port_proto(e) + "\n" + edge_summary(e);
    if (!e.dialed.empty()) label += "\nvia " + e.dialed;
    if (!e.policy.empty()) label += "\npolicy: " + e.policy;
    std::string style = e.policy == "denied"       ? ", color=red, style=bold"
                        : e.policy == "would-deny" ? ", color=orange, style=dashed"
                        : e.anomalies.empty()      ? ""
                                                   : ", color=red";
    out += fmt::format("  \"{}\" -> \"{}\" [label=\"{}\"{}];\n", dot_escape(node_id(e.client)),
                       dot_escape(node_id(e.server)), dot_escape(label), style);
  }
  return out + "}\n";
}

std::string render_mermaid(const TopologySnapshot& s) {
  // Node ids are positional (n0, n1, ...): nothing from a name ever reaches an id.
  std::map<std::string, size_t> ids;
  std::string out = "flowchart LR\n";
  for (size_t i = 0; i < s.nodes.size(); ++i) {
    const auto& n = s.nodes[i];
    ids[n.id] = i;
    std::string label;
    switch (n.kind) {
      case NodeKind::Network: label = n.service + (n.address.empty() ? "" : " " + n.address) + " (network)"; break;
      case NodeKind::External: label = n.service + " " + n.address; break;
      default: label = n.ns.empty() ? n.service : n.ns + "/" + n.service;
    }
    const char* open = n.kind == NodeKind::Service ? "[" : "([";
    const char* close = n.kind == NodeKind::Service ? "]" : "])";
    out += fmt::format("  n{}{}\"{}\"{}\n", i, open, mermaid_escape(label), close);
  }
  for (const auto& e : s.edges) {
    auto c = ids.find(node_id(e.client)), v = ids.find(node_id(e.server));
    if (c == ids.end() || v == ids.end()) continue;
    std::string summary = edge_summary(e) + (e.policy.empty() ? "" : ", policy: " + e.policy);
    out += fmt::format("  n{} {}|\"{} {}\"| n{}\n", c->second, e.policy.empty() ? "-->" : "-.->", mermaid_escape(port_proto(e)),
                       mermaid_escape(summary), v->second);
  }
  return out;
}

}  // namespace hostscope::topology
