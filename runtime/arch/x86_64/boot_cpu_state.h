// The vCPU state at the kernel's 64-bit entry (Documentation/x86/boot.rst,
// "64-bit Boot Protocol"): long mode with paging on the boot identity map,
// the boot GDT loaded, interrupts off, %rsi pointing at boot_params. Pure
// functions over KVM's structs; the caller applies them with KVM_SET_*.
#pragma once

#include <cstdint>
#include <vector>

#include <linux/kvm.h>

namespace husk::x86_64 {

// Control-register and EFER bits (Intel SDM vol. 3A, 2.5 and 2.2.1).
inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;

// RFLAGS bit 1 is reserved and always 1; IF stays clear.
inline constexpr uint64_t kRflagsReserved = 1ull << 1;

// MSR numbers as in the kernel's arch/x86/include/asm/msr-index.h.
inline constexpr uint32_t kMsrIa32Tsc = 0x10;
inline constexpr uint32_t kMsrIa32SysenterCs = 0x174;
inline constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
inline constexpr uint32_t kMsrIa32SysenterEip = 0x176;
inline constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc0000081;
inline constexpr uint32_t kMsrLstar = 0xc0000082;
inline constexpr uint32_t kMsrCstar = 0xc0000083;
inline constexpr uint32_t kMsrSyscallMask = 0xc0000084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

inline constexpr uint64_t kMiscEnableFastString = 1ull << 0;
inline constexpr uint64_t kMtrrDefTypeEnable = 1ull << 11;
inline constexpr uint64_t kMtrrTypeWriteBack = 6;

// x87 and SSE state as after FNINIT and reset (SDM vol. 1, 8.1.5, 10.2.3).
inline constexpr uint16_t kFpuControlWordDefault = 0x37f;
inline constexpr uint32_t kMxcsrDefault = 0x1f80;

// Rewrites the fields of `sregs` (read with KVM_GET_SREGS) that the 64-bit
// entry depends on; APIC base and the interrupt bitmap are left alone.
void setup_long_mode_sregs(kvm_sregs& sregs);

// rip = entry, rsp = rbp = kBootStackPointer, rsi = kZeroPageAddr.
[[nodiscard]] kvm_regs boot_regs(uint64_t entry);

// The MSRs Firecracker sets at boot: syscall and sysenter MSRs zeroed, TSC 0,
// fast strings on, MTRRs enabled with write-back as the default type (so
// all RAM is cacheable without the guest programming variable MTRRs).
[[nodiscard]] std::vector<kvm_msr_entry> boot_msrs();

[[nodiscard]] kvm_fpu boot_fpu();

}  // namespace husk::x86_64
