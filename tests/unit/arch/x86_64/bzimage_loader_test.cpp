#include "runtime/arch/x86_64/bzimage_loader.h"

#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using Catch::Matchers::Contains;
using namespace husk::x86_64::test;

std::string load_error(const std::vector<uint8_t>& file) {
  GuestMemory memory = make_memory();
  auto image = load_bzimage(memory, file);
  REQUIRE_FALSE(image);
  return image.error().message;
}

TEST_CASE("load_bzimage loads the protected-mode kernel at pref_address", "[arch][bzimage]") {
  GuestMemory memory = make_memory();
  auto image = load_bzimage(memory, make_bzimage());
  REQUIRE(image);
  CHECK(image->bzimage);
  CHECK(image->load_start == 0x1000000);
  CHECK(image->entry == 0x1000000 + 0x200);
  CHECK(image->load_end == 0x1000000 + 4 * kMiB);
  CHECK(image->initrd_addr_max == 0x7fffffff);

  // The setup header is kept, with the fields a loader fills in.
  CHECK(uint64_t{image->setup.header} == kHdrsMagic);
  CHECK(uint64_t{image->setup.version} == 0x020f);
  CHECK(uint64_t{image->setup.cmdline_size} == 2047);
  CHECK(uint64_t{image->setup.code32_start} == 0x1000000);
  CHECK(uint64_t{image->setup.kernel_alignment} == 0x1000000);

  std::vector<uint8_t> loaded(kBzPayloadSize);
  REQUIRE(memory.read(0x1000000, loaded));
  CHECK(loaded == pattern(kBzPayloadSize, 3));
}

TEST_CASE("load_bzimage treats setup_sects 0 as 4", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();
  hdr.setup_sects = 0;
  GuestMemory memory = make_memory();
  auto image = load_bzimage(memory, make_bzimage(hdr));
  REQUIRE(image);
  std::vector<uint8_t> loaded(kBzPayloadSize);
  REQUIRE(memory.read(image->load_start, loaded));
  CHECK(loaded == pattern(kBzPayloadSize, 3));
}

TEST_CASE("load_bzimage lowers the alignment when pref_address does not fit", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();
  hdr.init_size = 20 * kMiB;
  GuestMemory memory = make_memory({{0, 32 * kMiB}});
  auto image = load_bzimage(memory, make_bzimage(hdr));
  REQUIRE(image);
  // 16 MiB + 20 MiB does not fit in 32 MiB; 8 MiB alignment does.
  CHECK(image->load_start == 8 * kMiB);
  CHECK(image->entry == 8 * kMiB + 0x200);
  CHECK(uint64_t{image->setup.kernel_alignment} == 8 * kMiB);
  CHECK(uint64_t{image->setup.code32_start} == 8 * kMiB);
}

// husk's own kernel is built without CONFIG_RELOCATABLE: boot.rst (init_size)
// says such a kernel runs at pref_address, so that is where it is loaded.
TEST_CASE("load_bzimage loads a non-relocatable kernel at pref_address", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();
  hdr.relocatable_kernel = 0;
  hdr.init_size = 12 * kMiB;

  SECTION("it fits") {
    GuestMemory memory = make_memory({{0, 32 * kMiB}});
    auto image = load_bzimage(memory, make_bzimage(hdr));
    REQUIRE(image);
    CHECK(image->load_start == 0x1000000);
    CHECK(image->entry == 0x1000200);
    CHECK(image->load_end == 0x1000000 + 12 * kMiB);
  }
  SECTION("no lower address is tried") {
    GuestMemory memory = make_memory({{0, 24 * kMiB}});
    auto image = load_bzimage(memory, make_bzimage(hdr));
    REQUIRE_FALSE(image);
    CHECK(image.error().message == "kernel needs 28 MiB of guest memory, the VM has 24 MiB");
  }
}

TEST_CASE("load_bzimage names the memory a too-large kernel needs", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();
  hdr.init_size = 100 * kMiB;
  // Lowest placement: 2 MiB (min_alignment 21) + 100 MiB.
  CHECK(load_error(make_bzimage(hdr)) == "kernel needs 102 MiB of guest memory, the VM has 64 MiB");
}

TEST_CASE("load_bzimage refuses unsupported or damaged images", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();

  SECTION("boot protocol older than 2.12") {
    hdr.version = 0x020b;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("2.11") && Contains("2.12"));
  }
  SECTION("no 64-bit entry point") {
    hdr.xloadflags = 0;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("XLF_KERNEL_64"));
  }
  SECTION("not relocatable and no usable pref_address") {
    hdr.relocatable_kernel = 0;
    hdr.pref_address = 0;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("not relocatable"));
  }
  SECTION("kernel_alignment not a power of two") {
    hdr.kernel_alignment = 0x300000;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("power of two"));
  }
  SECTION("kernel_alignment zero") {
    hdr.kernel_alignment = 0;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("power of two"));
  }
  SECTION("bad boot_flag") {
    hdr.boot_flag = 0x1234;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("boot_flag"));
  }
  SECTION("no HdrS") {
    hdr.header = 0;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("HdrS"));
  }
  SECTION("setup header too short for init_size") {
    hdr.jump = 0x50eb;
    CHECK_THAT(load_error(make_bzimage(hdr)), Contains("init_size"));
  }
}

TEST_CASE("load_bzimage refuses truncated files", "[arch][bzimage]") {
  auto file = make_bzimage();

  SECTION("too short for a setup header") {
    file.resize(0x220);
    CHECK_THAT(load_error(file), Contains("truncated"));
  }
  SECTION("cut inside the setup sectors") {
    file.resize(kBzKernelOffset - 1);
    CHECK_THAT(load_error(file), Contains("truncated"));
  }
  SECTION("cut inside the kernel") {
    file.resize(kBzKernelOffset + kBzPayloadSize - 16);
    CHECK_THAT(load_error(file), Contains("truncated"));
  }
}

TEST_CASE("load_bzimage ignores bytes past the setup header's end", "[arch][bzimage]") {
  setup_header hdr = default_bz_header();
  // Protocol 2.12's header ends after init_size (at 0x264): what follows in
  // the file is setup code, not handover_offset or kernel_info_offset.
  hdr.jump = 0x62eb;
  hdr.handover_offset = 0xdeadbeef;
  hdr.kernel_info_offset = 0xdeadbeef;
  GuestMemory memory = make_memory();
  auto image = load_bzimage(memory, make_bzimage(hdr));
  REQUIRE(image);
  CHECK(uint64_t{image->setup.init_size} == 4 * kMiB);
  CHECK(uint64_t{image->setup.handover_offset} == 0);
  CHECK(uint64_t{image->setup.kernel_info_offset} == 0);
}

}  // namespace
}  // namespace husk::x86_64
