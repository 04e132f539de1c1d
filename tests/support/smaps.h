// vm_flags_at: the VmFlags line of this process's mapping that holds an
// address (/proc/self/smaps): "hg" is MADV_HUGEPAGE, "nh" MADV_NOHUGEPAGE,
// "dd" MADV_DONTDUMP. Empty when no mapping holds it.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace husk::test {

inline std::string vm_flags_at(const void* host) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(host);
  bool in = false;
  for (std::string line; std::getline(smaps, line);) {
    uintptr_t from = 0;
    uintptr_t to = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> from >> dash >> to && dash == '-') in = from <= at && at < to;
    if (in && line.rfind("VmFlags:", 0) == 0) return line;
  }
  return {};
}

}  // namespace husk::test
