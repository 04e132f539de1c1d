#include "runtime/arch/x86_64/mptable.h"

#include <cstddef>
#include <cstring>
#include <numeric>
#include <span>
#include <vector>

#include <fmt/format.h>

#include "runtime/arch/x86_64/layout.h"
#include "runtime/arch/x86_64/mptable_structs.h"

namespace husk::x86_64 {

namespace {

// What KVM's in-kernel devices report in their version registers
// (arch/x86/kvm/lapic.c APIC_VERSION, ioapic.h IOAPIC_VERSION_ID).
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
// A family 6 CPU with an FPU and a local APIC (CPUID.1:EDX bits 0 and 9),
// as Firecracker reports; Linux only reads the APIC id and flags.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatureFpu = 1u << 0;
constexpr uint32_t kCpuFeatureApic = 1u << 9;
constexpr uint8_t kIsaBusId = 0;

// Appends a packed entry's bytes to the table being built.
template <typename T>
void append(std::vector<uint8_t>& table, const T& entry) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&entry);
  table.insert(table.end(), bytes, bytes + sizeof(T));
}

// MP spec 4.1 and 4.2: the bytes of a structure, checksum included, sum to 0.
uint8_t checksum(std::span<const uint8_t> bytes) {
  const uint8_t sum = std::accumulate(bytes.begin(), bytes.end(), uint8_t{0},
                                      [](uint8_t a, uint8_t b) { return uint8_t(a + b); });
  return static_cast<uint8_t>(-sum);
}

void append_entries(std::vector<uint8_t>& table, uint32_t vcpu_count, uint8_t ioapic_id) {
  for (uint32_t i = 0; i < vcpu_count; ++i) {
    mp::Processor cpu{};
    cpu.type = mp::kProcessor;
    cpu.apicid = static_cast<uint8_t>(i);
    cpu.apicver = kLapicVersion;
    cpu.cpuflag = mp::kCpuEnabled | (i == 0 ? mp::kCpuBootProcessor : 0);
    cpu.cpufeature = kCpuSignature;
    cpu.featureflag = kCpuFeatureFpu | kCpuFeatureApic;
    append(table, cpu);
  }

  mp::Bus bus{};
  bus.type = mp::kBus;
  bus.busid = kIsaBusId;
  std::memcpy(bus.bustype, "ISA   ", sizeof(bus.bustype));
  append(table, bus);

  mp::Ioapic ioapic{};
  ioapic.type = mp::kIoapic;
  ioapic.apicid = ioapic_id;
  ioapic.apicver = kIoapicVersion;
  ioapic.flags = mp::kIoapicEnabled;
  ioapic.apicaddr = static_cast<uint32_t>(kIoapicAddr);
  append(table, ioapic);

  // Every pin as an ISA-bus IRQ of the same number: 0-15 are the legacy
  // devices, 16-23 the virtio-mmio devices (Linux accepts ISA IRQs past 15
  // here, as with Firecracker's table).
  for (uint8_t pin = 0; pin < kIoapicPins; ++pin) {
    mp::Interrupt irq{};
    irq.type = mp::kIoInterrupt;
    irq.irqtype = mp::kIntVectored;
    irq.irqflag = mp::kIrqConforming;
    irq.srcbus = kIsaBusId;
    irq.srcbusirq = pin;
    irq.dstapic = ioapic_id;
    irq.dstirq = pin;
    append(table, irq);
  }

  // Virtual-wire mode as a PC BIOS leaves it: the PIC's output on the BSP's
  // LINT0, NMI on every CPU's LINT1 (MP spec 3.6.2.2, 5.1).
  mp::Interrupt extint{};
  extint.type = mp::kLocalInterrupt;
  extint.irqtype = mp::kIntExtInt;
  extint.irqflag = mp::kIrqConforming;
  extint.srcbus = kIsaBusId;
  extint.dstapic = 0;
  extint.dstirq = 0;
  append(table, extint);

  mp::Interrupt nmi = extint;
  nmi.irqtype = mp::kIntNmi;
  nmi.dstapic = mp::kAllLocalApics;
  nmi.dstirq = 1;
  append(table, nmi);
}

}  // namespace

Result<void> write_mptable(const GuestMemory& memory, uint32_t vcpu_count) {
  if (vcpu_count == 0 || vcpu_count > kMaxVcpus) {
    return fail(fmt::format("{} vCPUs: the MP table supports 1 to {}", vcpu_count, kMaxVcpus));
  }
  const uint64_t config_addr = kEbdaStart + sizeof(mp::FloatingPointer);
  const auto ioapic_id = static_cast<uint8_t>(vcpu_count);

  std::vector<uint8_t> table(sizeof(mp::ConfigHeader));
  append_entries(table, vcpu_count, ioapic_id);

  mp::ConfigHeader header{};
  std::memcpy(header.signature, "PCMP", sizeof(header.signature));
  header.length = static_cast<uint16_t>(table.size());
  header.spec = mp::kSpecRev14;
  std::memcpy(header.oem, "HUSK    ", sizeof(header.oem));
  std::memcpy(header.productid, "MICROVM     ", sizeof(header.productid));
  header.oemcount = static_cast<uint16_t>(vcpu_count + 2 + kIoapicPins + 2);
  header.lapic = static_cast<uint32_t>(kLapicAddr);
  std::memcpy(table.data(), &header, sizeof(header));
  table[offsetof(mp::ConfigHeader, checksum)] = checksum(table);

  mp::FloatingPointer fp{};
  std::memcpy(fp.signature, "_MP_", sizeof(fp.signature));
  fp.physptr = static_cast<uint32_t>(config_addr);
  fp.length = 1;
  fp.specification = mp::kSpecRev14;
  fp.checksum = checksum(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&fp), sizeof(fp)));

  // Everything must stay inside the EBDA that e820 reserves for it.
  if (config_addr + table.size() > kLowMemEnd) {
    return fail(fmt::format("MP table of {} bytes does not fit in the EBDA", table.size()));
  }
  HUSK_TRY(memory.write_obj(kEbdaStart, fp));
  return memory.write(config_addr, table);
}

}  // namespace husk::x86_64
