#include "runtime/arch/x86_64/boot_params.h"

#include <cstring>
#include <string>

#include "runtime/arch/x86_64/e820.h"
#include "runtime/arch/x86_64/layout.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using Catch::Matchers::Contains;
using namespace husk::x86_64::test;

KernelImage elf_kernel() {
  KernelImage image;
  image.entry = kVmlinuxPhys;
  image.load_start = kVmlinuxPhys;
  image.load_end = kVmlinuxPhys + 8 * kMiB;
  return image;
}

boot_params read_params(const GuestMemory& memory) {
  auto params = memory.read_obj<boot_params>(kZeroPageAddr);
  REQUIRE(params);
  return *params;
}

std::string read_cmdline(const GuestMemory& memory, size_t size) {
  std::vector<uint8_t> bytes(size);
  REQUIRE(memory.read(kCmdlineAddr, bytes));
  return std::string(bytes.begin(), bytes.end());
}

TEST_CASE("write_boot_params for a vmlinux synthesizes a setup header", "[arch][boot_params]") {
  GuestMemory memory = make_memory();
  BootConfig config{"console=ttyS0 reboot=k panic=1", 0x3000000, 0x12345};
  REQUIRE(write_boot_params(memory, elf_kernel(), config));

  const boot_params params = read_params(memory);
  const setup_header hdr = params.hdr;
  CHECK(uint32_t{hdr.boot_flag} == kBootFlagMagic);
  CHECK(uint32_t{hdr.header} == kHdrsMagic);
  CHECK(uint32_t{hdr.version} == kElfBootProtocol);
  CHECK(uint32_t{hdr.kernel_alignment} == kElfKernelAlignment);
  CHECK(uint32_t{hdr.type_of_loader} == kLoaderTypeUndefined);
  CHECK((hdr.loadflags & LOADED_HIGH) != 0);
  CHECK((hdr.loadflags & CAN_USE_HEAP) != 0);
  CHECK(uint32_t{hdr.heap_end_ptr} == kHeapEndPtr);

  CHECK(uint64_t{hdr.cmd_line_ptr} == kCmdlineAddr);
  CHECK(uint32_t{params.ext_cmd_line_ptr} == 0);
  // The command line and its NUL.
  CHECK(read_cmdline(memory, config.cmdline.size() + 1) == config.cmdline + std::string(1, '\0'));

  CHECK(uint32_t{hdr.ramdisk_image} == 0x3000000);
  CHECK(uint32_t{hdr.ramdisk_size} == 0x12345);
  CHECK(uint32_t{params.ext_ramdisk_image} == 0);
  CHECK(uint32_t{params.ext_ramdisk_size} == 0);
}

TEST_CASE("write_boot_params copies the e820 map", "[arch][boot_params]") {
  GuestMemory memory = make_memory();
  REQUIRE(write_boot_params(memory, elf_kernel(), BootConfig{"quiet"}));
  const boot_params params = read_params(memory);
  const std::vector<boot_e820_entry> expected = build_e820(memory);
  REQUIRE(uint32_t{params.e820_entries} == expected.size());
  CHECK(std::memcmp(params.e820_table, expected.data(), expected.size() * sizeof(boot_e820_entry)) == 0);
}

TEST_CASE("write_boot_params for a bzImage starts from its setup header", "[arch][boot_params]") {
  GuestMemory memory = make_memory();
  KernelImage kernel = elf_kernel();
  kernel.bzimage = true;
  kernel.setup = default_bz_header();
  kernel.setup.cmdline_size = 10;

  SECTION("header fields kept, loader fields set") {
    REQUIRE(write_boot_params(memory, kernel, BootConfig{"0123456789"}));
    const setup_header hdr = read_params(memory).hdr;
    CHECK(uint32_t{hdr.version} == 0x020f);
    CHECK(uint32_t{hdr.init_size} == 4 * kMiB);
    CHECK(uint32_t{hdr.type_of_loader} == kLoaderTypeUndefined);
    CHECK(read_cmdline(memory, 11) == std::string("0123456789") + std::string(1, '\0'));
  }
  SECTION("command line longer than the kernel's cmdline_size") {
    auto result = write_boot_params(memory, kernel, BootConfig{"0123456789a"});
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Contains("limit is 10"));
  }
}

TEST_CASE("write_boot_params refuses bad command lines", "[arch][boot_params]") {
  GuestMemory memory = make_memory();
  SECTION("longer than the command-line area") {
    auto result = write_boot_params(memory, elf_kernel(), BootConfig{std::string(kCmdlineMax, 'a')});
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Contains("command line"));
  }
  SECTION("the longest that fits") {
    CHECK(write_boot_params(memory, elf_kernel(), BootConfig{std::string(kCmdlineMax - 1, 'a')}));
  }
  SECTION("an embedded NUL") {
    CHECK_FALSE(write_boot_params(memory, elf_kernel(), BootConfig{std::string("a\0b", 3)}));
  }
}

TEST_CASE("write_boot_params splits an initrd address above 4 GiB", "[arch][boot_params]") {
  GuestMemory memory = make_memory({{0, 64 * kMiB}, {kMmioGapEnd, 64 * kMiB}});
  KernelImage kernel = elf_kernel();
  kernel.initrd_addr_max = 0xffffffffffff;
  REQUIRE(write_boot_params(memory, kernel, BootConfig{"", kMmioGapEnd + kMiB, 0x2000}));
  const boot_params params = read_params(memory);
  CHECK(uint32_t{params.hdr.ramdisk_image} == kMiB);
  CHECK(uint32_t{params.ext_ramdisk_image} == 1);
  CHECK(uint32_t{params.hdr.ramdisk_size} == 0x2000);
}

TEST_CASE("write_boot_params refuses a misplaced initrd", "[arch][boot_params]") {
  GuestMemory memory = make_memory();
  SECTION("outside guest memory") {
    CHECK_FALSE(write_boot_params(memory, elf_kernel(), BootConfig{"", 63 * kMiB, 2 * kMiB}));
  }
  SECTION("above initrd_addr_max") {
    KernelImage kernel = elf_kernel();
    kernel.initrd_addr_max = 32 * kMiB - 1;
    auto result = write_boot_params(memory, kernel, BootConfig{"", 32 * kMiB - 0x1000, 0x2000});
    REQUIRE_FALSE(result);
    CHECK_THAT(result.error().message, Contains("initrd_addr_max"));
  }
}

TEST_CASE("place_initrd picks the highest page-aligned fit", "[arch][initrd]") {
  GuestMemory memory = make_memory();
  const uint64_t size = kMiB + 100;
  auto addr = place_initrd(memory, size, elf_kernel());
  REQUIRE(addr);
  CHECK(*addr % kPageSize == 0);
  CHECK(*addr + size <= 64 * kMiB);
  CHECK(*addr + size + kPageSize > 64 * kMiB);
}

TEST_CASE("place_initrd stays below initrd_addr_max", "[arch][initrd]") {
  GuestMemory memory = make_memory();
  KernelImage kernel = elf_kernel();
  kernel.initrd_addr_max = 32 * kMiB - 1;
  auto addr = place_initrd(memory, 2 * kMiB, kernel);
  REQUIRE(addr);
  CHECK(*addr == 30 * kMiB);
}

TEST_CASE("place_initrd refuses an initrd that does not fit", "[arch][initrd]") {
  GuestMemory memory = make_memory();
  SECTION("more than the VM's memory above the kernel") {
    auto addr = place_initrd(memory, 60 * kMiB, elf_kernel());
    REQUIRE_FALSE(addr);
    // The kernel ends at 24 MiB; 24 + 60 = 84.
    CHECK(addr.error().message == "initrd of 60 MiB does not fit: the VM needs at least 84 MiB");
  }
  SECTION("above the kernel's initrd_addr_max") {
    KernelImage kernel = elf_kernel();
    kernel.initrd_addr_max = 32 * kMiB - 1;
    auto addr = place_initrd(memory, 10 * kMiB, kernel);
    REQUIRE_FALSE(addr);
    CHECK_THAT(addr.error().message, Contains("initrd of 10 MiB") && Contains("initrd_addr_max"));
  }
  SECTION("empty") {
    CHECK_FALSE(place_initrd(memory, 0, elf_kernel()));
  }
}

TEST_CASE("place_initrd_apart: the lowest 2 MiB boundary above the kernel where whole 2 MiB pages fit",
          "[arch][initrd]") {
  GuestMemory memory = make_memory();  // 64 MiB; the kernel ends at 24 MiB
  KernelImage kernel = elf_kernel();
  auto addr = place_initrd_apart(memory, 3 * kMiB + 5, kernel);
  REQUIRE(addr);
  CHECK(*addr == 24 * kMiB);
  kernel.load_end = 24 * kMiB + 1;
  addr = place_initrd_apart(memory, 3 * kMiB, kernel);
  REQUIRE(addr);
  CHECK(*addr == 26 * kMiB);
  // Its pages, rounded up to 2 MiB, end at the end of memory at most.
  CHECK(place_initrd_apart(memory, 38 * kMiB, kernel));
  auto over = place_initrd_apart(memory, 38 * kMiB + 1, kernel);
  REQUIRE_FALSE(over);
  CHECK_THAT(over.error().message, Contains("initrd of 39 MiB") && Contains("whole 2 MiB pages"));
  kernel.initrd_addr_max = 32 * kMiB - 1;
  CHECK(place_initrd_apart(memory, 6 * kMiB, kernel));
  CHECK_FALSE(place_initrd_apart(memory, 6 * kMiB + 1, kernel));
  CHECK_FALSE(place_initrd_apart(memory, 0, kernel));
}

}  // namespace
}  // namespace husk::x86_64
