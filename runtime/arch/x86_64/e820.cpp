#include "runtime/arch/x86_64/e820.h"

#include <asm/e820.h>

#include <algorithm>

#include "runtime/arch/x86_64/layout.h"

namespace husk::x86_64 {

namespace {

void add(std::vector<boot_e820_entry>& map, uint64_t start, uint64_t end, uint32_t type) {
  if (end <= start) return;
  boot_e820_entry entry{};
  entry.addr = start;
  entry.size = end - start;
  entry.type = type;
  map.push_back(entry);
}

}  // namespace

std::vector<boot_e820_entry> build_e820(const GuestMemory& memory) {
  std::vector<boot_e820_entry> map;
  for (const GuestRegion& region : memory.regions()) {
    const uint64_t end = region.gpa() + region.size();
    if (region.gpa() != 0) {
      add(map, region.gpa(), end, E820_RAM);
      continue;
    }
    // The first megabyte follows the PC layout the kernel expects: base
    // memory, the EBDA (where write_mptable puts the MP table), the VGA and
    // option-ROM hole (absent from the map), then the BIOS ROM area.
    add(map, 0, std::min(end, kEbdaStart), E820_RAM);
    add(map, kEbdaStart, std::min(end, kLowMemEnd), E820_RESERVED);
    add(map, kBiosRomStart, std::min(end, kBiosRomEnd), E820_RESERVED);
    add(map, kHighMemStart, end, E820_RAM);
  }
  return map;
}

}  // namespace husk::x86_64
