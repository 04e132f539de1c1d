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

std::string first_difference(Compare mode, std::string_view expected, std::string_view actual) {
  // Quoted and cut short: the texts are the program's, of any size.
  const auto quote = [](std::string_view s) {
    std::string out = "\"";
    for (char c : s.substr(0, 40)) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return out + (s.size() > 40 ? "...\"" : "\"");
  };
  std::vector<std::string_view> want, got;
  const char* unit = "line";
  if (mode == Compare::kTokens) {
    want = tokens(expected);
    got = tokens(actual);
    unit = "token";
  } else if (mode == Compare::kTrailingWhitespace) {
    want = trimmed_lines(expected);
    got = trimmed_lines(actual);
  } else {
    size_t line = 1, i = 0;
    while (i < expected.size() && i < actual.size() && expected[i] == actual[i]) line += expected[i++] == '\n';
    if (i == expected.size() && i == actual.size()) return "no difference";
    return std::string("byte ") + std::to_string(i) + " (line " + std::to_string(line) + "): expected " +
           (i < expected.size() ? quote(expected.substr(i, 1)) : "the end") + ", got " +
           (i < actual.size() ? quote(actual.substr(i, 1)) : "the end");
  }
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  if (i == want.size() && i == got.size()) return "no difference";
  return std::string(unit) + " " + std::to_string(i + 1) + ": expected " + (i < want.size() ? quote(want[i]) : "the end") +
         ", got " + (i < got.size() ? quote(got[i]) : "the end");
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
