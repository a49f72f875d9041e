// runtime/debug.ParseBuildInfo and BuildInfo.String (declared in go_buildinfo.h): the modinfo text both ways.
#include <fmt/format.h>

#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/go_buildinfo.h"

namespace hostscope::identity {

namespace {

bool quote_key(std::string_view k) {
  return k.empty() || k.find_first_of(std::string_view("= \t\r\n\"`")) != std::string_view::npos;
}
bool quote_value(std::string_view v) {
  return v.find_first_of(std::string_view(" \t\r\n\"`")) != std::string_view::npos;
}

// Length of the quoted string at the start of s (strconv.QuotedPrefix), or 0 when there is none.
size_t quoted_prefix_len(std::string_view s) {
  if (s.empty()) return 0;
  if (s[0] == '`') {
    size_t end = s.find('`', 1);
    return end == std::string_view::npos ? 0 : end + 1;
  }
  if (s[0] != '"') return 0;
  for (size_t i = 1; i < s.size(); i++) {
    if (s[i] == '\n') return 0;
    if (s[i] == '\\') {
      i++;
      continue;
    }
    if (s[i] == '"') return go_unquote(s.substr(0, i + 1)) ? i + 1 : 0;
  }
  return 0;
}

std::vector<std::string_view> split_tabs(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    size_t t = s.find('\t', start);
    if (t == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, t - start));
    start = t + 1;
  }
}

}  // namespace

const std::string* GoBuildInfo::setting(std::string_view key) const {
  for (const auto& s : settings) {
    if (s.key == key) return &s.value;
  }
  return nullptr;
}

std::string GoBuildInfo::to_string() const {
  std::string out;
  if (!go_version.empty()) out += fmt::format("go\t{}\n", go_version);
  if (!path.empty()) out += fmt::format("path\t{}\n", path);
  auto format_mod = [&](std::string_view word, const GoModule& m) {
    out += fmt::format("{}\t{}\t{}", word, m.path, m.version);
    if (m.replace) {
      out += fmt::format("\n=>\t{}\t{}\t{}", m.replace->path, m.replace->version, m.replace->sum);
    } else {
      out += fmt::format("\t{}", m.sum);
    }
    out += '\n';
  };
  if (main != GoModule{}) format_mod("mod", main);
  for (const auto& d : deps) format_mod("dep", d);
  for (const auto& s : settings) {
    out += fmt::format("build\t{}={}\n", quote_key(s.key) ? go_quote(s.key) : s.key,
                       quote_value(s.value) ? go_quote(s.value) : s.value);
  }
  return out;
}

Result<GoBuildInfo> parse_go_modinfo(std::string_view data, size_t max_deps) {
  GoBuildInfo bi;
  size_t line_num = 1;
  auto fail = [&](std::string why) -> Result<GoBuildInfo> {
    return errorf("could not parse Go build info: line {}: {}", line_num, why);
  };
  auto read_module = [](std::string_view rest, GoModule& m) -> bool {
    auto elem = split_tabs(rest);
    if (elem.size() != 2 && elem.size() != 3) return false;
    m = GoModule{};
    m.path = elem[0];
    m.version = elem[1];
    if (elem.size() == 3) m.sum = elem[2];
    return true;
  };
  GoModule* last = nullptr;
  bool skipping = false;  // a dep past max_deps: parsed for errors, not kept
  GoModule scratch;
  while (!data.empty()) {
    const size_t nl = data.find('\n');
    if (nl == std::string_view::npos) break;  // Go ignores an unterminated last line
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl + 1);
    auto has = [&](std::string_view p) { return line.substr(0, p.size()) == p; };
    if (has("path\t")) {
      bi.path = line.substr(5);
    } else if (has("mod\t")) {
      if (!read_module(line.substr(4), bi.main)) {
        return fail(fmt::format("expected 2 or 3 columns; got {}", split_tabs(line.substr(4)).size()));
      }
      last = &bi.main;
      skipping = false;
    } else if (has("dep\t")) {
      if (!read_module(line.substr(4), scratch)) {
        return fail(fmt::format("expected 2 or 3 columns; got {}", split_tabs(line.substr(4)).size()));
      }
      if (bi.deps.size() < max_deps) {
        bi.deps.push_back(std::move(scratch));
        last = &bi.deps.back();
        skipping = false;
      } else {
        bi.deps_truncated = true;
        last = nullptr;
        skipping = true;
      }
    } else if (has("=>\t")) {
      auto elem = split_tabs(line.substr(3));
      if (elem.size() != 3)
        return fail(fmt::format("expected 3 columns for replacement; got {}", elem.size()));
      if (last == nullptr && !skipping) return fail("replacement with no module on previous line");
      if (last)
        last->replace = GoModuleVersion{std::string(elem[0]), std::string(elem[1]), std::string(elem[2])};
      last = nullptr;
      skipping = false;
    } else if (has("build\t")) {
      std::string_view kv = line.substr(6);
      if (kv.empty()) return fail("build line missing '='");
      std::string key;
      std::string_view raw_value;
      if (kv[0] == '=') return fail("build line with missing key");
      if (kv[0] == '`' || kv[0] == '"') {
        const size_t n = quoted_prefix_len(kv);
        if (n == 0) return fail("invalid quoted key in build line");
        if (n == kv.size()) return fail("build line missing '=' after quoted key");
        if (kv[n] != '=') return fail(fmt::format("unexpected character after quoted key: {:?}", kv[n]));
        key = *go_unquote(kv.substr(0, n));
        raw_value = kv.substr(n + 1);
      } else {
        const size_t eq = kv.find('=');
        if (eq == std::string_view::npos) return fail("build line missing '=' after key");
        key = kv.substr(0, eq);
        raw_value = kv.substr(eq + 1);
        if (quote_key(key)) return fail(fmt::format("unquoted key {} must be quoted", go_quote(key)));
      }
      std::string value;
      if (!raw_value.empty()) {
        if (raw_value[0] == '`' || raw_value[0] == '"') {
          auto v = go_unquote(raw_value);
          if (!v) return fail("invalid quoted value in build line");
          value = std::move(*v);
        } else {
          value = raw_value;
          if (quote_value(value))
            return fail(fmt::format("unquoted value {} must be quoted", go_quote(value)));
        }
      }
      bi.settings.push_back(GoBuildSetting{std::move(key), std::move(value)});
    }
    line_num++;
  }
  return bi;
}

}  // namespace hostscope::identity
