// KernelImage: what a kernel loader reports about the kernel it placed in
// guest memory, for boot_params (Documentation/x86/boot.rst) and the vCPU
// registers to use.
#pragma once

#include <cstdint>

#include <asm/bootparam.h>

namespace husk::x86_64 {

// boot.rst, initrd_addr_max: kernels since 2.6.x report 0x7fffffff; a vmlinux
// has no setup header to say so, so it gets the same ceiling.
inline constexpr uint64_t kDefaultInitrdAddrMax = 0x7fffffff;

struct KernelImage {
  uint64_t entry = 0;       // guest-physical 64-bit entry point
  uint64_t load_start = 0;  // first byte of the loaded kernel
  uint64_t load_end = 0;    // first byte after the kernel (bzImage: after init_size)
  bool bzimage = false;
  setup_header setup{};     // copied from the bzImage, zero for ELF
  uint64_t initrd_addr_max = kDefaultInitrdAddrMax;  // highest byte an initrd may use
};

}  // namespace husk::x86_64
