#include "runtime/job/toml_reader.h"

#include <algorithm>

#include <fmt/format.h>

#include "runtime/job/units.h"

namespace husk::job {

namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    default: return "a date or time";
  }
}

std::string full_key(std::string_view prefix, std::string_view key) {
  return std::string(prefix) + std::string(key);
}

}  // namespace

std::string closest_word(std::string_view word, std::initializer_list<std::string_view> candidates) {
  std::string best;
  size_t best_distance = 3;
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = std::string(c);
    }
  }
  return best;
}

// One problem is one line: control characters from the job's own values
// (a newline in a quoted path) are shown escaped, so no value can split a
// problem or forge another "FILE:LINE:COLUMN:" line.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

void TomlReader::error(const toml::source_region& where, std::string_view key, std::string_view what) {
  errors_.push_back(Problem{where.begin.line, where.begin.column,
                            fmt::format("{}:{}:{}: {}{}{}", file_, where.begin.line, where.begin.column,
                                        one_line(key), key.empty() ? "" : ": ", one_line(what))});
}

void TomlReader::error(std::string_view what) {
  errors_.push_back(Problem{1, 1, fmt::format("{}:1:1: {}", file_, one_line(what))});
}

void TomlReader::refuse_nul(const toml::node& node, std::string_view path,
                            std::initializer_list<std::string_view> binary_ok) {
  if (const auto* s = node.as_string()) {
    if (s->get().find('\0') != std::string::npos) {
      error(node.source(), path, "contains a NUL character (\\u0000), which cannot be passed to the guest");
    }
  } else if (const auto* t = node.as_table()) {
    for (const auto& [key, value] : *t) {
      if (std::find(binary_ok.begin(), binary_ok.end(), key.str()) != binary_ok.end()) continue;
      refuse_nul(value, path.empty() ? std::string(key.str()) : fmt::format("{}.{}", path, key.str()), binary_ok);
    }
  } else if (const auto* a = node.as_array()) {
    for (size_t i = 0; i < a->size(); ++i) refuse_nul(*a->get(i), fmt::format("{}[{}]", path, i), binary_ok);
  }
}

std::vector<std::string> TomlReader::errors() const {
  std::vector<Problem> sorted = errors_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Problem& a, const Problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  std::vector<std::string> out;
  for (Problem& p : sorted) out.push_back(std::move(p.text));
  return out;
}

toml::source_region TomlReader::where(const toml::table& t, std::string_view key) {
  if (const toml::node* n = t.get(key)) return n->source();
  return t.source();
}

void TomlReader::check_keys(const toml::table& table, std::string_view prefix,
                            std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    const std::string suggestion = closest_word(name, known);
    error(key.source(), "",
          fmt::format("unknown key '{}{}'{}", prefix, name,
                      suggestion.empty() ? "" : fmt::format(" (did you mean '{}{}'?)", prefix, suggestion)));
  }
}

void TomlReader::wrong_type(const toml::node& n, std::string_view prefix, std::string_view key,
                            std::string_view expected) {
  error(n.source(), full_key(prefix, key), fmt::format("expected {}, got {}", expected, type_name(n)));
}

std::optional<std::string> TomlReader::string(const toml::table& t, std::string_view prefix, std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  if (const auto* s = n->as_string()) return s->get();
  wrong_type(*n, prefix, key, "a string");
  return std::nullopt;
}

std::optional<int64_t> TomlReader::integer(const toml::table& t, std::string_view prefix, std::string_view key,
                                           int64_t min, int64_t max) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* i = n->as_integer();
  if (i == nullptr) {
    wrong_type(*n, prefix, key, "an integer");
    return std::nullopt;
  }
  if (i->get() < min || i->get() > max) {
    error(n->source(), full_key(prefix, key), fmt::format("expected an integer from {} to {}, got {}", min, max, i->get()));
    return std::nullopt;
  }
  return i->get();
}

std::optional<bool> TomlReader::boolean(const toml::table& t, std::string_view prefix, std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  if (const auto* b = n->as_boolean()) return b->get();
  wrong_type(*n, prefix, key, "true or false");
  return std::nullopt;
}

template <typename T, typename Parse, typename InRange>
std::optional<T> TomlReader::unit_value(const toml::table& t, std::string_view prefix, std::string_view key,
                                        std::string_view expected, Parse parse, InRange in_range) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* s = n->as_string();
  if (s == nullptr) {
    wrong_type(*n, prefix, key, expected);
    return std::nullopt;
  }
  auto value = parse(s->get());
  if (!value) {
    error(n->source(), full_key(prefix, key), value.error().message);
    return std::nullopt;
  }
  if (std::string why = in_range(*value); !why.empty()) {
    error(n->source(), full_key(prefix, key), fmt::format("expected {}, got \"{}\"", why, s->get()));
    return std::nullopt;
  }
  return *value;
}

std::optional<std::chrono::milliseconds> TomlReader::duration(const toml::table& t, std::string_view prefix,
                                                              std::string_view key, std::chrono::milliseconds max) {
  return unit_value<std::chrono::milliseconds>(
      t, prefix, key, "a duration string such as \"10s\"", parse_duration, [max](std::chrono::milliseconds d) {
        return d.count() <= 0 || d > max ? fmt::format("more than 0 and at most {}", format_duration(max)) : "";
      });
}

std::optional<uint64_t> TomlReader::size(const toml::table& t, std::string_view prefix, std::string_view key,
                                         uint64_t min, uint64_t max) {
  return unit_value<uint64_t>(t, prefix, key, "a size string such as \"256MiB\"", parse_size, [min, max](uint64_t b) {
    return b < min || b > max ? fmt::format("from {} to {}", format_size(min), format_size(max)) : "";
  });
}

std::optional<int> TomlReader::signal(const toml::table& t, std::string_view prefix, std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  Result<int> signo = fail("");
  if (const auto* s = n->as_string()) {
    signo = parse_signal(s->get());
  } else if (const auto* i = n->as_integer()) {
    signo = parse_signal(std::to_string(i->get()));
  } else {
    wrong_type(*n, prefix, key, "a signal name or number");
    return std::nullopt;
  }
  if (!signo) {
    error(n->source(), full_key(prefix, key), signo.error().message);
    return std::nullopt;
  }
  return *signo;
}

std::optional<std::string> TomlReader::choice(const toml::table& t, std::string_view prefix, std::string_view key,
                                              std::initializer_list<std::string_view> choices) {
  auto s = string(t, prefix, key);
  if (!s) return std::nullopt;
  if (std::find(choices.begin(), choices.end(), *s) != choices.end()) return s;
  std::string list;
  for (std::string_view c : choices) list += fmt::format("{}\"{}\"", list.empty() ? "" : ", ", c);
  const std::string suggestion = closest_word(*s, choices);
  error(where(t, key), full_key(prefix, key),
        fmt::format("expected one of {}, got \"{}\"{}", list, *s,
                    suggestion.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", suggestion)));
  return std::nullopt;
}

std::optional<std::vector<std::string>> TomlReader::strings(const toml::table& t, std::string_view prefix,
                                                            std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  const auto* a = n->as_array();
  if (a == nullptr) {
    wrong_type(*n, prefix, key, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool ok = true;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    if (const auto* s = e.as_string()) {
      out.push_back(s->get());
    } else {
      wrong_type(e, prefix, fmt::format("{}[{}]", key, i), "a string");
      ok = false;
    }
  }
  return ok ? std::optional(out) : std::nullopt;
}

const toml::table* TomlReader::table(const toml::table& t, std::string_view prefix, std::string_view key) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return nullptr;
  if (const auto* tt = n->as_table()) return tt;
  wrong_type(*n, prefix, key, "a table");
  return nullptr;
}

std::vector<const toml::table*> TomlReader::tables(const toml::table& t, std::string_view prefix,
                                                   std::string_view key) {
  std::vector<const toml::table*> out;
  const toml::node* n = t.get(key);
  if (n == nullptr) return out;
  const auto* a = n->as_array();
  if (a == nullptr) {
    wrong_type(*n, prefix, key, fmt::format("an array of tables ([[{}]])", key));
    return out;
  }
  for (size_t i = 0; i < a->size(); ++i) {
    if (const auto* tt = a->get(i)->as_table()) {
      out.push_back(tt);
    } else {
      wrong_type(*a->get(i), prefix, fmt::format("{}[{}]", key, i), "a table");
    }
  }
  return out;
}

}  // namespace husk::job
