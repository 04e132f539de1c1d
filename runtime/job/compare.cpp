#include "runtime/job/compare.h"

#include <vector>

namespace husk::job {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Lines without their trailing whitespace, without empty lines at the end.
std::vector<std::string_view> trimmed_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

std::vector<std::string_view> tokens(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

}  // namespace

bool outputs_match(Compare mode, std::string_view expected, std::string_view actual) {
  switch (mode) {
    case Compare::kExact: return expected == actual;
    case Compare::kTrailingWhitespace: return trimmed_lines(expected) == trimmed_lines(actual);
    case Compare::kTokens: return tokens(expected) == tokens(actual);
    case Compare::kChecker: break;
  }
  return false;
}

const char* compare_name(Compare mode) {
  switch (mode) {
    case Compare::kExact: return "exact";
    case Compare::kTrailingWhitespace: return "trailing-whitespace";
    case Compare::kTokens: return "tokens";
    case Compare::kChecker: return "checker";
  }
  return "?";
}

}  // namespace husk::job
