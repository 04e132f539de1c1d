// The units of job files: durations ("250ms", "10s", "1.5m", "2h"), sizes
// ("512KiB", "256MiB", "1.5GiB", "100MB", "4096B") and signals ("SIGTERM",
// "TERM", "15"). A number without a unit is refused: "10" could mean
// anything. Errors say what was expected and give an example.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/common/result.h"

namespace husk::job {

[[nodiscard]] Result<std::chrono::milliseconds> parse_duration(std::string_view text);
[[nodiscard]] Result<uint64_t> parse_size(std::string_view text);
[[nodiscard]] Result<int> parse_signal(std::string_view text);

// "1.5 s", "256 MiB": for messages and the human report.
[[nodiscard]] std::string format_duration(std::chrono::milliseconds d);
[[nodiscard]] std::string format_size(uint64_t bytes);

}  // namespace husk::job
