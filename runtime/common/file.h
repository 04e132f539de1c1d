// Reading a whole host file (a kernel, an initrd) into memory, with a size
// cap so that a wrong path to a huge file fails cleanly instead of eating RAM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/result.h"

namespace husk {

// Errors name the path: "open /x/vmlinux: No such file or directory".
[[nodiscard]] Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size);

}  // namespace husk
