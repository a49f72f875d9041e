#pragma once
// A cheap pre-check for untrusted JSON text: nlohmann's parser and destructor work per nesting level, so hostile
// nesting is refused before the text is handed over (topology JSON read by the agent and by `policy generate`,
// API requests).
#include <string_view>

namespace hostscope {

// True when arrays/objects nest at most `max_depth` deep (brackets inside strings are skipped).
inline bool json_nesting_within(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

}  // namespace hostscope
