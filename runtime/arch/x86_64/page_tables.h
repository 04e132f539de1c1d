// The boot page tables: an identity map of the first 4 GiB with 2 MiB pages
// (Intel SDM vol. 3A, 4.5 "4-level paging"). boot.rst's 64-bit protocol
// needs the kernel, zero page and command line identity-mapped at entry;
// mapping all of 4 GiB covers them wherever they are placed below the gap.
#pragma once

#include <cstdint>

#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPtePageSize = 1ull << 7;  // in a PD entry: a 2 MiB page
inline constexpr uint64_t kPteAddressMask = 0x000ffffffffff000ull;

// PML4 at kPml4Addr -> PDPT at kPdptAddr -> kPdPages page directories from kPdAddr.
[[nodiscard]] Result<void> write_identity_page_tables(const GuestMemory& memory);

}  // namespace husk::x86_64
