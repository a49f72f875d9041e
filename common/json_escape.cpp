#include "common/json_escape.h"

#include <cstdint>

namespace hostscope::json_text {
namespace {

constexpr char kHex[] = "0123456789abcdef";

char* put_u00(char* p, unsigned char c) {
  *p++ = '\\';
  *p++ = 'u';
  *p++ = '0';
  *p++ = '0';
  *p++ = kHex[c >> 4];
  *p++ = kHex[c & 15];
  return p;
}

// The length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 when it is not one: overlong
// forms, surrogates and code points above U+10FFFF are invalid, as in nlohmann's decoder.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  uint32_t cp = c & (0xFFu >> (n + 1));
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

char* put_ascii(char* p, std::string_view s) {
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      *p++ = char(c);
    } else if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = char(c);
    } else {
      p = put_u00(p, c);
    }
  }
  return p;
}

char* put_utf8(char* p, std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t n = utf8_sequence(s, i);
      if (n == 0) return nullptr;
      for (size_t k = 0; k < n; ++k) *p++ = s[i + k];
      i += n - 1;
      continue;
    }
    char named = 0;
    switch (c) {
      case '"': named = '"'; break;
      case '\\': named = '\\'; break;
      case '\b': named = 'b'; break;
      case '\f': named = 'f'; break;
      case '\n': named = 'n'; break;
      case '\r': named = 'r'; break;
      case '\t': named = 't'; break;
      default: break;
    }
    if (named) {
      *p++ = '\\';
      *p++ = named;
    } else if (c < 0x20) {
      p = put_u00(p, c);
    } else {
      *p++ = char(c);
    }
  }
  return p;
}

}  // namespace

char* put_escaped(char* p, std::string_view s, Bytes bytes) {
  return bytes == Bytes::Ascii ? put_ascii(p, s) : put_utf8(p, s);
}

bool append_quoted(std::string& out, std::string_view s, Bytes bytes) {
  const size_t start = out.size();
  out.resize(start + 2 + kMaxPerByte * s.size());
  char* p = out.data() + start;
  *p++ = '"';
  p = put_escaped(p, s, bytes);
  if (!p) {
    out.resize(start);
    return false;
  }
  *p++ = '"';
  out.resize(size_t(p - out.data()));
  return true;
}

}  // namespace hostscope::json_text
