// Small text files of the kernel's interfaces (cgroupfs, /proc): read one
// whole, write one value. Private to the jail.
#pragma once

#include <string>

#include "runtime/common/result.h"

namespace husk::jail {

// The file's text (at most 1 MiB); errors: "cannot read PATH: strerror".
[[nodiscard]] Result<std::string> read_small_file(const std::string& path);

// Writes `value` in one write() (cgroupfs takes one value per write);
// errors: "write VALUE to PATH: strerror".
[[nodiscard]] Result<void> write_file(const std::string& path, const std::string& value);

// Whether a whitespace-separated list ("memory cpu pids") holds `word`.
[[nodiscard]] bool has_word(const std::string& list, const std::string& word);

}  // namespace husk::jail
