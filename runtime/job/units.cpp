#include "runtime/job/units.h"

#include <signal.h>
#include <string.h>

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <utility>

#include <fmt/format.h>

namespace husk::job {

namespace {

// Splits "1.5m" into 1.5 and "m"; false when there is no number first.
bool split_number(std::string_view text, double& number, std::string_view& unit) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return false;
  const std::string_view digits = text.substr(0, i);
  if (digits.front() == '.' || digits.back() == '.') return false;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
  if (ec != std::errc() || end != digits.data() + digits.size() || !std::isfinite(number)) return false;
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return true;
}

template <size_t N>
bool find_factor(const std::array<std::pair<std::string_view, double>, N>& table, std::string_view unit,
                 double& factor) {
  for (const auto& [name, f] : table) {
    if (name == unit) {
      factor = f;
      return true;
    }
  }
  return false;
}

constexpr std::array<std::pair<std::string_view, double>, 8> kDurationUnits{{
    {"us", 1e-3}, {"ms", 1.0}, {"s", 1e3}, {"sec", 1e3}, {"m", 60e3}, {"min", 60e3}, {"h", 3600e3},
    {"d", 86400e3}}};

constexpr std::array<std::pair<std::string_view, double>, 13> kSizeUnits{{
    {"B", 1.0},
    {"K", 1024.0}, {"KiB", 1024.0}, {"kB", 1e3}, {"KB", 1e3},
    {"M", 1048576.0}, {"MiB", 1048576.0}, {"MB", 1e6},
    {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9},
    {"TiB", 1099511627776.0}, {"TB", 1e12}}};

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  const auto bad = [&](const char* why) {
    return fail(fmt::format("expected a duration such as \"10s\", \"1.5m\" or \"250ms\", got \"{}\"{}", text, why));
  };
  double number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return bad("");
  if (unit.empty()) return bad(" (add a unit: ms, s, m or h)");
  double factor = 0;
  if (!find_factor(kDurationUnits, unit, factor)) return bad(" (units: us, ms, s, m, min, h, d)");
  const double ms = number * factor;
  if (ms > 1e15) return bad(" (too large)");
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(ms)));
}

Result<uint64_t> parse_size(std::string_view text) {
  const auto bad = [&](const char* why) {
    return fail(fmt::format("expected a size such as \"256MiB\", \"1.5GiB\" or \"4096B\", got \"{}\"{}", text, why));
  };
  double number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) return bad("");
  if (unit.empty()) return bad(" (add a unit: B, KiB, MiB or GiB)");
  double factor = 0;
  if (!find_factor(kSizeUnits, unit, factor)) return bad(" (units: B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)");
  const double bytes = number * factor;
  const double rounded = std::round(bytes);
  if (rounded >= 18446744073709551616.0) return bad(" (too large)");
  if (unit == "B" && bytes != std::floor(bytes)) return bad(" (a byte count is whole)");
  return static_cast<uint64_t>(rounded);
}

Result<int> parse_signal(std::string_view text) {
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size()) {
    if (number >= 1 && number < SIGRTMIN) return number;
    return fail(fmt::format("expected a signal between 1 and {}, got {}", SIGRTMIN - 1, number));
  }
  std::string_view name = text;
  if (name.substr(0, 3) == "SIG") name.remove_prefix(3);
  for (int s = 1; s < SIGRTMIN; ++s) {
    const char* abbrev = ::sigabbrev_np(s);
    if (abbrev != nullptr && name == abbrev) return s;
  }
  return fail(fmt::format("expected a signal such as \"SIGTERM\", \"KILL\" or 15, got \"{}\"", text));
}

std::string format_duration(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms < 1000) return fmt::format("{} ms", ms);
  if (ms < 120'000) return fmt::format("{:.3g} s", static_cast<double>(ms) / 1e3);
  return fmt::format("{:.3g} min", static_cast<double>(ms) / 60e3);
}

std::string format_size(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1u << 20)) return fmt::format("{:.4g} KiB", b / 1024);
  if (bytes < (1ull << 30)) return fmt::format("{:.4g} MiB", b / 1048576);
  return fmt::format("{:.4g} GiB", b / 1073741824);
}

}  // namespace husk::job
