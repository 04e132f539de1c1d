#include "runtime/arch/x86_64/boot_params.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "runtime/arch/x86_64/bzimage_loader.h"
#include "runtime/arch/x86_64/e820.h"
#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/units.h"

namespace husk::x86_64 {

namespace {

// The end of the RAM region that starts at 0, or 0 when there is none.
uint64_t low_ram_end(const GuestMemory& memory) {
  for (const GuestRegion& region : memory.regions()) {
    if (region.gpa() == 0) return std::min(region.size(), kMmioGapStart);
  }
  return 0;
}

setup_header elf_setup_header() {
  setup_header hdr{};
  hdr.boot_flag = kBootFlagMagic;
  hdr.header = kHdrsMagic;
  hdr.version = kElfBootProtocol;
  hdr.kernel_alignment = kElfKernelAlignment;
  hdr.cmdline_size = kCmdlineMax - 1;
  return hdr;
}

Result<void> write_cmdline(const GuestMemory& memory, const std::string& cmdline,
                           uint64_t max_chars) {
  if (cmdline.find('\0') != std::string::npos) return fail("kernel command line contains a NUL byte");
  if (cmdline.size() > max_chars) {
    return fail(fmt::format("kernel command line is {} bytes, the limit is {}", cmdline.size(),
                            max_chars));
  }
  // c_str() includes the terminating NUL the kernel needs.
  return memory.write(kCmdlineAddr, std::span<const uint8_t>(
                                        reinterpret_cast<const uint8_t*>(cmdline.c_str()),
                                        cmdline.size() + 1));
}

Result<void> set_initrd(const GuestMemory& memory, const KernelImage& kernel,
                        const BootConfig& config, boot_params& params) {
  if (config.initrd_size == 0) return {};
  if (!memory.valid_range(config.initrd_addr, config.initrd_size)) {
    return fail(fmt::format("initrd at {:#x} of {} bytes is outside guest memory",
                            config.initrd_addr, config.initrd_size));
  }
  // valid_range proved the sum does not wrap.
  if (config.initrd_addr + config.initrd_size - 1 > kernel.initrd_addr_max) {
    return fail(fmt::format("initrd at {:#x} of {} bytes ends above the kernel's initrd_addr_max "
                            "{:#x}",
                            config.initrd_addr, config.initrd_size, kernel.initrd_addr_max));
  }
  // zero-page.rst: ext_ramdisk_* hold the high 32 bits.
  params.hdr.ramdisk_image = static_cast<uint32_t>(config.initrd_addr);
  params.ext_ramdisk_image = static_cast<uint32_t>(config.initrd_addr >> 32);
  params.hdr.ramdisk_size = static_cast<uint32_t>(config.initrd_size);
  params.ext_ramdisk_size = static_cast<uint32_t>(config.initrd_size >> 32);
  return {};
}

}  // namespace

Result<void> write_boot_params(const GuestMemory& memory, const KernelImage& kernel,
                               const BootConfig& config) {
  // boot.rst: start from an all-zero boot_params and copy in the setup
  // header; everything else the kernel reads is set here.
  boot_params params{};
  params.hdr = kernel.bzimage ? kernel.setup : elf_setup_header();
  params.hdr.type_of_loader = kLoaderTypeUndefined;
  params.hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP;
  params.hdr.heap_end_ptr = kHeapEndPtr;

  const uint64_t max_chars = std::min<uint64_t>(kCmdlineMax - 1, params.hdr.cmdline_size);
  HUSK_TRY(write_cmdline(memory, config.cmdline, max_chars));
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddr);
  params.ext_cmd_line_ptr = static_cast<uint32_t>(kCmdlineAddr >> 32);

  HUSK_TRY(set_initrd(memory, kernel, config, params));

  const std::vector<boot_e820_entry> e820 = build_e820(memory);
  if (e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
    return fail(fmt::format("memory map has {} entries, the zero page holds {}", e820.size(),
                            E820_MAX_ENTRIES_ZEROPAGE));
  }
  std::copy(e820.begin(), e820.end(), params.e820_table);
  params.e820_entries = static_cast<uint8_t>(e820.size());

  return memory.write_obj(kZeroPageAddr, params);
}

Result<uint64_t> place_initrd(const GuestMemory& memory, uint64_t initrd_size,
                              const KernelImage& kernel) {
  if (initrd_size == 0) return fail("initrd is empty");
  const uint64_t lowest = align_up(kernel.load_end, kPageSize);
  // initrd_addr_max is the highest usable byte, so the ceiling is one past it.
  const uint64_t ceiling = std::min(kernel.initrd_addr_max + 1, low_ram_end(memory));
  if (ceiling >= initrd_size && align_down(ceiling - initrd_size, kPageSize) >= lowest) {
    return align_down(ceiling - initrd_size, kPageSize);
  }
  if (lowest + initrd_size > kernel.initrd_addr_max + 1) {
    return fail(fmt::format("initrd of {} MiB does not fit between the kernel's end at {:#x} and "
                            "its initrd_addr_max {:#x}",
                            mib_rounded_up(initrd_size), lowest, kernel.initrd_addr_max));
  }
  return fail(fmt::format("initrd of {} MiB does not fit: the VM needs at least {} MiB",
                          mib_rounded_up(initrd_size), mib_rounded_up(lowest + initrd_size)));
}

Result<uint64_t> place_initrd_apart(const GuestMemory& memory, uint64_t initrd_size,
                                    const KernelImage& kernel) {
  if (initrd_size == 0) return fail("initrd is empty");
  const uint64_t start = align_up(kernel.load_end, kHugePageSize);
  const uint64_t ceiling = std::min(kernel.initrd_addr_max + 1, low_ram_end(memory));
  if (start < kernel.load_end || initrd_size > ceiling || align_up(initrd_size, kHugePageSize) > ceiling - start) {
    return fail(fmt::format("initrd of {} MiB does not fit in whole 2 MiB pages between the kernel's end at {:#x} "
                            "and {:#x}",
                            mib_rounded_up(initrd_size), kernel.load_end, ceiling));
  }
  return start;
}

}  // namespace husk::x86_64
