#include "exporters/exposition.h"

#include <fmt/format.h>

#include <cmath>

namespace hostscope::exporters {

void append_escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void Exposition::family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  for (char c : help) {  // HELP escapes only backslash and newline
    if (c == '\\') out_ += "\\\\";
    else if (c == '\n') out_ += "\\n";
    else out_ += c;
  }
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void Exposition::labels(const Labels& l) {
  if (l.empty()) return;
  out_ += '{';
  bool first = true;
  for (auto& [k, v] : l) {
    if (!first) out_ += ',';
    first = false;
    out_ += k;
    out_ += "=\"";
    append_escaped(out_, v);
    out_ += '"';
  }
  out_ += '}';
}

void Exposition::sample(std::string_view name, const Labels& l, double value) {
  out_ += name;
  labels(l);
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void Exposition::sample(std::string_view name, const Labels& l, uint64_t value) {
  out_ += name;
  labels(l);
  fmt::format_to(std::back_inserter(out_), " {}\n", value);
}

void Exposition::histogram(std::string_view name, Labels l, const std::vector<double>& bounds,
                           const std::vector<uint64_t>& cumulative, double sum, uint64_t count) {
  std::string bucket = std::string(name) + "_bucket";
  l.emplace_back("le", "");
  for (size_t i = 0; i < bounds.size() && i < cumulative.size(); ++i) {
    std::string le = format_value(bounds[i]);
    l.back().second = le;
    sample(bucket, l, cumulative[i]);
  }
  l.back().second = "+Inf";
  sample(bucket, l, count);
  l.pop_back();
  sample(std::string(name) + "_sum", l, sum);
  sample(std::string(name) + "_count", l, count);
}

}  // namespace hostscope::exporters
