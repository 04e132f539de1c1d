// Local APIC LVT set-up for boot: LINT0 delivers the legacy PIC's ExtINT and
// LINT1 delivers NMI, as a PC BIOS leaves them (Intel SDM vol. 3, 10.5.1).
#pragma once

#include <linux/kvm.h>

namespace husk::x86_64 {

// Rewrites the LINT0/LINT1 entries of a state read with KVM_GET_LAPIC.
void set_boot_lint(kvm_lapic_state& lapic);

}  // namespace husk::x86_64
