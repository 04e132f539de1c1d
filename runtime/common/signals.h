// Every signal husk handles, in one place:
// - SIGPIPE is ignored: a closed socket or pipe is an EPIPE error value.
// - The kick signal (SIGRTMIN+1) has a no-op handler without SA_RESTART: a
//   vCPU thread in KVM_RUN comes back with EINTR (vcpu_loop.h, kick_vcpu).
// - SIGSYS reports a seccomp violation and ends the process
//   (seccomp/violation.h).
// - SIGINT, SIGTERM, SIGHUP and SIGQUIT are blocked in every thread and
//   read from a signalfd by the thread that owns the VM (StopSignals): the
//   first three stop it, SIGQUIT asks for a state dump.
// - Where the VM runs in a VMM process (runtime/vmm/vmm_process.h), husk
//   forwards those four to it instead (forward_stop_signals).
#pragma once

#include <signal.h>

#include "runtime/common/unique_fd.h"

namespace husk {

[[nodiscard]] int kick_signal();

// Installs the process-wide handlers above (idempotent). Called by the CLI
// at start and by every Machine::run.
void install_signal_handlers();

// Blocks SIGINT, SIGTERM and SIGHUP in the calling thread and so in every
// thread it starts afterwards; the VM's StopSignals then reads them. For
// the CLI's main thread before it starts anything.
void block_stop_signals();

// husk with a VMM process: SIGINT, SIGTERM, SIGHUP and SIGQUIT are caught
// (SA_RESTART) and written, as a 4-byte signal number, to the target set by
// set_stop_signal_target (the VMM's channel); one that comes while there
// is no target is kept and sent to the next.
void forward_stop_signals();
void set_stop_signal_target(int fd);

// Blocks SIGINT, SIGTERM, SIGHUP and SIGQUIT for the calling thread (and the
// threads it starts) while it lives, and opens a signalfd for them; the old
// mask comes back at destruction.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // -1 when signalfd failed.
  [[nodiscard]] int fd() const { return fd_.get(); }
  // Reads one pending signal; 0 when none.
  [[nodiscard]] int take() const;

 private:
  sigset_t set_{};
  sigset_t old_{};
  UniqueFd fd_;
};

}  // namespace husk
