#include "runtime/arch/x86_64/e820.h"

#include <asm/e820.h>

#include "runtime/arch/x86_64/layout.h"
#include "tests/unit/arch/x86_64/test_images.h"

namespace husk::x86_64 {
namespace {

using namespace husk::x86_64::test;

struct Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  bool operator==(const Entry&) const = default;
};

// Plain copies: Catch cannot bind references to the packed fields.
std::vector<Entry> entries(const std::vector<boot_e820_entry>& map) {
  std::vector<Entry> out;
  for (const boot_e820_entry& e : map) out.push_back({e.addr, e.size, e.type});
  return out;
}

TEST_CASE("build_e820 for a 64 MiB VM", "[arch][e820]") {
  GuestMemory memory = make_memory();
  const std::vector<Entry> expected = {
      {0, kEbdaStart, E820_RAM},
      {kEbdaStart, kLowMemEnd - kEbdaStart, E820_RESERVED},
      {kBiosRomStart, kBiosRomEnd - kBiosRomStart, E820_RESERVED},
      {kHighMemStart, 64 * kMiB - kHighMemStart, E820_RAM},
  };
  CHECK(entries(build_e820(memory)) == expected);
}

TEST_CASE("build_e820 lists RAM above 4 GiB", "[arch][e820]") {
  GuestMemory memory = make_memory({{0, 64 * kMiB}, {kMmioGapEnd, 128 * kMiB}});
  const auto map = entries(build_e820(memory));
  REQUIRE(map.size() == 5);
  CHECK(map[3] == Entry{kHighMemStart, 64 * kMiB - kHighMemStart, E820_RAM});
  CHECK(map[4] == Entry{kMmioGapEnd, 128 * kMiB, E820_RAM});
}

}  // namespace
}  // namespace husk::x86_64
