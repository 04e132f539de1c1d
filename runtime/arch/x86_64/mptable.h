// The Intel MultiProcessor Specification 1.4 tables (chapter 4, "MP
// Configuration Table"): the floating pointer structure and the base
// configuration table, written into the EBDA where Linux scans for them
// (arch/x86/kernel/mpparse.c). They tell a guest without ACPI how many CPUs
// it has and how ISA and virtio interrupts reach the IOAPIC.
#pragma once

#include <cstdint>

#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::x86_64 {

// One processor entry per vCPU (local APIC id = vCPU index, vCPU 0 the
// bootstrap processor), one ISA bus, the IOAPIC with id vcpu_count, an INT
// entry for each IOAPIC pin (ISA IRQ n -> pin n), ExtINT on LINT0 and NMI on
// LINT1. vcpu_count must be 1..kMaxVcpus.
[[nodiscard]] Result<void> write_mptable(const GuestMemory& memory, uint32_t vcpu_count);

}  // namespace husk::x86_64
