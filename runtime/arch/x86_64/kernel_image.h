// KernelImage: what a kernel loader reports about the kernel it placed in
// guest memory, for boot_params (Documentation/x86/boot.rst) and the vCPU
// registers to use. KernelPlan: the same, decided from the file's headers
// before a byte is written, with the pieces of the file still to copy.
#pragma once

#include <cstdint>
#include <vector>

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

// One piece of the kernel file: file_len bytes from file_offset go to gpa,
// and the rest of its mem_len (a vmlinux segment's bss) reads as zero.
struct KernelSegment {
  uint64_t gpa = 0;
  uint64_t file_offset = 0;
  uint64_t file_len = 0;
  uint64_t mem_len = 0;
};

// Every field checked against the file and guest memory: writing the
// segments (write_kernel) cannot go astray whatever the file said.
struct KernelPlan {
  KernelImage image;
  std::vector<KernelSegment> segments;
  // Whether a new VM's memory gets page sizes to suit the bytes written
  // (GuestMemory::fit_page_sizes): a vmlinux leaves most of its bss and
  // holes to the guest, which touches them late or never; a bzImage
  // decompresses itself over its whole footprint at once, which huge
  // pages serve best.
  bool fit_page_sizes = false;
};

}  // namespace husk::x86_64
