#pragma once
// `policy generate`: least-privilege policy YAML from an observed topology (hostscope.topology/v1,
// docs/topology.md). One NetworkPolicy per local service seen on an edge, allowing exactly the
// observed edges, default deny, `mode: audit`; plus one PolicyTest per policy asserting that every
// observed edge stays allowed. The JSON is read with common/topology_json.h's from_json in its lenient
// form (only the fields generate uses are required; null counts as missing).
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "policy/context.h"
#include "common/result.h"
#include "common/topology_json.h"

namespace hostscope::policy {

inline constexpr const char* kDefaultAgentSocket = "/run/hostscope/hostscope.sock";
// The topology parser's bounds (common/topology_json.h): input size and nesting depth.
inline constexpr size_t kMaxTopologyBytes = topology::kMaxJsonBytes;
inline constexpr int kMaxTopologyDepth = topology::kMaxJsonDepth;

struct GeneratedFile {
  std::string name;  // "web.yaml" (NetworkPolicy) or "web.test.yaml" (PolicyTest)
  std::string text;
};

// Something the operator should know about one edge: why it was left out or is expressed less exactly
// than observed. `kind` is a fixed phrase shared by every note of that sort (they are grouped by it).
struct Note {
  std::string kind;  // "edge left out", "DNAT backends allowed", ...
  std::string text;  // the edge and the detail
  bool operator<(const Note& o) const { return std::tie(kind, text) < std::tie(o.kind, o.text); }
  bool operator==(const Note& o) const = default;
  std::string str() const { return kind + ": " + text; }
};

struct Generated {
  std::vector<GeneratedFile> files;  // sorted by name
  std::vector<Note> notes;           // sorted by kind then text, no duplicates
  size_t policies = 0, cases = 0, edges_used = 0, edges_skipped = 0;
  // Every file as one YAML stream (a valid single policy file), for stdout.
  std::string stream() const;
};

// Parses topology JSON text with the size and depth bounds above (checked before parsing, so a
// hostile document cannot exhaust the stack or memory).
Result<nlohmann::json> parse_topology_text(std::string_view text);

// Builds the policy files. `ctx` is the catalogue the policies will be linted and enforced with:
// it decides how a peer is named (a service with catalogued addresses covering the observed one
// by name, otherwise the observed address) and which PolicyTest cases the reference evaluator can
// decide. Fails on a document that is not hostscope.topology/v1 or misses a field generate uses
// (the message names the JSON path).
Result<Generated> generate(const nlohmann::json& topology, const Context& ctx);

// Asks the running agent for its topology (common/api_client.h): one request line on the Unix socket, one
// reply line `{"ok":true,"result":...}`; the reply is bounded by kMaxTopologyBytes, kMaxTopologyDepth and `timeout_ms`.
Result<nlohmann::json> fetch_topology(const std::string& socket_path, int timeout_ms = 10000);
// Any agent API method without parameters (policy.status, policy.sync): the reply's "result", same bounds.
Result<nlohmann::json> agent_request(const std::string& socket_path, const std::string& method, int timeout_ms = 10000);

// The notes for stderr: one line per kind, "note: KIND: N edges, e.g. A; B" with at most `examples`
// examples each, and at most `max_lines` lines in all; when lines are cut, the last one says how many
// kinds were left out and where the full list is (`notes_file`, or "--notes-file" when none was given).
inline constexpr size_t kNoteExamples = 3;
inline constexpr size_t kMaxNoteLines = 200;
std::vector<std::string> note_summary(const std::vector<Note>& notes, const std::string& notes_file = "",
                                      size_t examples = kNoteExamples, size_t max_lines = kMaxNoteLines);
// Every note in full, one "KIND: TEXT" line each (for --notes-file).
std::string notes_text(const std::vector<Note>& notes);

// Writes the files into `dir` (created if missing). Refuses to overwrite an existing file unless
// `force`; each file is written to a temporary name and renamed into place.
Status write_files(const std::vector<GeneratedFile>& files, const std::string& dir, bool force);
Status write_generated(const Generated& g, const std::string& dir, bool force);

}  // namespace hostscope::policy
