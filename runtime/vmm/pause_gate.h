// PauseGate: how the control thread holds every other thread of a running
// VM still (a snapshot): it closes the gate and kicks them; each vCPU
// thread, once out of KVM_RUN with its last exit completed, and each device
// I/O thread, between two events, parks at the gate until it opens again
// or the VM stops. Parked threads touch neither guest memory nor device
// state, so what the control thread reads meanwhile is one consistent
// moment of the machine.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

#include "runtime/vmm/stop_state.h"

namespace husk::vmm {

class PauseGate {
 public:
  // Control thread: from now on threads that reach park() stay there.
  void close();
  [[nodiscard]] bool closed() const;
  // Control thread: until `count` threads are parked, or `timeout` passed
  // (false), or the VM stopped (false).
  [[nodiscard]] bool wait_parked(size_t count, std::chrono::milliseconds timeout, const StopState& stop);
  // Control thread: lets every parked thread go on.
  void open();

  // A vCPU or I/O thread: waits here while the gate is closed and the VM
  // has not stopped.
  void park(const StopState& stop);

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool closed_ = false;
  size_t parked_ = 0;
};

}  // namespace husk::vmm
