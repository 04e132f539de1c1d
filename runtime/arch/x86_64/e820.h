// The BIOS E820 memory map handed to the guest in boot_params.e820_table
// (Documentation/x86/zero-page.rst; ACPI spec, "Address Range Types").
#pragma once

#include <vector>

#include <asm/bootparam.h>

#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// RAM below the EBDA; the EBDA (MP table) and the BIOS area reserved; RAM
// from 1 MiB to the end of the low region; every other region as RAM.
// The kernel must not use memory the VMM keeps structures in or that a real
// PC would not have, and finds the MP table by scanning the reserved areas.
[[nodiscard]] std::vector<boot_e820_entry> build_e820(const GuestMemory& memory);

}  // namespace husk::x86_64
