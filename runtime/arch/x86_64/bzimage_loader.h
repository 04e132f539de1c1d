// Loader for a bzImage entered through the 64-bit boot protocol
// (Documentation/x86/boot.rst: "The Real-Mode Kernel Header", "Loading The
// Rest of The Kernel", "64-bit Boot Protocol"). Only the protected-mode part
// is loaded; the real-mode setup code is never run, but its setup header is
// kept for boot_params.
#pragma once

#include <cstdint>
#include <span>

#include "runtime/arch/x86_64/kernel_image.h"
#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// boot.rst: setup_header starts at 0x1f1 in the file, "HdrS" at 0x202.
inline constexpr uint64_t kSetupHeaderOffset = 0x1f1;
inline constexpr uint64_t kHdrsOffset = 0x202;
inline constexpr uint32_t kHdrsMagic = 0x53726448;  // "HdrS", little-endian
inline constexpr uint16_t kBootFlagMagic = 0xaa55;
// 2.12 brought xloadflags, which says whether the 64-bit entry exists.
inline constexpr uint16_t kMinBootProtocol = 0x020c;
// boot.rst, "64-bit Boot Protocol": entry is the load address plus 0x200.
inline constexpr uint64_t kStartup64Offset = 0x200;

// Requires the 64-bit entry point (protocol 2.12+, XLF_KERNEL_64). A
// relocatable kernel goes at pref_address or the lowest aligned address that
// fits; one that is not relocatable runs at pref_address, so it goes there.
// KernelImage::setup gets code32_start and the kernel_alignment used.
// Nothing is written.
[[nodiscard]] Result<KernelPlan> plan_bzimage(const GuestMemory& memory, std::span<const uint8_t> file);

// plan_bzimage, then write_kernel (kernel_writer.h: `fd` and `dest`).
[[nodiscard]] Result<KernelImage> load_bzimage(const GuestMemory& memory, std::span<const uint8_t> file,
                                               int fd = -1, Destination dest = Destination::kAny);

}  // namespace husk::x86_64
