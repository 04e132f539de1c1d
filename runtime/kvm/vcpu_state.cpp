// Saving and restoring a vCPU's and the VM's KVM state (vcpu_state.h).
// The order of the calls is KVM's, as Firecracker's vstate/vcpu and
// vstate/vm follow it; the reasons are in the comments below.
#include "runtime/kvm/vcpu_state.h"

#include <algorithm>

#include <fmt/format.h>

namespace husk::kvm {

namespace {

// The MTRRs, as in the kernel's arch/x86/include/asm/msr-index.h: KVM
// emulates them (arch/x86/kvm/mtrr.c, 8 variable pairs) but does not put
// them in KVM_GET_MSR_INDEX_LIST; QEMU saves them by name too. husk's boot
// sets MTRRdefType (runtime/arch/x86_64/boot_cpu_state.h), so a restore
// without them would turn the guest's MTRRs off.
constexpr uint32_t kMsrMtrrPhysBase0 = 0x200;
constexpr uint32_t kVariableMtrrMsrs = 2 * 8;  // base and mask of each pair
constexpr uint32_t kFixedMtrrs[] = {0x250, 0x258, 0x259, 0x268, 0x269, 0x26a,
                                    0x26b, 0x26c, 0x26d, 0x26e, 0x26f};
constexpr uint32_t kMsrMtrrDefType = 0x2ff;

std::vector<uint32_t> with_mtrrs(std::vector<uint32_t> indices) {
  auto add = [&indices](uint32_t index) {
    if (std::find(indices.begin(), indices.end(), index) == indices.end()) indices.push_back(index);
  };
  for (uint32_t i = 0; i < kVariableMtrrMsrs; ++i) add(kMsrMtrrPhysBase0 + i);
  for (uint32_t index : kFixedMtrrs) add(index);
  add(kMsrMtrrDefType);
  return indices;
}

}  // namespace

Result<std::vector<uint32_t>> saved_msr_indices(const Kvm& kvm, const Vcpu& vcpu) {
  HUSK_TRY_ASSIGN(std::vector<uint32_t> listed, kvm.msr_index_list());
  const std::vector<uint32_t> candidates = with_mtrrs(std::move(listed));
  // KVM lists MSRs this vCPU may still refuse (features its CPUID does not
  // have, MSRs the host lacks): KVM_GET_MSRS stops at the first one, says
  // how many it read, and the rest are asked again without it.
  std::vector<kvm_msr_entry> entries(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) entries[i].index = candidates[i];
  std::vector<uint32_t> readable;
  readable.reserve(candidates.size());
  size_t next = 0;
  while (next < entries.size()) {
    std::span<kvm_msr_entry> rest(entries.data() + next, entries.size() - next);
    HUSK_TRY_ASSIGN(const size_t read, vcpu.get_msrs(rest));
    for (size_t i = 0; i < read; ++i) readable.push_back(rest[i].index);
    next += read + 1;  // past the one KVM refused (or past the end)
  }
  return readable;
}

Result<VcpuState> save_vcpu_state(const Kvm& kvm, const Vcpu& vcpu, std::span<const uint32_t> msrs) {
  VcpuState state;
  // KVM_GET_MP_STATE first: it takes pending INIT/SIPI events in
  // (kvm_apic_accept_events), which changes registers and the LAPIC.
  HUSK_TRY_ASSIGN(state.mp_state, vcpu.get_mp_state());
  HUSK_TRY_ASSIGN(state.regs, vcpu.get_regs());
  HUSK_TRY_ASSIGN(state.sregs, vcpu.get_sregs());
  HUSK_TRY_ASSIGN(state.xsave, vcpu.get_xsave(kvm.xsave2_size()));
  HUSK_TRY_ASSIGN(state.xcrs, vcpu.get_xcrs());
  HUSK_TRY_ASSIGN(state.debugregs, vcpu.get_debugregs());
  HUSK_TRY_ASSIGN(state.lapic, vcpu.get_lapic());
  state.msrs.resize(msrs.size());
  for (size_t i = 0; i < msrs.size(); ++i) state.msrs[i].index = msrs[i];
  HUSK_TRY_ASSIGN(const size_t read, vcpu.get_msrs(state.msrs));
  if (read < state.msrs.size()) {
    return fail(fmt::format("KVM_GET_MSRS vCPU {}: MSR {:#x} could not be read", vcpu.id(),
                            state.msrs[read].index));
  }
  // Events last: the calls above may deliver or queue an interrupt or
  // exception, and a pending one read earlier would be stale.
  HUSK_TRY_ASSIGN(state.events, vcpu.get_vcpu_events());
  return state;
}

Result<void> restore_vcpu_state(const Vcpu& vcpu, const VcpuState& state) {
  HUSK_TRY(vcpu.set_mp_state(state.mp_state));
  HUSK_TRY(vcpu.set_regs(state.regs));
  // Special registers before XSAVE and XCRs: CR4.OSXSAVE must be set for
  // KVM to take XCR0, and EFER and CR0 decide what the rest means.
  HUSK_TRY(vcpu.set_sregs(state.sregs));
  HUSK_TRY(vcpu.set_xsave(state.xsave));
  // A host without XSAVE reports no XCRs and refuses to set any (EINVAL).
  if (state.xcrs.nr_xcrs > 0) HUSK_TRY(vcpu.set_xcrs(state.xcrs));
  HUSK_TRY(vcpu.set_debugregs(state.debugregs));
  // The LAPIC before the MSRs: IA32_TSC_DEADLINE is taken only while the
  // LAPIC's timer is in TSC-deadline mode.
  HUSK_TRY(vcpu.set_lapic(state.lapic));
  HUSK_TRY(vcpu.set_msrs(state.msrs));
  // Events last: setting the registers, the LAPIC and the MSRs may clear
  // a pending exception or interrupt that the events put back.
  HUSK_TRY(vcpu.set_vcpu_events(state.events));
  return {};
}

Result<VmState> save_vm_state(const Vm& vm) {
  VmState state;
  HUSK_TRY_ASSIGN(state.pic_master, vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER));
  HUSK_TRY_ASSIGN(state.pic_slave, vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE));
  HUSK_TRY_ASSIGN(state.ioapic, vm.get_irqchip(KVM_IRQCHIP_IOAPIC));
  HUSK_TRY_ASSIGN(state.pit, vm.get_pit2());
  HUSK_TRY_ASSIGN(state.clock, vm.get_clock());
  return state;
}

Result<void> restore_vm_state(const Vm& vm, const VmState& state) {
  HUSK_TRY(vm.set_pit2(state.pit));
  // No flags: with KVM_CLOCK_REALTIME KVM would add the real time since the
  // save, and a snapshot that waited a week in a cache would make the
  // guest's monotonic clock leap a week (every timer due, lockup and RCU
  // stall detectors tripped). The guest's time goes on from the save; its
  // wall clock is the host's once the agent sets it (SetClock).
  kvm_clock_data clock = state.clock;
  clock.flags = 0;
  HUSK_TRY(vm.set_clock(clock));
  HUSK_TRY(vm.set_irqchip(state.pic_master));
  HUSK_TRY(vm.set_irqchip(state.pic_slave));
  HUSK_TRY(vm.set_irqchip(state.ioapic));
  return {};
}

}  // namespace husk::kvm
