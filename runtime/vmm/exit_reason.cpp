#include "runtime/vmm/exit_reason.h"

namespace husk::vmm {

const char* exit_reason_name(ExitReason reason) {
  switch (reason) {
    case ExitReason::kGuestReset:
      return "guest-reset";
    case ExitReason::kGuestShutdown:
      return "guest-shutdown";
    case ExitReason::kGuestPanic:
      return "guest-panic";
    case ExitReason::kTripleFault:
      return "triple-fault";
    case ExitReason::kInternalError:
      return "kvm-internal-error";
    case ExitReason::kEntryFailure:
      return "vm-entry-failure";
    case ExitReason::kVcpuError:
      return "vcpu-error";
    case ExitReason::kSignal:
      return "signal";
    case ExitReason::kHostStop:
      return "host-stop";
    case ExitReason::kVmmFailed:
      return "vmm-failed";
    case ExitReason::kSeccompViolation:
      return "seccomp-violation";
  }
  return "unknown";
}

}  // namespace husk::vmm
