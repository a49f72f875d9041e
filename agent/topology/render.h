#pragma once
// Human and graph renderings of a topology snapshot: table (default), tree, json, dot (Graphviz), mermaid.
// Every format escapes names (quotes, spaces, control bytes, invalid UTF-8) its own way; see docs/topology.md.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/topology_model.h"

namespace hostscope::topology {

enum class Format { Table, Tree, Json, Dot, Mermaid };
std::optional<Format> format_from_string(std::string_view s);  // "table", "tree", "json", "dot", "mermaid"
std::string_view to_string(Format f);

std::string render(const TopologySnapshot& s, Format f);
std::string render_table(const TopologySnapshot& s);
std::string render_tree(const TopologySnapshot& s);
std::string render_dot(const TopologySnapshot& s);
std::string render_mermaid(const TopologySnapshot& s);

// Building blocks, public for `hostscope top` and tests.
std::string display_name(const EdgeEnd& e);    // "ns/service", "network:name", "external:1.2.3.4"
std::string text_quote(std::string_view s);    // as-is when plain, else "..." with \" \\ \xNN escapes
std::string sanitize_utf8(std::string_view s);  // invalid sequences become U+FFFD
std::string dot_escape(std::string_view s);     // body of a Graphviz double-quoted string
std::string mermaid_escape(std::string_view s);  // body of a Mermaid "..." label (entity codes)
std::string format_bytes(uint64_t n);           // 512B, 1.5KiB, 3.2MiB
std::string format_us(uint64_t us);             // 850us, 1.2ms, 3.40s
// Rows of cells as left-aligned columns two spaces apart (the first row is the header); trailing blanks trimmed.
std::string render_columns(const std::vector<std::vector<std::string>>& rows);

}  // namespace hostscope::topology
