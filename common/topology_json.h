#pragma once
// The versioned JSON form of a topology snapshot (schema in docs/topology.md) and its parser.
// `hostscope topology -o json` writes it; `policy generate` and the tests read it back.
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>

#include "common/topology_model.h"
#include "common/result.h"

namespace hostscope::topology {

inline constexpr std::string_view kJsonSchema = "hostscope.topology/v1";
inline constexpr size_t kMaxJsonBytes = 64u << 20;  // parse_json refuses larger input
inline constexpr int kMaxJsonDepth = 16;            // the schema nests 4 deep; refuse hostile nesting early

nlohmann::json to_json(const TopologySnapshot& s);
std::string render_json(const TopologySnapshot& s, int indent = 2);
// The same bytes as to_json(s).dump() (compact, invalid UTF-8 replaced), handed to `out` one edge or node at a
// time, so a large snapshot is never held as a JSON document or one string. Stops (false) when `out` does.
bool write_json(const TopologySnapshot& s, const std::function<bool(std::string_view)>& out);

struct ReadOptions {
  // Lenient (documents written by hand or by other tools, e.g. for `policy generate --from`): only the schema, the
  // edges and, per edge, client/server kind and service, port, protocol and connections are required; null counts
  // as missing. Everything present is still checked as strictly as below.
  bool lenient = false;
};

// Strict: wrong types, missing required fields, out-of-range numbers and unknown schema versions are errors
// naming the JSON path ("edges[2].port: expected an integer 0..65535"). Nodes are rebuilt from the edges, and edges
// come back in the model's canonical order.
Result<TopologySnapshot> from_json(const nlohmann::json& j, ReadOptions opts = {});
Result<TopologySnapshot> parse_json(std::string_view text);

// RFC 3339 UTC with nanoseconds ("2024-05-01T12:00:00.000000123Z"); the parser accepts 0..9 fraction digits.
std::string format_time(uint64_t ns);
std::optional<uint64_t> parse_time(std::string_view s);

}  // namespace hostscope::topology
