// The zero page (struct boot_params) and the kernel command line for the
// 64-bit boot protocol (Documentation/x86/boot.rst, "64-bit Boot Protocol"
// and "The Kernel Command Line"; Documentation/x86/zero-page.rst), and where
// the initrd goes (boot.rst, initrd_addr_max).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// boot.rst, type_of_loader: 0xff means "undefined", the value for loaders
// with no assigned id.
inline constexpr uint8_t kLoaderTypeUndefined = 0xff;
// boot.rst, heap_end_ptr: only the 16-bit setup code reads it, which the
// 64-bit entry skips; kvmtool's value keeps the field sane.
inline constexpr uint16_t kHeapEndPtr = 0xfe00;
// What a vmlinux gets in its synthesized setup header: protocol 2.12 (the
// first with the 64-bit entry), the 16 MiB alignment of a default x86_64
// kernel (CONFIG_PHYSICAL_ALIGN).
inline constexpr uint16_t kElfBootProtocol = 0x020c;
inline constexpr uint32_t kElfKernelAlignment = 0x1000000;

struct BootConfig {
  std::string cmdline;
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;  // 0: no initrd
};

// Writes boot_params at kZeroPageAddr and the NUL-terminated command line at
// kCmdlineAddr. The initrd, if any, must already be placed (place_initrd).
[[nodiscard]] Result<void> write_boot_params(const GuestMemory& memory, const KernelImage& kernel,
                                             const BootConfig& config);

// The highest page-aligned guest address for an initrd of `initrd_size`
// bytes: it ends below both the kernel's initrd_addr_max and the end of low
// RAM, and starts above the kernel (as a bootloader places it, so the
// decompressing kernel never overwrites it).
[[nodiscard]] Result<uint64_t> place_initrd(const GuestMemory& memory, uint64_t initrd_size,
                                            const KernelImage& kernel);

// The lowest 2 MiB-aligned guest address above the kernel for an initrd of
// `initrd_size` bytes whose 2 MiB pages, rounded up, end below both the
// kernel's initrd_addr_max and the end of low RAM: an initrd that the VMM
// keeps out of KVM's memory slots until it is copied (BootImages). Low, so
// that the guest's first allocations, which take the highest free memory,
// never land in those pages; aligned, so that the slots on both sides
// keep their huge pages. An error when it does not fit.
[[nodiscard]] Result<uint64_t> place_initrd_apart(const GuestMemory& memory, uint64_t initrd_size,
                                                  const KernelImage& kernel);

}  // namespace husk::x86_64
