#include "seccomp/programs.h"

#include <array>
#include <cstddef>

namespace husk::seccomp {

namespace {

// kPrograms[class][0: enforce, 1: log], written at build time.
#include "seccomp/programs.inc"

static_assert(kPrograms.size() == kAllThreadClasses.size(), "one baked program pair per thread class");

}  // namespace

std::span<const sock_filter> baked_program(ThreadClass c, Mode m) {
  if (m == Mode::kOff) return {};
  return kPrograms[static_cast<size_t>(c)][m == Mode::kEnforce ? 0 : 1];
}

}  // namespace husk::seccomp
