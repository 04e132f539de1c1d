// GuestMemory::load_file: a kernel's or initrd's pages mapped into a booted
// VM's memory from their file, copy-on-write, with real files: the guest
// sees the file's bytes, its writes stay its own, a partial last page and
// an unaligned range are copied, and a snapshot holds every mapped page.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "runtime/memory/guest_memory.h"
#include "tests/support/temp_dir.h"

using namespace husk;

namespace {

constexpr uint64_t kMiB = 1 << 20;
const std::vector<RegionSpec> kRegions{{0, 8 * kMiB}};

// A file of `size` bytes, byte i = i * 7 + 3 (mod 256): every page different.
std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3 + i / 4096);
  return bytes;
}

struct MappedImage {
  explicit MappedImage(const std::string& path) : fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    REQUIRE(fd);
    struct stat st{};
    REQUIRE(::fstat(fd.get(), &st) == 0);
    size = static_cast<size_t>(st.st_size);
    data = static_cast<const uint8_t*>(::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0));
    REQUIRE(data != MAP_FAILED);
  }
  ~MappedImage() { ::munmap(const_cast<uint8_t*>(data), size); }
  std::span<const uint8_t> bytes(size_t offset, size_t len) const { return {data + offset, len}; }
  UniqueFd fd;
  size_t size = 0;
  const uint8_t* data = nullptr;
};

std::vector<uint8_t> read_back(const GuestMemory& m, GuestAddress gpa, size_t len) {
  std::vector<uint8_t> out(len);
  REQUIRE(m.read(gpa, out));
  return out;
}

}  // namespace

TEST_CASE("guest memory: load_file maps whole pages from the file and copies the rest", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> content = pattern(300 * 1024 + 123);  // a partial last page
  const std::string path = dir.write("kernel", content);
  MappedImage image(path);
  auto memory = GuestMemory::create(kRegions);
  REQUIRE(memory);
  // A segment at file offset 0x1000 into guest 0x200000.
  const size_t len = content.size() - 0x1000;
  REQUIRE(memory->load_file(0x200000, image.bytes(0x1000, len), image.fd.get(), 0x1000));
  CHECK(read_back(*memory, 0x200000, len) == std::vector<uint8_t>(content.begin() + 0x1000, content.end()));
  // Past the data: still zero (the partial page's tail too).
  const auto after = read_back(*memory, 0x200000 + len, 4096);
  CHECK(after == std::vector<uint8_t>(4096, 0));

  // The guest's write is its own: the file keeps its bytes.
  REQUIRE(memory->write_obj<uint64_t>(0x200000, 0xdeadbeefcafef00dull));
  CHECK(*memory->read_obj<uint64_t>(0x200000) == 0xdeadbeefcafef00dull);
  UniqueFd check(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t on_disk = 0;
  REQUIRE(::pread(check.get(), &on_disk, sizeof(on_disk), 0x1000) == sizeof(on_disk));
  CHECK(on_disk != 0xdeadbeefcafef00dull);
  CHECK(std::memcmp(&on_disk, content.data() + 0x1000, sizeof(on_disk)) == 0);

  // A snapshot holds the mapped range whole, the guest's own page included.
  UniqueFd out(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(out);
  auto written = memory->save(out.get());
  REQUIRE(written);
  CHECK(*written >= len);
  auto restored = GuestMemory::map_snapshot(kRegions, out.get());
  REQUIRE(restored);
  CHECK(*restored->read_obj<uint64_t>(0x200000) == 0xdeadbeefcafef00dull);
  CHECK(read_back(*restored, 0x200008, len - 8) == std::vector<uint8_t>(content.begin() + 0x1008, content.end()));
}

TEST_CASE("guest memory: load_file copies what cannot be mapped", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> content = pattern(200 * 1024);
  MappedImage image(dir.write("image", content));
  auto memory = GuestMemory::create(kRegions);
  REQUIRE(memory);
  // A file offset off a page boundary (a bzImage's payload), a guest
  // address off one, and a range too small to be worth a mapping.
  REQUIRE(memory->load_file(0x100000, image.bytes(0x200, 100 * 1024), image.fd.get(), 0x200));
  REQUIRE(memory->load_file(0x300010, image.bytes(0x1000, 100 * 1024), image.fd.get(), 0x1000));
  REQUIRE(memory->load_file(0x400000, image.bytes(0x1000, 8192), image.fd.get(), 0x1000));
  CHECK(read_back(*memory, 0x100000, 100 * 1024) ==
        std::vector<uint8_t>(content.begin() + 0x200, content.begin() + 0x200 + 100 * 1024));
  CHECK(read_back(*memory, 0x300010, 100 * 1024) ==
        std::vector<uint8_t>(content.begin() + 0x1000, content.begin() + 0x1000 + 100 * 1024));
  CHECK(read_back(*memory, 0x400000, 8192) == std::vector<uint8_t>(content.begin() + 0x1000, content.begin() + 0x3000));
  // Without a descriptor: a plain copy.
  REQUIRE(memory->load_file(0x500000, image.bytes(0, 128 * 1024), -1, 0));
  CHECK(read_back(*memory, 0x500000, 128 * 1024) == std::vector<uint8_t>(content.begin(), content.begin() + 128 * 1024));
  // Outside guest memory: an error, nothing mapped.
  CHECK_FALSE(memory->load_file(8 * kMiB - 0x1000, image.bytes(0, 128 * 1024), image.fd.get(), 0));
}
