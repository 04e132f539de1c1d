// The KVM_RUN loop of one vCPU thread: port and MMIO exits go to the buses,
// every way a guest can end (reset, shutdown, triple fault, KVM errors) is
// turned into a StopState request, and a stop requested elsewhere ends the
// loop through a kick (see kick_vcpu).
#pragma once

#include <atomic>
#include <csignal>
#include <functional>

#include "runtime/devices/bus.h"
#include "runtime/kvm/vcpu.h"
#include "runtime/vmm/pause_gate.h"
#include "runtime/vmm/stop_state.h"
#include "runtime/vmm/vcpu_fault_report.h"

namespace husk::vmm {

struct VcpuContext {
  kvm::Vcpu* vcpu;
  devices::Bus* pio_bus;
  devices::Bus* mmio_bus;
  StopState* stop;
  std::atomic<bool>* exited;  // set when the loop returns
  // Set by another thread, followed by a kick: the loop logs this vCPU's
  // state (registers, last exits) once and goes on running (SIGQUIT).
  std::atomic<bool>* dump_requested = nullptr;
  // Set by vCPU 0 just before its first KVM_RUN (boot timeline).
  // Process CPU time at the same moment.
  std::atomic<int64_t>* first_run_ns = nullptr;
  std::atomic<int64_t>* first_run_cpu_ns = nullptr;
  // Closed and followed by a kick: the loop parks there, its last exit
  // completed (a KVM_RUN with immediate_exit finishes a pending port or
  // MMIO access before it returns), until the gate opens.
  PauseGate* pause = nullptr;
  // Run by the vCPU's own thread just before it parks (a snapshot saves
  // the vCPU's state there: its thread's filter allows reading it).
  std::function<void()> on_pause{};
};

// Makes the vCPU's next or current KVM_RUN return at once (with
// kick_signal(), runtime/common/signals.h, which does nothing but EINTR).
void kick_vcpu(kvm::Vcpu& vcpu, pthread_t thread);

void run_vcpu_loop(VcpuContext context);

}  // namespace husk::vmm
