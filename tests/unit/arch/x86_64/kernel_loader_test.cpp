#include "runtime/arch/x86_64/kernel_loader.h"

#include "runtime/arch/x86_64/kernel_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <optional>

#include "runtime/common/unique_fd.h"
#include "tests/support/temp_dir.h"
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

// build_machine plans the kernel first and copies it on another thread:
// the plan must write nothing, and its copy must be the one-step load's.
TEST_CASE("plan_kernel writes nothing; write_kernel of its plan is load_kernel", "[arch][kernel]") {
  for (const std::vector<uint8_t>& file : {make_vmlinux(), make_bzimage()}) {
    GuestMemory planned = make_memory();
    auto plan = plan_kernel(planned, file);
    REQUIRE(plan);
    REQUIRE_FALSE(plan->segments.empty());
    const uint64_t span = plan->image.load_end - plan->image.load_start;
    std::vector<uint8_t> before(span);
    REQUIRE(planned.read(plan->image.load_start, before));
    CHECK(before == std::vector<uint8_t>(span, 0));

    auto written = write_kernel(planned, *plan, file, -1, Destination::kAny);
    REQUIRE(written);
    GuestMemory loaded = make_memory();
    auto image = load_kernel(loaded, file);
    REQUIRE(image);
    CHECK(written->entry == image->entry);
    CHECK(written->load_end == image->load_end);
    std::vector<uint8_t> a(span);
    std::vector<uint8_t> b(span);
    REQUIRE(planned.read(plan->image.load_start, a));
    REQUIRE(loaded.read(image->load_start, b));
    CHECK(a == b);
    CHECK(a != before);
  }
}

TEST_CASE("write_kernel refuses a plan whose segment runs past the file", "[arch][kernel]") {
  GuestMemory memory = make_memory();
  const std::vector<uint8_t> file = make_vmlinux();
  auto plan = plan_kernel(memory, file);
  REQUIRE(plan);
  plan->segments[0].file_len = file.size();
  auto written = write_kernel(memory, *plan, file, -1, Destination::kAny);
  REQUIRE_FALSE(written);
  CHECK_THAT(written.error().message, Catch::Matchers::Contains("past the end of the file"));
}

// build_machine starts the copy before the VM exists and moves the memory
// into the machine while it runs: the resolved pieces must stay valid.
TEST_CASE("resolve_pieces outlives a move of the memory; read_pieces fills the pieces", "[arch][kernel]") {
  husk::test::TempDir dir;
  const std::vector<uint8_t> bytes = pattern(3 * 4096, 7);
  UniqueFd fd(::open(dir.write("image", bytes).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  std::optional<GuestMemory> before(make_memory());
  const std::vector<FilePiece> pieces{{0x100000, 4096, 4096}, {0x200000, 0, 100}};
  auto host = resolve_pieces(*before, pieces);
  REQUIRE(host);
  REQUIRE(host->size() == 2);
  GuestMemory after = std::move(*before);
  before.reset();
  REQUIRE(read_pieces(fd.get(), *host));
  std::vector<uint8_t> got(4096);
  REQUIRE(after.read(0x100000, got));
  CHECK(got == std::vector<uint8_t>(bytes.begin() + 4096, bytes.begin() + 8192));
  got.resize(100);
  REQUIRE(after.read(0x200000, got));
  CHECK(got == std::vector<uint8_t>(bytes.begin(), bytes.begin() + 100));

  SECTION("a piece outside guest memory is refused") {
    const std::vector<FilePiece> outside{{64 * kMiB - 100, 0, 200}};
    CHECK_FALSE(resolve_pieces(after, outside));
  }
  SECTION("a file that ends early is an error naming how much is missing") {
    const std::vector<FilePiece> past{{0x300000, 2 * 4096, 2 * 4096}};
    auto resolved = resolve_pieces(after, past);
    REQUIRE(resolved);
    auto read = read_pieces(fd.get(), *resolved);
    REQUIRE_FALSE(read);
    CHECK_THAT(read.error().message, Catch::Matchers::Contains("ends 4096 bytes short"));
  }
}

}  // namespace
}  // namespace husk::x86_64
