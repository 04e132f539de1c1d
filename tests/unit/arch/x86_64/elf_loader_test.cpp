#include "runtime/arch/x86_64/elf_loader.h"

#include <fcntl.h>

#include <cstddef>
#include <limits>
#include <string>

#include "runtime/common/unique_fd.h"
#include "tests/support/smaps.h"
#include "tests/support/temp_dir.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using Catch::Matchers::Contains;
using namespace husk::x86_64::test;

std::vector<uint8_t> read_guest(const GuestMemory& memory, uint64_t gpa, size_t size) {
  std::vector<uint8_t> out(size);
  REQUIRE(memory.read(gpa, out));
  return out;
}

std::string load_error(const std::vector<uint8_t>& file) {
  GuestMemory memory = make_memory();
  auto image = load_elf(memory, file);
  REQUIRE_FALSE(image);
  return image.error().message;
}

TEST_CASE("load_elf copies PT_LOAD segments to p_paddr and zeroes the bss", "[arch][elf]") {
  GuestMemory memory = make_memory();
  // Dirty the bss first: the loader must not rely on fresh memory.
  REQUIRE(memory.fill(kVmlinuxPhys, 0xcc, 0x4000));

  auto image = load_elf(memory, make_vmlinux());
  REQUIRE(image);
  CHECK(image->entry == kVmlinuxPhys);
  CHECK(image->load_start == kVmlinuxPhys);
  CHECK(image->load_end == kVmlinuxPhys + 0x3000);
  CHECK_FALSE(image->bzimage);
  CHECK(image->initrd_addr_max == 0x7fffffff);
  CHECK(uint32_t{image->setup.header} == 0);

  CHECK(read_guest(memory, kVmlinuxPhys, 0x300) == pattern(0x300));
  CHECK(read_guest(memory, kVmlinuxPhys + 0x300, 0x3000 - 0x300) ==
        std::vector<uint8_t>(0x3000 - 0x300, 0));
  // The byte after memsz is not the loader's business.
  CHECK(read_guest(memory, kVmlinuxPhys + 0x3000, 1)[0] == 0xcc);
}

TEST_CASE("load_elf from the file's descriptor: the bss is zeroed unless the memory is known zero", "[arch][elf]") {
  husk::test::TempDir dir;
  const std::vector<uint8_t> file = make_vmlinux();
  UniqueFd fd(::open(dir.write("vmlinux", file).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  for (Destination dest : {Destination::kAny, Destination::kZeroed}) {
    GuestMemory memory = make_memory();
    // 0xcc stands where the bss goes, to show whether the loader wrote it.
    REQUIRE(memory.fill(kVmlinuxPhys + 0x300, 0xcc, 0x3000 - 0x300));
    auto image = load_elf(memory, file, fd.get(), dest);
    REQUIRE(image);
    CHECK(read_guest(memory, kVmlinuxPhys, 0x300) == pattern(0x300));
    const uint8_t bss = dest == Destination::kAny ? 0 : 0xcc;
    CHECK(read_guest(memory, kVmlinuxPhys + 0x300, 0x3000 - 0x300) == std::vector<uint8_t>(0x3000 - 0x300, bss));
  }
}

TEST_CASE("load_elf into new huge-page memory: 4 KiB pages where a segment writes a few pages of 2 MiB",
          "[arch][elf]") {
  // A text segment that fills most of 16-18 MiB and a few bytes at 20 MiB
  // (as a vmlinux's entry text), read from a file.
  husk::test::TempDir dir;
  const std::vector<uint8_t> file = make_elf(kVmlinuxPhys, {{kVmlinuxPhys, kVmlinuxVirt, pattern(0x180000), 0x180000},
                                                            {0x1400000, 0xffffffff81400000, pattern(0x1200, 3), 0x1200}});
  UniqueFd fd(::open(dir.write("vmlinux", file).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto memory = GuestMemory::create({{0, 64 * kMiB}}, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(memory);
  REQUIRE(load_elf(*memory, file, fd.get(), Destination::kZeroed));
  CHECK(read_guest(*memory, 0x1400000, 0x1200) == pattern(0x1200, 3));
  const auto advised_small = [&](uint64_t gpa) {
    return husk::test::vm_flags_at(memory->regions()[0].host() + gpa).find(" nh") != std::string::npos;
  };
  CHECK_FALSE(advised_small(kVmlinuxPhys));
  CHECK(advised_small(0x1400000));
  // Memory that is not new (Destination::kAny) is left as it is.
  auto other = GuestMemory::create({{0, 64 * kMiB}}, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(other);
  REQUIRE(load_elf(*other, file, fd.get(), Destination::kAny));
  memory = std::move(other);
  CHECK_FALSE(advised_small(0x1400000));
}

TEST_CASE("load_elf spans several segments", "[arch][elf]") {
  GuestMemory memory = make_memory();
  auto file = make_elf(kVmlinuxPhys, {{kVmlinuxPhys, kVmlinuxVirt, pattern(0x100), 0x1000},
                                      {0x2000000, 0xffffffff82000000, pattern(0x80, 9), 0x80}});
  auto image = load_elf(memory, file);
  REQUIRE(image);
  CHECK(image->load_start == kVmlinuxPhys);
  CHECK(image->load_end == 0x2000080);
  CHECK(read_guest(memory, 0x2000000, 0x80) == pattern(0x80, 9));
}

TEST_CASE("load_elf translates a virtual entry point through its segment", "[arch][elf]") {
  GuestMemory memory = make_memory();
  auto image = load_elf(memory, make_elf(kVmlinuxVirt + 0x40,
                                         {{kVmlinuxPhys, kVmlinuxVirt, pattern(0x300), 0x3000}}));
  REQUIRE(image);
  CHECK(image->entry == kVmlinuxPhys + 0x40);
}

TEST_CASE("load_elf refuses malformed headers", "[arch][elf]") {
  auto file = make_vmlinux();

  SECTION("bad magic") {
    file[1] = 'X';
    CHECK_THAT(load_error(file), Contains("magic"));
  }
  SECTION("32-bit class") {
    file[EI_CLASS] = ELFCLASS32;
    CHECK_THAT(load_error(file), Contains("64-bit"));
  }
  SECTION("big-endian") {
    file[EI_DATA] = ELFDATA2MSB;
    CHECK_THAT(load_error(file), Contains("little-endian"));
  }
  SECTION("wrong machine") {
    poke<uint16_t>(file, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
    CHECK_THAT(load_error(file), Contains("x86_64"));
  }
  SECTION("not an executable") {
    poke<uint16_t>(file, offsetof(Elf64_Ehdr, e_type), ET_DYN);
    CHECK_THAT(load_error(file), Contains("ET_EXEC"));
  }
  SECTION("shorter than an ELF header") {
    file.resize(40);
    CHECK_THAT(load_error(file), Contains("too short"));
  }
  SECTION("program header table past the end of the file") {
    poke<uint64_t>(file, offsetof(Elf64_Ehdr, e_phoff), file.size() - 10);
    CHECK_THAT(load_error(file), Contains("program header table"));
  }
  SECTION("program header table offset that would overflow") {
    poke<uint64_t>(file, offsetof(Elf64_Ehdr, e_phoff), std::numeric_limits<uint64_t>::max() - 8);
    CHECK_THAT(load_error(file), Contains("program header table"));
  }
  SECTION("no program headers") {
    poke<uint16_t>(file, offsetof(Elf64_Ehdr, e_phnum), 0);
    CHECK_THAT(load_error(file), Contains("no program headers"));
  }
  SECTION("no PT_LOAD") {
    poke<uint32_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_type)), PT_NOTE);
    CHECK_THAT(load_error(file), Contains("no PT_LOAD"));
  }
}

TEST_CASE("load_elf refuses bad segments", "[arch][elf]") {
  auto file = make_vmlinux();

  SECTION("segment bytes past the end of the file") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_filesz)), 0x301);
    CHECK_THAT(load_error(file), Contains("past the end"));
  }
  SECTION("segment offset past the end of the file") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_offset)), file.size() + 1);
    CHECK_THAT(load_error(file), Contains("past the end"));
  }
  SECTION("segment offset + size overflowing") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_offset)),
                   std::numeric_limits<uint64_t>::max() - 0x10);
    CHECK_THAT(load_error(file), Contains("past the end"));
  }
  SECTION("filesz larger than memsz") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_memsz)), 0x200);
    CHECK_THAT(load_error(file), Contains("more file bytes"));
  }
  SECTION("segment wrapping the address space") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_paddr)),
                   std::numeric_limits<uint64_t>::max() - 0x1000);
    CHECK_THAT(load_error(file), Contains("wraps"));
  }
  SECTION("segment over the boot structures below 1 MiB") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_paddr)), 0x7000);
    CHECK_THAT(load_error(file), Contains("below 1 MiB"));
  }
  SECTION("segment beyond guest memory names the memory needed") {
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_paddr)), 63 * kMiB);
    poke<uint64_t>(file, phdr_field(0, offsetof(Elf64_Phdr, p_memsz)), 2 * kMiB + 1);
    poke<uint64_t>(file, offsetof(Elf64_Ehdr, e_entry), 63 * kMiB);
    CHECK(load_error(file) == "kernel needs 66 MiB of guest memory, the VM has 64 MiB");
  }
  SECTION("entry outside every segment") {
    poke<uint64_t>(file, offsetof(Elf64_Ehdr, e_entry), kVmlinuxPhys + 0x3000);
    CHECK_THAT(load_error(file), Contains("entry point"));
  }
}

TEST_CASE("load_elf leaves guest memory alone when a later segment is bad", "[arch][elf]") {
  GuestMemory memory = make_memory();
  auto file = make_elf(kVmlinuxPhys, {{kVmlinuxPhys, kVmlinuxVirt, pattern(0x100), 0x100},
                                      {0x2000000, 0xffffffff82000000, pattern(0x80), 0x10}});
  REQUIRE_FALSE(load_elf(memory, file));
  CHECK(read_guest(memory, kVmlinuxPhys, 0x100) == std::vector<uint8_t>(0x100, 0));
}

}  // namespace
}  // namespace husk::x86_64
