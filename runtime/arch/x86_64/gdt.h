// The boot GDT and IDT (Intel SDM vol. 3A, 3.4.5 "Segment Descriptors").
// boot.rst, "64-bit Boot Protocol": __BOOT_CS (0x10) must be a flat
// execute/read segment and __BOOT_DS (0x18) a flat read/write one; a TSS
// at 0x20 gives TR a valid descriptor, which VM entry requires.
#pragma once

#include <array>
#include <cstdint>

#include <linux/kvm.h>

#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

inline constexpr size_t kBootGdtEntries = 5;
using BootGdt = std::array<uint64_t, kBootGdtEntries>;

// A descriptor from its flags (access byte in bits 0-7, G/DB/L/AVL in bits
// 12-15), base and limit, packed as the SDM's figure 3-8 lays it out.
[[nodiscard]] constexpr uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((uint64_t{base} & 0xff000000) << 32) | ((uint64_t{base} & 0x00ffffff) << 16) |
         (uint64_t{limit} & 0x0000ffff) | ((uint64_t{limit} & 0x000f0000) << 32) |
         ((uint64_t{flags} & 0xf0ff) << 40);
}

// {null, null, code64 at 0x10, data at 0x18, TSS at 0x20}, all flat.
[[nodiscard]] BootGdt boot_gdt();

// Writes boot_gdt() at kGdtAddr and a zero IDT entry at kIdtAddr (the
// kernel installs its own IDT before it enables interrupts).
[[nodiscard]] Result<void> write_boot_gdt(const GuestMemory& memory);

// The KVM view of a descriptor loaded with `selector`; the limit is in bytes
// (scaled by G) as KVM_SET_SREGS expects.
[[nodiscard]] kvm_segment segment_from_gdt_entry(uint64_t entry, uint16_t selector);

}  // namespace husk::x86_64
