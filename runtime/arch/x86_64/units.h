// Sizes and alignment helpers shared by the x86_64 boot code: every loader
// reports sizes to the user in MiB and places things on page or kernel
// alignment boundaries.
#pragma once

#include <cstdint>

namespace husk::x86_64 {

inline constexpr uint64_t kKiB = 1ull << 10;
inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kGiB = 1ull << 30;
inline constexpr uint64_t kPageSize = 4 * kKiB;
// A huge page: the unit in which guest RAM is backed and mapped where the
// host allows it.
inline constexpr uint64_t kHugePageSize = 2 * kMiB;

// `align` must be a power of two. The caller guarantees `value` + `align`
// does not wrap (every caller works with guest addresses far below 2^63).
[[nodiscard]] constexpr uint64_t align_up(uint64_t value, uint64_t align) {
  return (value + align - 1) & ~(align - 1);
}

[[nodiscard]] constexpr uint64_t align_down(uint64_t value, uint64_t align) {
  return value & ~(align - 1);
}

[[nodiscard]] constexpr bool is_power_of_two(uint64_t value) {
  return value != 0 && (value & (value - 1)) == 0;
}

// Rounded up, so that "needs N MiB" is never an underestimate.
[[nodiscard]] constexpr uint64_t mib_rounded_up(uint64_t bytes) {
  return bytes / kMiB + (bytes % kMiB != 0 ? 1 : 0);
}

}  // namespace husk::x86_64
