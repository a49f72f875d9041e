// Go's strconv.Quote / Unquote (declared in go_buildinfo.h), as used for build setting keys and values.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "agent/identity/go_buildinfo.h"

namespace hostscope::identity {

namespace {

// Decodes one UTF-8 sequence; returns {rune, width}, {-1, 1} when invalid (Go's RuneError case).
std::pair<int32_t, size_t> decode_rune(std::string_view s, size_t i) {
  const auto c0 = static_cast<uint8_t>(s[i]);
  if (c0 < 0x80) return {c0, 1};
  size_t n;
  int32_t r, min;
  if ((c0 & 0xe0) == 0xc0)
    n = 2, r = c0 & 0x1f, min = 0x80;
  else if ((c0 & 0xf0) == 0xe0)
    n = 3, r = c0 & 0x0f, min = 0x800;
  else if ((c0 & 0xf8) == 0xf0)
    n = 4, r = c0 & 0x07, min = 0x10000;
  else
    return {-1, 1};
  if (i + n > s.size()) return {-1, 1};
  for (size_t k = 1; k < n; k++) {
    const auto c = static_cast<uint8_t>(s[i + k]);
    if ((c & 0xc0) != 0x80) return {-1, 1};
    r = (r << 6) | (c & 0x3f);
  }
  if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return {-1, 1};
  return {r, n};
}

void append_rune(std::string& out, uint32_t r) {
  if (r < 0x80) {
    out.push_back(static_cast<char>(r));
  } else if (r < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (r >> 6)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  } else if (r < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (r >> 12)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (r >> 18)));
    out.push_back(static_cast<char>(0x80 | ((r >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((r >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (r & 0x3f)));
  }
}

// An approximation of unicode.IsPrint beyond ASCII: the separator, format, private-use and
// non-character ranges that Go escapes. Exact for ASCII, which is what build settings contain.
bool is_print(int32_t r) {
  if (r < 0x80) return r >= 0x20 && r < 0x7f;
  if (r <= 0xa0 || r == 0xad) return false;
  if ((r >= 0x2000 && r <= 0x200f) || (r >= 0x2028 && r <= 0x202f) || (r >= 0x205f && r <= 0x206f))
    return false;
  if (r == 0x3000 || r == 0xfeff || (r >= 0xfff9 && r <= 0xfffb)) return false;
  if ((r >= 0xe000 && r <= 0xf8ff) || r >= 0xf0000) return false;
  if ((r & 0xfffe) == 0xfffe) return false;
  return true;
}

int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string go_quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    auto [r, width] = decode_rune(s, i);
    if (r < 0) {
      const auto b = static_cast<uint8_t>(s[i]);
      out += "\\x";
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
      i += 1;
      continue;
    }
    if (r == '"' || r == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(r));
    } else if (is_print(r)) {
      out.append(s.substr(i, width));
    } else {
      switch (r) {
        case '\a':
          out += "\\a";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\v':
          out += "\\v";
          break;
        default:
          if (r < ' ' || r == 0x7f) {
            out += "\\x";
            out.push_back(kHex[(r >> 4) & 15]);
            out.push_back(kHex[r & 15]);
          } else {
            const bool big = r > 0xffff;
            out += big ? "\\U" : "\\u";
            for (int sh = big ? 28 : 12; sh >= 0; sh -= 4) out.push_back(kHex[(r >> sh) & 15]);
          }
      }
    }
    i += width;
  }
  out.push_back('"');
  return out;
}

std::optional<std::string> go_unquote(std::string_view s) {
  if (s.size() < 2 || s.front() != s.back()) return std::nullopt;
  const char quote = s.front();
  std::string_view body = s.substr(1, s.size() - 2);
  if (quote == '`') {
    if (body.find('`') != std::string_view::npos) return std::nullopt;
    std::string out;
    for (char c : body) {
      if (c != '\r') out.push_back(c);  // Go drops carriage returns from raw strings
    }
    return out;
  }
  if (quote != '"') return std::nullopt;
  std::string out;
  for (size_t i = 0; i < body.size();) {
    const char c = body[i];
    if (c == '"' || c == '\n') return std::nullopt;
    if (static_cast<uint8_t>(c) >= 0x80) {
      auto [r, width] = decode_rune(body, i);
      if (r < 0)
        append_rune(out, 0xfffd);  // Go turns invalid UTF-8 into U+FFFD here
      else
        out.append(body.substr(i, width));
      i += width;
      continue;
    }
    if (c != '\\') {
      out.push_back(c);
      i++;
      continue;
    }
    if (i + 1 >= body.size()) return std::nullopt;
    const char e = body[i + 1];
    i += 2;
    switch (e) {
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (i + n > body.size()) return std::nullopt;
        uint32_t v = 0;
        for (size_t k = 0; k < n; k++) {
          const int h = hex_val(body[i + k]);
          if (h < 0) return std::nullopt;
          v = (v << 4) | static_cast<uint32_t>(h);
        }
        i += n;
        if (e == 'x') {
          out.push_back(static_cast<char>(v));  // a raw byte, not a rune
        } else {
          if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return std::nullopt;
          append_rune(out, v);
        }
        break;
      }
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7': {
        if (i + 2 > body.size()) return std::nullopt;
        uint32_t v = static_cast<uint32_t>(e - '0');
        for (size_t k = 0; k < 2; k++) {
          const char d = body[i + k];
          if (d < '0' || d > '7') return std::nullopt;
          v = v * 8 + static_cast<uint32_t>(d - '0');
        }
        if (v > 255) return std::nullopt;
        i += 2;
        out.push_back(static_cast<char>(v));
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

}  // namespace hostscope::identity
