// The packed structures of the Intel MultiProcessor Specification 1.4
// (4.1 floating pointer, 4.2 configuration table header, 4.3 base table
// entries). No UAPI header carries them; field names follow the kernel's
// arch/x86/include/asm/mpspec_def.h so they can be compared side by side.
#pragma once

#include <cstdint>

namespace husk::x86_64::mp {

inline constexpr uint8_t kSpecRev14 = 4;  // MP spec 1.4

// Table 4-3: entry types.
inline constexpr uint8_t kProcessor = 0;
inline constexpr uint8_t kBus = 1;
inline constexpr uint8_t kIoapic = 2;
inline constexpr uint8_t kIoInterrupt = 3;
inline constexpr uint8_t kLocalInterrupt = 4;

// Table 4-5: CPU flags.
inline constexpr uint8_t kCpuEnabled = 1 << 0;
inline constexpr uint8_t kCpuBootProcessor = 1 << 1;
// Table 4-10: IOAPIC flags.
inline constexpr uint8_t kIoapicEnabled = 1 << 0;
// Table 4-13: interrupt types.
inline constexpr uint8_t kIntVectored = 0;
inline constexpr uint8_t kIntNmi = 1;
inline constexpr uint8_t kIntExtInt = 3;
// Table 4-14: polarity and trigger "conforms to the bus specification".
inline constexpr uint16_t kIrqConforming = 0;
// Table 4-16: a local interrupt entry for every local APIC.
inline constexpr uint8_t kAllLocalApics = 0xff;

struct FloatingPointer {      // 4.1, 16 bytes
  char signature[4];          // "_MP_"
  uint32_t physptr;           // the configuration table
  uint8_t length;             // in 16-byte units: 1
  uint8_t specification;
  uint8_t checksum;
  uint8_t feature1;           // 0: a configuration table is present
  uint8_t feature2;           // bit 7 IMCR: 0, virtual-wire mode
  uint8_t feature3[3];
} __attribute__((packed));

struct ConfigHeader {         // 4.2, 44 bytes
  char signature[4];          // "PCMP"
  uint16_t length;            // of the base table, header included
  uint8_t spec;
  uint8_t checksum;
  char oem[8];
  char productid[12];
  uint32_t oemptr;
  uint16_t oemsize;
  uint16_t oemcount;          // number of base table entries
  uint32_t lapic;             // local APIC address
  uint16_t extended_length;
  uint8_t extended_checksum;
  uint8_t reserved;
} __attribute__((packed));

struct Processor {            // 4.3.1, 20 bytes
  uint8_t type;
  uint8_t apicid;
  uint8_t apicver;
  uint8_t cpuflag;
  uint32_t cpufeature;        // CPUID signature
  uint32_t featureflag;       // CPUID.1:EDX
  uint32_t reserved[2];
} __attribute__((packed));

struct Bus {                  // 4.3.2, 8 bytes
  uint8_t type;
  uint8_t busid;
  char bustype[6];
} __attribute__((packed));

struct Ioapic {               // 4.3.3, 8 bytes
  uint8_t type;
  uint8_t apicid;
  uint8_t apicver;
  uint8_t flags;
  uint32_t apicaddr;
} __attribute__((packed));

struct Interrupt {            // 4.3.4 and 4.3.5 share this layout, 8 bytes
  uint8_t type;
  uint8_t irqtype;
  uint16_t irqflag;
  uint8_t srcbus;
  uint8_t srcbusirq;
  uint8_t dstapic;            // IOAPIC id, or local APIC id (0xff: all)
  uint8_t dstirq;             // IOAPIC pin, or LINTn
} __attribute__((packed));

static_assert(sizeof(FloatingPointer) == 16);
static_assert(sizeof(ConfigHeader) == 44);
static_assert(sizeof(Processor) == 20);
static_assert(sizeof(Bus) == 8);
static_assert(sizeof(Ioapic) == 8);
static_assert(sizeof(Interrupt) == 8);

}  // namespace husk::x86_64::mp
