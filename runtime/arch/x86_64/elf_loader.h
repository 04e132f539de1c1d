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

// Every header field is checked against the file and guest memory before
// anything is copied; a hostile file gets an error, never a stray write.
// With the file's descriptor `fd`, segments are read from it
// (GuestMemory::read_file, with `dest`) rather than copied from `file`'s
// pages. Destination::kZeroed also leaves the bss to the zero it has.
[[nodiscard]] Result<KernelImage> load_elf(const GuestMemory& memory, std::span<const uint8_t> file, int fd = -1,
                                           Destination dest = Destination::kAny);

}  // namespace husk::x86_64
