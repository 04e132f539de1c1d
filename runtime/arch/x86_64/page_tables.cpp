#include "runtime/arch/x86_64/page_tables.h"

#include <array>
#include <span>

#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/units.h"

namespace husk::x86_64 {

namespace {

constexpr size_t kEntriesPerTable = 512;
using Table = std::array<uint64_t, kEntriesPerTable>;
static_assert(sizeof(Table) == kPageSize);

// Whole pages are written so that stale entries never survive in reused memory.
Result<void> write_table(const GuestMemory& memory, uint64_t gpa, const Table& table) {
  return memory.write(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(table.data()),
                                                    sizeof(Table)));
}

}  // namespace

Result<void> write_identity_page_tables(const GuestMemory& memory) {
  Table pml4{};
  pml4[0] = kPdptAddr | kPtePresent | kPteWritable;
  HUSK_TRY(write_table(memory, kPml4Addr, pml4));

  Table pdpt{};
  for (uint64_t i = 0; i < kPdPages; ++i) {
    pdpt[i] = (kPdAddr + i * kPageSize) | kPtePresent | kPteWritable;
  }
  HUSK_TRY(write_table(memory, kPdptAddr, pdpt));

  for (uint64_t i = 0; i < kPdPages; ++i) {
    Table pd{};
    for (uint64_t j = 0; j < kEntriesPerTable; ++j) {
      const uint64_t addr = (i * kEntriesPerTable + j) * kHugePageSize;
      pd[j] = addr | kPtePresent | kPteWritable | kPtePageSize;
    }
    HUSK_TRY(write_table(memory, kPdAddr + i * kPageSize, pd));
  }
  return {};
}

}  // namespace husk::x86_64
