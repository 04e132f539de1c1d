#include "runtime/arch/x86_64/page_tables.h"

#include <optional>

#include "runtime/arch/x86_64/layout.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using namespace husk::x86_64::test;

// A 4-level walk as the CPU does it with CR3 = kPml4Addr, stopping at a
// 2 MiB page; nullopt for a not-present entry.
std::optional<uint64_t> translate(const GuestMemory& memory, uint64_t va) {
  uint64_t table = kPml4Addr;
  for (unsigned shift : {39u, 30u, 21u}) {
    auto pte = memory.read_obj<uint64_t>(table + ((va >> shift) & 511) * 8);
    REQUIRE(pte);
    if ((*pte & kPtePresent) == 0) return std::nullopt;
    CHECK((*pte & kPteWritable) != 0);
    if (shift == 21) {
      REQUIRE((*pte & kPtePageSize) != 0);
      return (*pte & kPteAddressMask & ~(2 * kMiB - 1)) | (va & (2 * kMiB - 1));
    }
    REQUIRE((*pte & kPtePageSize) == 0);
    table = *pte & kPteAddressMask;
  }
  return std::nullopt;
}

TEST_CASE("write_identity_page_tables maps the first 4 GiB onto itself", "[arch][paging]") {
  GuestMemory memory = make_memory();
  // Leftovers in the table pages must not survive.
  REQUIRE(memory.fill(kPml4Addr, 0xff, kPdAddr + kPdPages * kPageSize - kPml4Addr));
  REQUIRE(write_identity_page_tables(memory));

  for (uint64_t va : {uint64_t{0}, uint64_t{0x1234}, 2 * kMiB, 2 * kMiB + 0x5678, uint64_t{0x1000200},
                      kMmioGapStart, kIoapicAddr, 4 * kGiB - 2 * kMiB, 4 * kGiB - 1}) {
    CAPTURE(va);
    CHECK(translate(memory, va) == va);
  }
  CHECK_FALSE(translate(memory, 4 * kGiB));
  CHECK_FALSE(translate(memory, 512 * kGiB));
}

}  // namespace
}  // namespace husk::x86_64
