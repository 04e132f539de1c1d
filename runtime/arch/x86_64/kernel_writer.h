// write_kernel: copies a planned kernel (KernelPlan, from plan_elf or
// plan_bzimage) into guest memory. Planning reads only headers and writes
// nothing, so a VMM can place the initrd and start copying both at once.
#pragma once

#include <span>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// `file` is the kernel's bytes and `fd` its descriptor (or -1). With the
// descriptor, the segments are read from it (GuestMemory::read_file, with
// `dest`) and no page of `file` is touched; without it they are copied
// from `file`. A segment's bss is zeroed unless `dest` says the memory is
// (Destination::kZeroed: touching it would cost its pages now rather than
// when the guest uses them).
[[nodiscard]] Result<KernelImage> write_kernel(const GuestMemory& memory, const KernelPlan& plan,
                                               std::span<const uint8_t> file, int fd, Destination dest);

}  // namespace husk::x86_64
