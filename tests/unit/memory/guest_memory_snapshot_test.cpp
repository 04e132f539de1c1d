// A booted VM's memory (a memfd) saved into a snapshot's memory file, and a
// restored VM's memory mapped from it copy-on-write: real files, real
// mappings.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "runtime/memory/guest_memory.h"
#include "tests/support/temp_dir.h"

using namespace husk;

namespace {

constexpr uint64_t kMiB = 1 << 20;
// Two regions with a gap between them, as a VM above 3 GiB has.
const std::vector<RegionSpec> kRegions{{0, 4 * kMiB}, {16 * kMiB, 4 * kMiB}};

UniqueFd open_file(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, 0644));
  REQUIRE(fd);
  return fd;
}

}  // namespace

TEST_CASE("guest memory: save writes the touched pages, map_snapshot reads them back copy-on-write", "[unit]") {
  test::TempDir dir;
  const std::string path = (dir.path() / "memory").string();
  auto booted = GuestMemory::create(kRegions);
  REQUIRE(booted);
  const std::string first = "the first region's page";
  const std::string second = "the second region's page";
  REQUIRE(booted->write(0x3000, std::span(reinterpret_cast<const uint8_t*>(first.data()), first.size())));
  REQUIRE(booted->write(16 * kMiB + 0x5000, std::span(reinterpret_cast<const uint8_t*>(second.data()), second.size())));

  UniqueFd out = open_file(path, O_RDWR | O_CREAT | O_TRUNC);
  auto written = booted->save(out.get());
  REQUIRE(written);
  // Two pages touched, two pages written; the rest is holes.
  CHECK(*written == 2 * 4096);
  struct stat st{};
  REQUIRE(::fstat(out.get(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 8 * kMiB);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 1 * kMiB);

  UniqueFd in = open_file(path, O_RDONLY);
  auto restored = GuestMemory::map_snapshot(kRegions, in.get());
  REQUIRE(restored);
  std::string got(first.size(), '\0');
  REQUIRE(restored->read(0x3000, std::span(reinterpret_cast<uint8_t*>(got.data()), got.size())));
  CHECK(got == first);
  got.assign(second.size(), '\0');
  REQUIRE(restored->read(16 * kMiB + 0x5000, std::span(reinterpret_cast<uint8_t*>(got.data()), got.size())));
  CHECK(got == second);
  auto untouched = restored->read_obj<uint64_t>(16 * kMiB + 0x100000);
  REQUIRE(untouched);
  CHECK(*untouched == 0);

  // A restored VM writes its own copy; the file (every other VM's) stays.
  REQUIRE(restored->write_obj<uint64_t>(0x3000, 0x1122334455667788ull));
  UniqueFd check = open_file(path, O_RDONLY);
  std::string on_disk(first.size(), '\0');
  REQUIRE(::pread(check.get(), on_disk.data(), on_disk.size(), 0x3000) == static_cast<ssize_t>(on_disk.size()));
  CHECK(on_disk == first);
  auto second_vm = GuestMemory::map_snapshot(kRegions, check.get());
  REQUIRE(second_vm);
  auto value = second_vm->read_obj<uint64_t>(0x3000);
  REQUIRE(value);
  CHECK(*value != 0x1122334455667788ull);

  // A restored VM's memory is not a memfd: it cannot be saved again.
  UniqueFd again = open_file((dir.path() / "again").string(), O_RDWR | O_CREAT | O_TRUNC);
  auto refused = restored->save(again.get());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("booted VM") != std::string::npos);
}

TEST_CASE("guest memory: a memory file of another size is refused", "[unit]") {
  test::TempDir dir;
  const std::string path = (dir.path() / "memory").string();
  UniqueFd fd = open_file(path, O_RDWR | O_CREAT | O_TRUNC);
  REQUIRE(::ftruncate(fd.get(), 4 * kMiB) == 0);
  auto refused = GuestMemory::map_snapshot(kRegions, fd.get());
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("memory file holds 4194304 bytes") != std::string::npos);
}
