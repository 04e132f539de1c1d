#include "runtime/arch/x86_64/lapic.h"

#include <cstdint>
#include <cstring>

namespace husk::x86_64 {

namespace {
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeMask = 0x700;
constexpr uint32_t kDeliveryModeExtInt = 0x700;
constexpr uint32_t kDeliveryModeNmi = 0x400;

uint32_t get_reg(const kvm_lapic_state& lapic, size_t offset) {
  uint32_t value = 0;
  std::memcpy(&value, lapic.regs + offset, sizeof(value));
  return value;
}

void set_reg(kvm_lapic_state& lapic, size_t offset, uint32_t value) {
  std::memcpy(lapic.regs + offset, &value, sizeof(value));
}
}  // namespace

void set_boot_lint(kvm_lapic_state& lapic) {
  const uint32_t lint0 = get_reg(lapic, kApicLvtLint0);
  set_reg(lapic, kApicLvtLint0, (lint0 & ~kDeliveryModeMask) | kDeliveryModeExtInt);
  const uint32_t lint1 = get_reg(lapic, kApicLvtLint1);
  set_reg(lapic, kApicLvtLint1, (lint1 & ~kDeliveryModeMask) | kDeliveryModeNmi);
}

}  // namespace husk::x86_64
