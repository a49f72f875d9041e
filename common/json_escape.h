#pragma once
// One JSON string escaper for the writers that build JSON text by hand (the event lines, the topology document,
// the stored policy IR), with the two byte policies they need.
#include <cstddef>
#include <string>
#include <string_view>

namespace hostscope::json_text {

enum class Bytes {
  // Text: UTF-8 kept, `"` `\` and control characters escaped exactly as nlohmann's dump() does (\n, \t, ... and
  // \u00XX); input that is not valid UTF-8 is refused, so the caller can fall back to dump()'s own handling.
  Utf8,
  // Bytes that are not known to be text (a process's comm, paths): everything outside printable ASCII, and every
  // control character, as \u00XX, so any input gives a valid JSON line.
  Ascii,
};

// Output bytes per input byte, at most: size a buffer as kMaxPerByte * input size.
inline constexpr size_t kMaxPerByte = 6;

// Writes the body of `s` as a JSON string (no quotes) at `p`, which has room for kMaxPerByte * s.size() bytes.
// Returns the end, or nullptr when `bytes` is Utf8 and `s` is not valid UTF-8 (what was written is garbage then).
char* put_escaped(char* p, std::string_view s, Bytes bytes);

// Appends `s` as a quoted JSON string. False, with `out` unchanged, when `bytes` is Utf8 and `s` is not valid UTF-8.
bool append_quoted(std::string& out, std::string_view s, Bytes bytes);

}  // namespace hostscope::json_text
