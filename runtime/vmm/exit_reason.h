// Why a VM stopped, as reported to the caller of Machine::run().
#pragma once

#include <string>
#include <utility>

namespace husk::vmm {

enum class ExitReason {
  kGuestReset,        // the guest reset the machine (i8042 0xFE, KVM system event)
  kGuestShutdown,     // the guest powered off or halted for good
  kGuestPanic,        // the guest kernel panicked (seen on the console)
  kTripleFault,       // KVM_EXIT_SHUTDOWN
  kInternalError,     // KVM_EXIT_INTERNAL_ERROR: KVM could not run the guest
  kEntryFailure,      // KVM_EXIT_FAIL_ENTRY
  kVcpuError,         // an ioctl failed or an exit husk cannot handle
  kSignal,            // husk received SIGINT, SIGTERM or SIGHUP
  kHostStop,          // husk itself stopped the VM (job done, agent lost, timeout)
  kVmmFailed,         // the VMM process died without saying why (crash, killed, cgroup OOM)
  kSeccompViolation,  // a VMM thread made a system call outside its allow-list
};

struct VmExit {
  VmExit() = default;
  VmExit(ExitReason r, std::string d, int v = -1) : reason(r), detail(std::move(d)), vcpu(v) {}

  ExitReason reason = ExitReason::kVcpuError;
  std::string detail;  // human-readable, e.g. the panic line or the ioctl error
  int vcpu = -1;       // the vCPU that saw it, or -1
  // For a triple fault or a KVM error: that vCPU's registers and last exits
  // (multi-line; empty otherwise).
  std::string diagnostics;
};

// A short stable name ("guest-reset", "triple-fault", ...) for logs and JSON.
const char* exit_reason_name(ExitReason reason);

// Reset and shutdown are how a guest ends normally; everything else is a
// failure.
inline bool is_clean_exit(ExitReason reason) {
  return reason == ExitReason::kGuestReset || reason == ExitReason::kGuestShutdown;
}

}  // namespace husk::vmm
