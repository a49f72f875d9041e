#pragma once
// YAML -> PolicySet. Structural problems (syntax, unknown keys, wrong types, bad values) are
// reported here with their location; cross-document checks live in lint.h.
#include <string>
#include <string_view>

#include "policy/diagnostic.h"
#include "common/result.h"
#include "policy/model.h"

namespace hostscope::policy {

struct LoadResult {
  PolicySet set;
  Diagnostics diagnostics;
};

// Limits that keep untrusted input from ballooning memory (aliases can expand a small file).
inline constexpr size_t kMaxFileBytes = 4u << 20;
inline constexpr size_t kMaxNodesPerDocument = 200000;
inline constexpr size_t kMaxFiles = 1000;
inline constexpr size_t kMaxDocumentsPerFile = 10000;

// Whether a directory entry's name makes it a policy file: *.yaml or *.yml.
bool is_policy_file_name(const std::string& name);
// Reads one policy file whole, at most `limit` bytes (one more tells the caller it is too large). It must be a
// regular file or a symlink to one (Kubernetes ConfigMap volumes: x.yaml -> ..data/x.yaml). Anything else (a
// dangling or looping symlink, a FIFO, a device, a socket, a directory) is refused without being opened for
// reading; the error says what the entry is: "it is a symlink to '/dev/zero', which is a character device, ...".
Result<std::string> read_policy_file(const std::string& path, size_t limit = kMaxFileBytes + 1);

// Loads every entry named *.yaml / *.yml directly in `dir`, sorted by file name (byte order), documents
// in file order. Locations name files relative to `dir`. An entry that cannot be read whole is an error
// naming it (never skipped), so such a set never compiles.
LoadResult load_dir(const std::string& dir);
// Loads one file's text as if it were the only file of a set.
LoadResult load_text(std::string_view text, const std::string& file_name);
// Appends the documents of `text` to `out` (merge order = call order).
void load_into(LoadResult& out, std::string_view text, const std::string& file_name);

// Suggestion for a misspelt word: the closest candidate within a small edit distance, or "".
std::string closest_word(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace hostscope::policy
