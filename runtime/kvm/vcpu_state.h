// The whole architectural state of one vCPU and of the VM's in-kernel
// devices, as KVM's own structs: what a snapshot saves and a restore puts
// back (Documentation/virt/kvm/api.rst, the KVM_GET_* / KVM_SET_* pairs).
//
// Saving reads every part; restoring writes them in the order KVM needs
// (CPUID is set by the builder first; then MP state, registers, special
// registers, XSAVE, XCRs, debug registers, LAPIC, MSRs, and the pending
// events last, since setting the others may change them). A part KVM
// refuses is an error value that names it; nothing is skipped silently.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/kvm/kvm.h"
#include "runtime/kvm/vcpu.h"
#include "runtime/kvm/vm.h"

namespace husk::kvm {

struct VcpuState {
  kvm_mp_state mp_state{};
  kvm_regs regs{};
  kvm_sregs sregs{};
  // KVM_GET_XSAVE2's buffer (KVM_CAP_XSAVE2 bytes), or KVM_GET_XSAVE's
  // struct kvm_xsave (4096 bytes) where KVM has no XSAVE2.
  std::vector<uint8_t> xsave;
  kvm_xcrs xcrs{};
  kvm_debugregs debugregs{};
  kvm_lapic_state lapic{};
  std::vector<kvm_msr_entry> msrs;  // index and value of each saved MSR
  kvm_vcpu_events events{};
};

// The MSRs a snapshot saves: KVM_GET_MSR_INDEX_LIST (and the emulated
// ones KVM lists there), then the MTRRs (emulated, never listed), minus
// any `vcpu` cannot read.
[[nodiscard]] Result<std::vector<uint32_t>> saved_msr_indices(const Kvm& kvm, const Vcpu& vcpu);

// Reads the parts with `vcpu`'s own ioctls only (the vCPU thread's seccomp
// list has them; the XSAVE size comes from Kvm::xsave2_size()). Call it
// when KVM_RUN has returned with nothing left half done: a port or MMIO
// exit's instruction completes only in the next KVM_RUN (api.rst, section
// 5, the note after KVM_EXIT_MMIO): re-enter once with immediate_exit set
// to complete it without running the guest on.
[[nodiscard]] Result<VcpuState> save_vcpu_state(const Kvm& kvm, const Vcpu& vcpu, std::span<const uint32_t> msrs);
// `vcpu` must already have its CPUID (the same as when saved).
[[nodiscard]] Result<void> restore_vcpu_state(const Vcpu& vcpu, const VcpuState& state);

// The in-kernel irqchip (both PICs and the IOAPIC), the PIT and kvmclock.
struct VmState {
  kvm_irqchip pic_master{};
  kvm_irqchip pic_slave{};
  kvm_irqchip ioapic{};
  kvm_pit_state2 pit{};
  kvm_clock_data clock{};
};

[[nodiscard]] Result<VmState> save_vm_state(const Vm& vm);
// Restores the clock as it was saved: the guest's monotonic time goes on
// from there, however long the snapshot waited (its wall clock is set by
// the agent, runtime/agent).
[[nodiscard]] Result<void> restore_vm_state(const Vm& vm, const VmState& state);

}  // namespace husk::kvm
