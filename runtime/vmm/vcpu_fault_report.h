// What a vCPU was doing when the guest died: a short ring of its last exits
// (recorded on every KVM exit, a few stores each) and, on a triple fault or a
// KVM internal error, a dump of its registers, special registers and pending
// events. The report is attached to the VmExit so that `husk boot` and
// `husk exec` print it: a fault in CI then explains itself without a rerun.
// Documentation/virt/kvm/api.rst: KVM_GET_REGS, KVM_GET_SREGS,
// KVM_GET_VCPU_EVENTS, struct kvm_run.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <string>

#include "runtime/kvm/vcpu.h"

namespace husk::vmm {

// One KVM exit, as much as is cheap to keep.
struct ExitRecord {
  uint32_t reason = 0;   // KVM_EXIT_*
  uint64_t address = 0;  // port (IO) or guest-physical address (MMIO)
  uint8_t size = 0;      // access size in bytes
  bool write = false;
  uint64_t value = 0;    // the first bytes written (writes only)
};

// The last kExitHistory exits of one vCPU. Written by its own thread only.
class ExitHistory {
 public:
  static constexpr size_t kCapacity = 16;

  void record(const kvm_run& run);
  // Oldest first, one line each.
  [[nodiscard]] std::string describe() const;

 private:
  std::array<ExitRecord, kCapacity> ring_{};
  uint64_t count_ = 0;
};

// A multi-line report: the vCPU's general and special registers, pending
// exception and interrupt state, then its exit history. Ioctl failures are
// written into the report instead of ending it.
[[nodiscard]] std::string vcpu_fault_report(const kvm::Vcpu& vcpu, const ExitHistory& history);

// The name of a KVM_EXIT_* value ("IO", "MMIO", "SHUTDOWN", ...).
[[nodiscard]] const char* kvm_exit_name(uint32_t reason);

}  // namespace husk::vmm
