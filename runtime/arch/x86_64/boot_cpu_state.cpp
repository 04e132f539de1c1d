#include "runtime/arch/x86_64/boot_cpu_state.h"

#include "runtime/arch/x86_64/gdt.h"
#include "runtime/arch/x86_64/layout.h"

namespace husk::x86_64 {

namespace {

kvm_msr_entry msr(uint32_t index, uint64_t data) {
  kvm_msr_entry entry{};
  entry.index = index;
  entry.data = data;
  return entry;
}

}  // namespace

void setup_long_mode_sregs(kvm_sregs& sregs) {
  const BootGdt gdt = boot_gdt();
  sregs.gdt.base = kGdtAddr;
  sregs.gdt.limit = static_cast<uint16_t>(sizeof(gdt) - 1);
  sregs.idt.base = kIdtAddr;
  sregs.idt.limit = static_cast<uint16_t>(sizeof(uint64_t) - 1);

  const kvm_segment code = segment_from_gdt_entry(gdt[kBootCodeSelector / 8], kBootCodeSelector);
  const kvm_segment data = segment_from_gdt_entry(gdt[kBootDataSelector / 8], kBootDataSelector);
  sregs.cs = code;
  sregs.ds = data;
  sregs.es = data;
  sregs.fs = data;
  sregs.gs = data;
  sregs.ss = data;
  sregs.tr = segment_from_gdt_entry(gdt[kBootTssSelector / 8], kBootTssSelector);

  // Assigned, not or-ed: the reset value of CR0 has CD and NW set, and the
  // kernel would otherwise run its early boot with caching disabled.
  sregs.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
  sregs.cr3 = kPml4Addr;
  sregs.cr4 = kCr4Pae;
  sregs.efer = kEferLme | kEferLma;
}

kvm_regs boot_regs(uint64_t entry) {
  kvm_regs regs{};
  regs.rflags = kRflagsReserved;
  regs.rip = entry;
  regs.rsp = kBootStackPointer;
  regs.rbp = kBootStackPointer;
  regs.rsi = kZeroPageAddr;
  return regs;
}

std::vector<kvm_msr_entry> boot_msrs() {
  return {
      msr(kMsrIa32SysenterCs, 0),
      msr(kMsrIa32SysenterEsp, 0),
      msr(kMsrIa32SysenterEip, 0),
      msr(kMsrStar, 0),
      msr(kMsrCstar, 0),
      msr(kMsrKernelGsBase, 0),
      msr(kMsrSyscallMask, 0),
      msr(kMsrLstar, 0),
      msr(kMsrIa32Tsc, 0),
      msr(kMsrIa32MiscEnable, kMiscEnableFastString),
      msr(kMsrMtrrDefType, kMtrrDefTypeEnable | kMtrrTypeWriteBack),
  };
}

kvm_fpu boot_fpu() {
  kvm_fpu fpu{};
  fpu.fcw = kFpuControlWordDefault;
  fpu.mxcsr = kMxcsrDefault;
  return fpu;
}

}  // namespace husk::x86_64
