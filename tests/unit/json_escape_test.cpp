// The one JSON string escaper (common/json_escape.h): Utf8 must give dump()'s bytes and refuse what dump() refuses;
// Ascii must turn any bytes into a valid JSON string that reads back as the same bytes, byte for byte (Latin-1).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "common/json_escape.h"

namespace hostscope::json_text {
namespace {

using nlohmann::json;

std::string quoted(std::string_view s, Bytes b) {
  std::string out = "prefix:";
  if (!append_quoted(out, s, b)) return "<refused>";
  EXPECT_EQ(out.rfind("prefix:", 0), 0u);
  return out.substr(7);
}

std::string dumped(const std::string& s) {
  try {
    return json(s).dump();
  } catch (const json::type_error&) {
    return "<refused>";
  }
}

TEST(JsonEscape, Utf8MatchesDumpForEveryAsciiByte) {
  for (int c = 0; c < 0x80; ++c) {
    std::string s = "a" + std::string(1, char(c)) + "z";
    EXPECT_EQ(quoted(s, Bytes::Utf8), dumped(s)) << "byte " << c;
  }
}

TEST(JsonEscape, Utf8MatchesDumpOnValidAndInvalidSequences) {
  const std::string cases[] = {
      "",
      "plain-service",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",  // 2, 3 and 4-byte sequences
      "\xc0\xaf",                                   // overlong '/'
      "\xe0\x80\xaf",                               // overlong, 3 bytes
      "\xed\xa0\x80",                               // a surrogate
      "\xf4\x90\x80\x80",                           // above U+10FFFF
      "\xc3",                                       // truncated
      "\xe2\x82",                                   // truncated
      "\x80",                                       // a lone continuation byte
      "\xff",
      "tab\there\nnew \"quoted\" back\\slash \x7f",
  };
  for (auto& s : cases) EXPECT_EQ(quoted(s, Bytes::Utf8), dumped(s)) << json(s).dump(-1, ' ', true, json::error_handler_t::replace);
}

TEST(JsonEscape, Utf8MatchesDumpOnRandomBytes) {
  std::mt19937 rng(7);
  // Weighted towards bytes that start or continue UTF-8 sequences, so valid and invalid inputs both occur often.
  const unsigned char alphabet[] = {'a', '"', '\\', '\n', 0x01, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2,
                                    0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 0xa0, 0x9f, 0x90, 0x8f};
  int valid = 0, refused = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    for (size_t n = rng() % 8; n > 0; --n) s += char(alphabet[rng() % sizeof(alphabet)]);
    auto want = dumped(s);
    ASSERT_EQ(quoted(s, Bytes::Utf8), want) << json(s).dump(-1, ' ', true, json::error_handler_t::replace);
    (want == "<refused>" ? refused : valid)++;
  }
  EXPECT_GT(valid, 1000);
  EXPECT_GT(refused, 1000);
}

TEST(JsonEscape, AsciiEscapesEveryByteOutsidePrintableAscii) {
  EXPECT_EQ(quoted("nginx: worker", Bytes::Ascii), R"("nginx: worker")");
  EXPECT_EQ(quoted("a\"b\\c\n\x7f\xc3\xa9", Bytes::Ascii), R"("a\"b\\c\u000a\u007f\u00c3\u00a9")");
  std::string all;
  for (int c = 0; c < 256; ++c) all += char(c);
  auto text = quoted(all, Bytes::Ascii);
  for (char c : text) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
  // Read back, each \u00XX is code point XX: the original bytes as Latin-1.
  auto back = json::parse(text).get<std::string>();
  std::u32string cps;
  for (size_t i = 0; i < back.size();) {
    auto c = static_cast<unsigned char>(back[i]);
    if (c < 0x80) {
      cps += char32_t(c);
      i += 1;
    } else {
      cps += char32_t(((c & 0x1f) << 6) | (static_cast<unsigned char>(back[i + 1]) & 0x3f));
      i += 2;
    }
  }
  ASSERT_EQ(cps.size(), 256u);
  for (size_t c = 0; c < 256; ++c) EXPECT_EQ(cps[c], char32_t(c));
}

TEST(JsonEscape, RefusedInputLeavesTheBufferUnchanged) {
  std::string out = "kept";
  EXPECT_FALSE(append_quoted(out, "ok\xff", Bytes::Utf8));
  EXPECT_EQ(out, "kept");
  EXPECT_TRUE(append_quoted(out, "ok\xff", Bytes::Ascii));
  EXPECT_EQ(out, R"(kept"ok\u00ff")");
}

}  // namespace
}  // namespace hostscope::json_text
