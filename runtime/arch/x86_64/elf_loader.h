// Loader for an uncompressed vmlinux: an ELF64 x86_64 executable whose PT_LOAD
// segments are copied to their physical addresses (System V gABI, "Program
// Loading"; Documentation/x86/boot.rst, "64-bit Boot Protocol" for the entry).
#pragma once

#include <cstdint>
#include <span>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// Every header field is checked against the file and guest memory; a
// hostile file gets an error, never a stray write. Nothing is written.
[[nodiscard]] Result<KernelPlan> plan_elf(const GuestMemory& memory, std::span<const uint8_t> file);

// plan_elf, then write_kernel (kernel_writer.h: `fd` and `dest`).
[[nodiscard]] Result<KernelImage> load_elf(const GuestMemory& memory, std::span<const uint8_t> file, int fd = -1,
                                           Destination dest = Destination::kAny);

}  // namespace husk::x86_64
