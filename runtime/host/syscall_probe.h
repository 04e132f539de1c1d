// The Linux-guest probe: can this KVM run a Linux guest? A tiny guest starts
// in 64-bit user mode (CPL3) and executes SYSCALL; on a working KVM the CPU
// arrives at LSTAR in kernel mode (CPL0), where the probe writes to an I/O
// port. Linux needs exactly this on every system call. Some nested KVMs
// without hardware virtualization (kvm_pvm) fail it: the guest faults at
// LSTAR still in user mode (docs: host-kvm.md).
#pragma once

#include <string>

#include "runtime/common/result.h"
#include "runtime/kvm/kvm.h"

namespace husk::host {

struct ProbeOutcome {
  bool reached_cpl0 = false;
  std::string detail;  // what happened, in words
};

// Runs the probe guest on `kvm` (bounded by a 5 s deadline). An error means
// the probe could not even be set up (a KVM ioctl failed).
[[nodiscard]] Result<ProbeOutcome> run_syscall_probe(const kvm::Kvm& kvm);

}  // namespace husk::host
