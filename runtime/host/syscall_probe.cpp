#include "runtime/host/syscall_probe.h"

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "runtime/arch/x86_64/boot_cpu_state.h"
#include "runtime/arch/x86_64/gdt.h"
#include "runtime/common/joining_thread.h"
#include "runtime/common/signals.h"
#include "runtime/common/thread.h"
#include "runtime/kvm/vcpu.h"
#include "runtime/kvm/vm.h"
#include "runtime/memory/guest_memory.h"
#include "runtime/vmm/vcpu_loop.h"

namespace husk::host {

namespace {

// The probe's own little world in 2 MiB of guest memory.
constexpr uint64_t kMemSize = 2ull << 20;
constexpr uint64_t kGdt = 0x500;
constexpr uint64_t kPml4 = 0x1000;
constexpr uint64_t kPdpt = 0x2000;
constexpr uint64_t kPd = 0x3000;
constexpr uint64_t kUserCode = 0x4000;
constexpr uint64_t kKernelEntry = 0x5000;  // LSTAR
constexpr uint64_t kUserStack = 0x8000;
constexpr uint16_t kProbePort = 0xf4;
constexpr uint8_t kProbeValue = 0x42;

// Selectors: kernel CS/SS at 0x10/0x18 (STAR[47:32] = 0x10); SYSRET's user
// base at 0x18 gives user SS 0x20|3 and user CS 0x28|3 (Intel SDM, SYSRET).
constexpr uint16_t kKernelCs = 0x10;
constexpr uint16_t kUserDs = 0x20 | 3;
constexpr uint16_t kUserCs = 0x28 | 3;

constexpr uint64_t kPtePresentWriteUser = 0x7;
constexpr uint64_t kPteLarge = 0x80;
constexpr uint64_t kEferSce = 1;

Result<void> write_probe_memory(const GuestMemory& mem) {
  using x86_64::gdt_entry;
  const uint64_t gdt[] = {
      0,
      0,
      gdt_entry(0xa09b, 0, 0xfffff),  // 0x10 kernel code64
      gdt_entry(0xc093, 0, 0xfffff),  // 0x18 kernel data
      gdt_entry(0xc0f3, 0, 0xfffff),  // 0x20 user data, DPL3
      gdt_entry(0xa0fb, 0, 0xfffff),  // 0x28 user code64, DPL3
  };
  HUSK_TRY(mem.write_obj(kGdt, gdt));
  HUSK_TRY(mem.write_obj<uint64_t>(kPml4, kPdpt | kPtePresentWriteUser));
  HUSK_TRY(mem.write_obj<uint64_t>(kPdpt, kPd | kPtePresentWriteUser));
  HUSK_TRY(mem.write_obj<uint64_t>(kPd, 0 | kPtePresentWriteUser | kPteLarge));
  const uint8_t user[] = {0x0f, 0x05, 0xeb, 0xfe};  // syscall; jmp $
  HUSK_TRY(mem.write_obj(kUserCode, user));
  // mov al, 0x42; out 0xf4, al; jmp $   (only possible at CPL0: IOPL is 0)
  const uint8_t kernel[] = {0xb0, kProbeValue, 0xe6, static_cast<uint8_t>(kProbePort), 0xeb, 0xfe};
  HUSK_TRY(mem.write_obj(kKernelEntry, kernel));
  return {};
}

Result<void> setup_probe_vcpu(const kvm::Vcpu& vcpu) {
  HUSK_TRY_ASSIGN(kvm_sregs sregs, vcpu.get_sregs());
  x86_64::setup_long_mode_sregs(sregs);
  sregs.gdt.base = kGdt;
  sregs.gdt.limit = 6 * 8 - 1;
  sregs.cr3 = kPml4;
  sregs.efer |= kEferSce;
  kvm_segment code = sregs.cs;
  code.selector = kUserCs;
  code.dpl = 3;
  code.type = 0xb;
  code.l = 1;
  code.db = 0;
  kvm_segment data = sregs.ds;
  data.selector = kUserDs;
  data.dpl = 3;
  sregs.cs = code;
  sregs.ss = sregs.ds = sregs.es = sregs.fs = sregs.gs = data;
  HUSK_TRY(vcpu.set_sregs(sregs));
  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = kUserCode;
  regs.rsp = kUserStack;
  HUSK_TRY(vcpu.set_regs(regs));
  const uint64_t star = (uint64_t{0x18} << 48) | (uint64_t{kKernelCs} << 32);
  const kvm_msr_entry msrs[] = {
      {x86_64::kMsrStar, 0, star},
      {x86_64::kMsrLstar, 0, kKernelEntry},
      {x86_64::kMsrSyscallMask, 0, 0},
  };
  HUSK_TRY(vcpu.set_msrs(msrs));
  return {};
}

ProbeOutcome describe_exit(const kvm::Vcpu& vcpu) {
  const kvm_run* run = vcpu.run_state();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      auto sregs = vcpu.get_sregs();
      const int cpl = sregs ? sregs->cs.dpl : -1;
      if (run->io.port == kProbePort && cpl == 0) {
        return {true, "SYSCALL from user mode arrived in kernel mode"};
      }
      if (run->io.port == kProbePort) {
        return {false, fmt::format("SYSCALL from guest user mode jumped to LSTAR but stayed at "
                                   "CPL {} instead of entering kernel mode", cpl)};
      }
      return {false, fmt::format("unexpected port {:#x} access at CPL {}", run->io.port, cpl)};
    }
    case KVM_EXIT_SHUTDOWN:
      return {false, "SYSCALL from guest user mode did not reach guest kernel mode: the guest "
                     "faulted at its LSTAR address and triple-faulted"};
    case KVM_EXIT_INTERNAL_ERROR:
      return {false, fmt::format("KVM could not emulate the guest (internal error, suberror {})",
                                 run->internal.suberror)};
    case KVM_EXIT_FAIL_ENTRY:
      return {false, "VM entry failed"};
    default:
      return {false, fmt::format("unexpected KVM exit {}", run->exit_reason)};
  }
}

}  // namespace

Result<ProbeOutcome> run_syscall_probe(const kvm::Kvm& kvm) {
  HUSK_TRY_ASSIGN(kvm::Vm vm, kvm.create_vm());
  HUSK_TRY(vm.set_tss_addr(0xfffbd000));
  HUSK_TRY_ASSIGN(GuestMemory mem, GuestMemory::create({{0, kMemSize}}));
  const GuestRegion& region = mem.regions().front();
  HUSK_TRY(vm.set_user_memory_region(0, region.gpa(), region.size(), region.host()));
  HUSK_TRY(write_probe_memory(mem));
  HUSK_TRY_ASSIGN(kvm::Vcpu vcpu, vm.create_vcpu(0));
  HUSK_TRY_ASSIGN(auto cpuid, kvm.supported_cpuid());
  HUSK_TRY(vcpu.set_cpuid(cpuid));
  HUSK_TRY(setup_probe_vcpu(vcpu));

  install_signal_handlers();
  std::atomic<bool> done{false};
  Result<void> run_result;
  HUSK_TRY_ASSIGN(JoiningThread runner, spawn_thread(seccomp::ThreadClass::kVcpu, "husk-probe", [&] {
    do {
      run_result = vcpu.run();
    } while (run_result && vcpu.run_state()->exit_reason == KVM_EXIT_INTR);
    done = true;
  }));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!done) {
    while (!done) {
      vmm::kick_vcpu(vcpu, runner.native_handle());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    runner.join();
    return ProbeOutcome{false, "the probe guest did not reach kernel mode within 5 s"};
  }
  runner.join();
  if (!run_result) return ProbeOutcome{false, run_result.error().message};
  return describe_exit(vcpu);
}

}  // namespace husk::host
