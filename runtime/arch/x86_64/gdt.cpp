#include "runtime/arch/x86_64/gdt.h"

#include "runtime/arch/x86_64/layout.h"

namespace husk::x86_64 {

namespace {

// Access byte and flags, SDM 3.4.5: P=1, DPL 0, S=1 for code and data.
constexpr uint16_t kCode64Flags = 0xa09b;  // G, L; execute/read, accessed
constexpr uint16_t kDataFlags = 0xc093;    // G, D/B; read/write, accessed
constexpr uint16_t kTssFlags = 0x808b;     // G; S=0, busy 32/64-bit TSS
constexpr uint32_t kFlatLimit = 0xfffff;   // 4 GiB with G set

static_assert(kGdtAddr + sizeof(BootGdt) <= kIdtAddr, "the GDT would overlap the IDT");
static_assert(kBootCodeSelector / 8 < kBootGdtEntries && kBootDataSelector / 8 < kBootGdtEntries &&
              kBootTssSelector / 8 < kBootGdtEntries);

constexpr uint64_t bits(uint64_t entry, unsigned lo, unsigned width) {
  return (entry >> lo) & ((uint64_t{1} << width) - 1);
}

}  // namespace

BootGdt boot_gdt() {
  BootGdt gdt{};
  gdt[kBootCodeSelector / 8] = gdt_entry(kCode64Flags, 0, kFlatLimit);
  gdt[kBootDataSelector / 8] = gdt_entry(kDataFlags, 0, kFlatLimit);
  gdt[kBootTssSelector / 8] = gdt_entry(kTssFlags, 0, kFlatLimit);
  return gdt;
}

Result<void> write_boot_gdt(const GuestMemory& memory) {
  HUSK_TRY(memory.write_obj(kGdtAddr, boot_gdt()));
  return memory.write_obj(kIdtAddr, uint64_t{0});
}

kvm_segment segment_from_gdt_entry(uint64_t entry, uint16_t selector) {
  kvm_segment seg{};
  seg.base = bits(entry, 16, 24) | (bits(entry, 56, 8) << 24);
  const auto limit = static_cast<uint32_t>(bits(entry, 0, 16) | (bits(entry, 48, 4) << 16));
  seg.g = static_cast<uint8_t>(bits(entry, 55, 1));
  seg.limit = seg.g != 0 ? (limit << 12) | 0xfff : limit;
  seg.selector = selector;
  seg.type = static_cast<uint8_t>(bits(entry, 40, 4));
  seg.s = static_cast<uint8_t>(bits(entry, 44, 1));
  seg.dpl = static_cast<uint8_t>(bits(entry, 45, 2));
  seg.present = static_cast<uint8_t>(bits(entry, 47, 1));
  seg.avl = static_cast<uint8_t>(bits(entry, 52, 1));
  seg.l = static_cast<uint8_t>(bits(entry, 53, 1));
  seg.db = static_cast<uint8_t>(bits(entry, 54, 1));
  seg.unusable = seg.present == 0 ? 1 : 0;
  return seg;
}

}  // namespace husk::x86_64
