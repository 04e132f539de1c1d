// TomlReader: typed, error-collecting access to a parsed TOML document.
// Each getter checks the value's type and unit and records a problem as
// "FILE:LINE:COLUMN: KEY: expected ..." instead of stopping, so a job
// file's problems are all reported at once. Unknown keys are found by
// listing the known ones per table (with a did-you-mean suggestion).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

namespace husk::job {

class TomlReader {
 public:
  explicit TomlReader(std::string file) : file_(std::move(file)) {}

  // Records a problem at `where` (a node's or key's source region).
  void error(const toml::source_region& where, std::string_view key, std::string_view what);
  // Records a problem of the file as a whole (reported at 1:1).
  void error(std::string_view what);
  // The problems so far, in the order of their place in the file.
  [[nodiscard]] std::vector<std::string> errors() const;
  [[nodiscard]] size_t error_count() const { return errors_.size(); }

  // Reports every string under `node` that holds a NUL character, except
  // under the keys in `binary_ok` (inline data): a C string (argv, env, a
  // path) ends at NUL, so such a value could never reach the guest whole.
  void refuse_nul(const toml::node& node, std::string_view path,
                  std::initializer_list<std::string_view> binary_ok);

  // Reports keys of `table` that are not in `known`; `prefix` is the
  // table's dotted path ("" for the root, "limits.", "steps[2].").
  void check_keys(const toml::table& table, std::string_view prefix,
                  std::initializer_list<std::string_view> known);

  // Typed getters: nullopt when absent or wrong (then an error is recorded).
  std::optional<std::string> string(const toml::table& t, std::string_view prefix, std::string_view key);
  std::optional<int64_t> integer(const toml::table& t, std::string_view prefix, std::string_view key,
                                 int64_t min, int64_t max);
  std::optional<bool> boolean(const toml::table& t, std::string_view prefix, std::string_view key);
  std::optional<std::chrono::milliseconds> duration(const toml::table& t, std::string_view prefix,
                                                    std::string_view key, std::chrono::milliseconds max);
  std::optional<uint64_t> size(const toml::table& t, std::string_view prefix, std::string_view key,
                               uint64_t min, uint64_t max);
  std::optional<int> signal(const toml::table& t, std::string_view prefix, std::string_view key);
  // A string that must be one of `choices`.
  std::optional<std::string> choice(const toml::table& t, std::string_view prefix, std::string_view key,
                                    std::initializer_list<std::string_view> choices);
  // An array of strings.
  std::optional<std::vector<std::string>> strings(const toml::table& t, std::string_view prefix,
                                                  std::string_view key);
  // A sub-table (absent: nullptr; not a table: error, nullptr).
  const toml::table* table(const toml::table& t, std::string_view prefix, std::string_view key);
  // An array of tables ([[key]]); absent: empty.
  std::vector<const toml::table*> tables(const toml::table& t, std::string_view prefix, std::string_view key);

  // Where `key` is in `t` (the value's region; the table's when absent).
  [[nodiscard]] static toml::source_region where(const toml::table& t, std::string_view key);

 private:
  // A string with a unit: parsed by `parse`, then `in_range` returns why
  // the value is out of range ("" when it is not).
  template <typename T, typename Parse, typename InRange>
  std::optional<T> unit_value(const toml::table& t, std::string_view prefix, std::string_view key,
                              std::string_view expected, Parse parse, InRange in_range);
  void wrong_type(const toml::node& n, std::string_view prefix, std::string_view key, std::string_view expected);

  struct Problem {
    uint32_t line = 0;
    uint32_t column = 0;
    std::string text;
  };
  std::string file_;
  std::vector<Problem> errors_;
};

// The closest of `candidates` to `word` (edit distance at most 2), or "".
// `text` with control characters escaped (\n, \x01, ...): one line.
[[nodiscard]] std::string one_line(std::string_view text);

[[nodiscard]] std::string closest_word(std::string_view word, std::initializer_list<std::string_view> candidates);

}  // namespace husk::job
