// Loads a guest kernel of either format husk boots: an uncompressed vmlinux
// (ELF) or a bzImage (Documentation/x86/boot.rst), told apart by their magic.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// Where each piece of the kernel in `file` goes, from its headers, checked
// against guest memory; nothing is written (write_kernel does that).
[[nodiscard]] Result<KernelPlan> plan_kernel(const GuestMemory& memory, std::span<const uint8_t> file);

// plan_kernel, then write_kernel.
// `file` is the kernel's bytes (its headers are read there); with its
// descriptor `fd` too, a vmlinux's segments are read from the file, and
// with Destination::kZeroed (memory of a VM being built) the file's holes
// and the bss are left to the zero the memory has.
[[nodiscard]] Result<KernelImage> load_kernel(const GuestMemory& memory, std::span<const uint8_t> file,
                                              int fd = -1, Destination dest = Destination::kAny);

}  // namespace husk::x86_64
