// GuestMemory::read_file: a kernel's or initrd's bytes read from their file
// into a booted VM's memory, with real files: the guest sees the file's
// bytes at any offset and address, nothing of the file is mapped (a change
// to the file later does not reach the guest), huge anonymous memory takes
// it too, a file that ends early and a range outside memory are errors, and
// a snapshot holds what was read; data_extents names a sparse file's data.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
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

// A file of `size` bytes, every page different.
std::vector<uint8_t> pattern(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3 + i / 4096);
  return bytes;
}

std::vector<uint8_t> read_back(const GuestMemory& m, GuestAddress gpa, size_t len) {
  std::vector<uint8_t> out(len);
  REQUIRE(m.read(gpa, out));
  return out;
}

std::vector<uint8_t> slice_of(const std::vector<uint8_t>& v, size_t offset, size_t len) {
  return {v.begin() + static_cast<std::ptrdiff_t>(offset), v.begin() + static_cast<std::ptrdiff_t>(offset + len)};
}

// How many of this process's mappings name `path` (/proc/self/maps).
int mappings_of(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  int n = 0;
  while (std::getline(maps, line)) {
    if (line.size() >= path.size() && line.compare(line.size() - path.size(), path.size(), path) == 0) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("guest memory: read_file copies a file's bytes in, at any offset and address", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> content = pattern(300 * 1024 + 123);  // a partial last page
  const std::string path = dir.write("kernel", content);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto memory = GuestMemory::create(kRegions);
  REQUIRE(memory);
  // A segment at file offset 0x1000 into guest 0x200000; a bzImage's
  // payload off a page boundary into an address off one.
  const size_t len = content.size() - 0x1000;
  REQUIRE(memory->read_file(0x200000, fd.get(), 0x1000, len));
  REQUIRE(memory->read_file(0x500010, fd.get(), 0x200, 100 * 1024));
  CHECK(read_back(*memory, 0x200000, len) == slice_of(content, 0x1000, len));
  CHECK(read_back(*memory, 0x500010, 100 * 1024) == slice_of(content, 0x200, 100 * 1024));
  // Past the data: still zero.
  CHECK(read_back(*memory, 0x200000 + len, 4096) == std::vector<uint8_t>(4096, 0));
  // Nothing of the file stays mapped: the guest's writes are its own, and
  // the file changed later does not reach the guest.
  CHECK(mappings_of(path) == 0);
  REQUIRE(memory->write_obj<uint64_t>(0x200000, 0xdeadbeefcafef00dull));
  {
    UniqueFd rw(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    const uint64_t other = 0x0123456789abcdefull;
    REQUIRE(::pwrite(rw.get(), &other, sizeof(other), 0x2000) == sizeof(other));
  }
  CHECK(*memory->read_obj<uint64_t>(0x200000) == 0xdeadbeefcafef00dull);
  CHECK(read_back(*memory, 0x201000, 8) == slice_of(content, 0x2000, 8));

  // A snapshot holds what was read, the guest's write included.
  UniqueFd out(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(out);
  auto written = memory->save(out.get());
  REQUIRE(written);
  CHECK(*written >= len);
  auto restored = GuestMemory::map_snapshot(kRegions, out.get());
  REQUIRE(restored);
  CHECK(*restored->read_obj<uint64_t>(0x200000) == 0xdeadbeefcafef00dull);
  CHECK(read_back(*restored, 0x200008, len - 8) == slice_of(content, 0x1008, len - 8));
}

TEST_CASE("guest memory: read_file refuses a short file and a range outside memory", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> content = pattern(64 * 1024);
  UniqueFd fd(::open(dir.write("short", content).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto memory = GuestMemory::create(kRegions);
  REQUIRE(memory);
  auto short_read = memory->read_file(0x100000, fd.get(), 0x1000, content.size());
  REQUIRE_FALSE(short_read);
  CHECK(short_read.error().message.find("4096 bytes short") != std::string::npos);
  CHECK_FALSE(memory->read_file(8 * kMiB - 0x1000, fd.get(), 0, 0x2000));
  CHECK_FALSE(memory->read_file(0x100000, -1, 0, 0x1000));
}

TEST_CASE("guest memory: read_file into huge anonymous memory", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> content = pattern(3 * kMiB);
  UniqueFd fd(::open(dir.write("kernel", content).c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  auto mem = GuestMemory::create({{0, 8 * kMiB}}, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(mem);
  REQUIRE(mem->read_file(2 * kMiB, fd.get(), 0, content.size()));
  CHECK(read_back(*mem, 2 * kMiB, content.size()) == content);
}

// A sparse file at `path`: `data` at 0 and at 1 MiB, holes between, after
// and at the end (2 MiB + 100 bytes in all), opened read-only.
UniqueFd sparse_file(const std::string& path, const std::vector<uint8_t>& data) {
  {
    UniqueFd w(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    REQUIRE(w);
    REQUIRE(::pwrite(w.get(), data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
    REQUIRE(::pwrite(w.get(), data.data(), data.size(), kMiB) == static_cast<ssize_t>(data.size()));
    REQUIRE(::ftruncate(w.get(), 2 * kMiB + 100) == 0);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd);
  // The file system must report the holes for these tests to mean anything.
  REQUIRE(::lseek(fd.get(), 0, SEEK_HOLE) == static_cast<off_t>(data.size()));
  return fd;
}

TEST_CASE("guest memory: data_extents are a sparse file's data, as guest ranges", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> data = pattern(64 * 1024);
  const UniqueFd fd = sparse_file(dir.file("vmlinux"), data);
  // From 4 KiB into the first extent to 100 bytes short of the end.
  auto extents = GuestMemory::data_extents(0x300000, fd.get(), 0x1000, 2 * kMiB - 0x1000);
  REQUIRE(extents);
  REQUIRE(extents->size() == 2);
  CHECK((*extents)[0].gpa == 0x300000);
  CHECK((*extents)[0].len == data.size() - 0x1000);
  CHECK((*extents)[1].gpa == 0x300000 + kMiB - 0x1000);
  CHECK((*extents)[1].len == data.size());
  // A range that ends inside an extent is cut there; one inside a hole is empty.
  auto cut = GuestMemory::data_extents(0, fd.get(), kMiB, 100);
  REQUIRE(cut);
  REQUIRE(cut->size() == 1);
  CHECK((*cut)[0].len == 100);
  auto hole = GuestMemory::data_extents(0, fd.get(), 0x20000, 0x1000);
  REQUIRE(hole);
  CHECK(hole->empty());
  // Past the end of the file: an error that says by how much.
  auto past = GuestMemory::data_extents(0, fd.get(), 2 * kMiB, 0x1000);
  REQUIRE_FALSE(past);
  CHECK(past.error().message.find(std::to_string(0x1000 - 100) + " bytes short") != std::string::npos);
}

TEST_CASE("guest memory: read_file into zeroed memory reads only a sparse file's data", "[unit]") {
  test::TempDir dir;
  const std::vector<uint8_t> data = pattern(64 * 1024);
  const UniqueFd fd = sparse_file(dir.file("vmlinux"), data);
  const uint64_t len = 2 * kMiB + 100 - 0x1000;
  const std::vector<uint8_t> marker(4096, 0xAA);

  // The marker stands in the holes' place to show what read_file wrote:
  // with kZeroed only the data (the caller promises zero elsewhere) ...
  auto zeroed = GuestMemory::create(kRegions);
  REQUIRE(zeroed);
  REQUIRE(zeroed->write(0x300000 + 0x20000, marker));
  REQUIRE(zeroed->write(0x300000 + len - 4096, marker));
  REQUIRE(zeroed->read_file(0x300000, fd.get(), 0x1000, len, Destination::kZeroed));
  CHECK(read_back(*zeroed, 0x300000, data.size() - 0x1000) == slice_of(data, 0x1000, data.size() - 0x1000));
  CHECK(read_back(*zeroed, 0x300000 + kMiB - 0x1000, data.size()) == data);
  CHECK(read_back(*zeroed, 0x300000 + 0x20000, 4096) == marker);
  CHECK(read_back(*zeroed, 0x300000 + len - 4096, 4096) == marker);
  // ... so a snapshot of that memory holds the data and the markers only.
  UniqueFd out(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto written = zeroed->save(out.get());
  REQUIRE(written);
  CHECK(*written < 2 * data.size() + 4 * 4096 + 2 * 4096);

  // With kAny every byte, the holes' zeros included.
  auto any = GuestMemory::create(kRegions);
  REQUIRE(any);
  REQUIRE(any->write(0x300000 + 0x20000, marker));
  REQUIRE(any->read_file(0x300000, fd.get(), 0x1000, len));
  CHECK(read_back(*any, 0x300000 + 0x20000, 4096) == std::vector<uint8_t>(4096, 0));
  CHECK(read_back(*any, 0x300000 + kMiB - 0x1000, data.size()) == data);

  // A file that ends early is refused before anything is read.
  auto short_read = zeroed->read_file(0x100000, fd.get(), 2 * kMiB, 0x1000, Destination::kZeroed);
  REQUIRE_FALSE(short_read);
  CHECK(short_read.error().message.find(std::to_string(0x1000 - 100) + " bytes short") != std::string::npos);
  CHECK_FALSE(zeroed->read_file(0x100000, -1, 0, 0x1000, Destination::kZeroed));
}
