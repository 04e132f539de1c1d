// GuestMemory::Backing::kHugeAnonymous: a booted VM's RAM as private
// anonymous memory advised for transparent huge pages. Each region's host
// address agrees with its guest address modulo 2 MiB (else no huge page
// could back it), the mapping is advised `hg` in smaps, it reads back and
// reads zero, and save() refuses it (only a memfd can be saved);
// fit_page_sizes advises 4 KiB pages where a load writes a few pages of a
// 2 MiB.
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/common/unique_fd.h"
#include "runtime/memory/guest_memory.h"
#include "tests/support/smaps.h"
#include "tests/support/temp_dir.h"

using namespace husk;

namespace {

constexpr uint64_t kMiB = 1 << 20;

}  // namespace

TEST_CASE("guest memory: huge anonymous regions are 2 MiB congruent, advised, zero and writable", "[unit]") {
  // The second region starts 1 MiB past a 2 MiB boundary on purpose.
  const std::vector<RegionSpec> regions{{0, 6 * kMiB}, {9 * kMiB, 4 * kMiB}};
  auto mem = GuestMemory::create(regions, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(mem);
  REQUIRE(mem->regions().size() == 2);
  for (const GuestRegion& r : mem->regions()) {
    INFO("region at " << r.gpa());
    CHECK(reinterpret_cast<uintptr_t>(r.host()) % (2 * kMiB) == r.gpa() % (2 * kMiB));
    const std::string flags = test::vm_flags_at(r.host());
    INFO(flags);
    CHECK(flags.find(" hg") != std::string::npos);  // MADV_HUGEPAGE
    CHECK(flags.find(" dd") != std::string::npos);  // MADV_DONTDUMP
  }
  auto zero = mem->read_obj<uint64_t>(9 * kMiB + 12345);
  REQUIRE(zero);
  CHECK(*zero == 0);
  REQUIRE(mem->write_obj<uint64_t>(12 * kMiB, 0x1122334455667788ull));
  auto back = mem->read_obj<uint64_t>(12 * kMiB);
  REQUIRE(back);
  CHECK(*back == 0x1122334455667788ull);
  // Outside every region, between them and past the end.
  CHECK_FALSE(mem->read_obj<uint64_t>(7 * kMiB));
  CHECK_FALSE(mem->read_obj<uint64_t>(13 * kMiB));

  test::TempDir dir;
  UniqueFd out(::open(dir.file("memory").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(out);
  auto saved = mem->save(out.get());
  REQUIRE_FALSE(saved);
  CHECK(saved.error().message.find("anonymous") != std::string::npos);
}

TEST_CASE("guest memory: fit_page_sizes gives 4 KiB pages where a load writes a few pages of 2 MiB", "[unit]") {
  const std::vector<RegionSpec> regions{{0, 12 * kMiB}};
  auto mem = GuestMemory::create(regions, GuestMemory::Backing::kHugeAnonymous);
  REQUIRE(mem);
  constexpr uint64_t kFew = GuestMemory::kFewBytes;
  // 0-2 MiB: one page. 2-4: 1.5 MiB. 4-6: two extents that are few apart
  // but not together. 6-8: one byte less than few. 8-10 and 10-12: an
  // extent from 10 MiB less one page to 10 MiB plus 1 MiB.
  const std::vector<GuestExtent> writes{
      {0x7000, 4096},
      {2 * kMiB, 3 * kMiB / 2},
      {4 * kMiB, kFew / 2},
      {5 * kMiB, kFew / 2},
      {6 * kMiB + 100, kFew - 1},
      {10 * kMiB - 4096, kMiB + 4096},
  };
  mem->fit_page_sizes(writes);
  const uint8_t* host = mem->regions()[0].host();
  const auto small = [&](uint64_t gpa) { return test::vm_flags_at(host + gpa).find(" nh") != std::string::npos; };
  const auto huge = [&](uint64_t gpa) {
    const std::string flags = test::vm_flags_at(host + gpa);
    return flags.find(" hg") != std::string::npos && flags.find(" nh") == std::string::npos;
  };
  CHECK(small(0));
  CHECK(small(2 * kMiB - 1));
  CHECK(huge(2 * kMiB));
  CHECK(huge(4 * kMiB));
  CHECK(small(6 * kMiB));
  CHECK(small(8 * kMiB));
  CHECK(huge(10 * kMiB));
  CHECK(huge(12 * kMiB - 1));
  // The memory reads and writes the same across the split.
  REQUIRE(mem->write_obj<uint64_t>(2 * kMiB - 4, 0x1122334455667788ull));
  auto back = mem->read_obj<uint32_t>(2 * kMiB);
  REQUIRE(back);
  CHECK(*back == 0x11223344u);

  // Memory of the other backing is never advised.
  auto memfd = GuestMemory::create(regions);
  REQUIRE(memfd);
  memfd->fit_page_sizes(writes);
  CHECK(test::vm_flags_at(memfd->regions()[0].host()).find(" nh") == std::string::npos);
}
