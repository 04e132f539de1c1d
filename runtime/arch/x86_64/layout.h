// The guest-physical memory map of an x86_64 husk VM.
//
// Low memory holds the boot structures at fixed addresses (the same scheme as
// Firecracker and kvmtool use, so a Linux guest finds nothing surprising).
// RAM runs from 0 up to the 32-bit MMIO gap; RAM beyond it continues at 4 GiB.
// Devices live in the gap: virtio-mmio windows, then the IOAPIC and LAPIC.
#pragma once

#include <cstdint>

namespace husk::x86_64 {

// Boot structures in the first megabyte.
inline constexpr uint64_t kGdtAddr = 0x500;
// Right after the five-entry boot GDT (null, null, code, data, TSS).
inline constexpr uint64_t kIdtAddr = 0x528;
inline constexpr uint64_t kBootStackPointer = 0x8ff0;
inline constexpr uint64_t kZeroPageAddr = 0x7000;     // struct boot_params
inline constexpr uint64_t kPml4Addr = 0x9000;
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;           // 4 pages: identity map of 4 GiB
inline constexpr uint64_t kPdPages = 4;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;      // 64 KiB, with the NUL
inline constexpr uint64_t kEbdaStart = 0x9fc00;       // MP table lives here
inline constexpr uint64_t kLowMemEnd = 0xa0000;       // end of usable base memory
inline constexpr uint64_t kHighMemStart = 0x100000;   // 1 MiB
inline constexpr uint64_t kBiosRomStart = 0xf0000;
inline constexpr uint64_t kBiosRomEnd = 0x100000;

// The 32-bit MMIO gap and what lives in it.
inline constexpr uint64_t kMmioGapStart = 0xc0000000;  // 3 GiB
inline constexpr uint64_t kMmioGapEnd = 0x100000000;   // 4 GiB
inline constexpr uint64_t kVirtioMmioBase = 0xd0000000;
inline constexpr uint64_t kVirtioMmioWindow = 0x1000;
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint32_t kIoapicPins = 24;        // KVM's in-kernel IOAPIC
// virtio-mmio devices take IRQs from 5 up (0-4 are the PIT, keyboard,
// cascade and serial ports), one 4 KiB window each from kVirtioMmioBase.
inline constexpr uint32_t kVirtioFirstIrq = 5;
inline constexpr uint32_t kMaxVirtioDevices = kIoapicPins - kVirtioFirstIrq;
inline constexpr uint64_t kLapicAddr = 0xfee00000;

// KVM's own needs on Intel (TSS and identity page), placed just below the
// IOAPIC where no RAM is.
inline constexpr uint64_t kKvmIdentityMapAddr = 0xfeffc000;
inline constexpr uint64_t kKvmTssAddr = 0xfeffd000;

// Where a bzImage's protected-mode kernel goes when it is not relocatable.
inline constexpr uint64_t kBzImageLoadAddr = 0x100000;

// Limits on the VM's shape.
inline constexpr uint32_t kMaxVcpus = 32;
inline constexpr uint64_t kMinMemory = 32ull << 20;

// GDT selectors as the boot code expects them (boot.rst: __BOOT_CS 0x10,
// __BOOT_DS 0x18).
inline constexpr uint16_t kBootCodeSelector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
inline constexpr uint16_t kBootTssSelector = 0x20;

}  // namespace husk::x86_64
