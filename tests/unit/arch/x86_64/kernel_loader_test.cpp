#include "runtime/arch/x86_64/kernel_loader.h"

#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using namespace husk::x86_64::test;

TEST_CASE("load_kernel picks the loader by magic", "[arch][kernel]") {
  GuestMemory memory = make_memory();

  SECTION("vmlinux") {
    auto image = load_kernel(memory, make_vmlinux());
    REQUIRE(image);
    CHECK_FALSE(image->bzimage);
    CHECK(image->entry == kVmlinuxPhys);
  }
  SECTION("bzImage") {
    auto image = load_kernel(memory, make_bzimage());
    REQUIRE(image);
    CHECK(image->bzimage);
    CHECK(image->entry == 0x1000200);
  }
  SECTION("a damaged ELF gets the ELF loader's error") {
    auto file = make_vmlinux();
    file[EI_CLASS] = ELFCLASS32;
    auto image = load_kernel(memory, file);
    REQUIRE_FALSE(image);
    CHECK_THAT(image.error().message, Catch::Matchers::Contains("64-bit"));
  }
}

TEST_CASE("load_kernel refuses a file that is neither format", "[arch][kernel]") {
  GuestMemory memory = make_memory();
  const std::string expected = "not a vmlinux ELF or a bzImage (no ELF magic, no HdrS header)";
  for (const std::vector<uint8_t>& file :
       {std::vector<uint8_t>{}, std::vector<uint8_t>{0x7f, 'E'}, pattern(4096)}) {
    auto image = load_kernel(memory, file);
    REQUIRE_FALSE(image);
    CHECK(image.error().message == expected);
  }
}

}  // namespace
}  // namespace husk::x86_64
