// Vm: one KVM virtual machine (the fd from KVM_CREATE_VM) and its VM ioctls:
// memory slots, the in-kernel irqchip and PIT (and their state), kvmclock,
// IRQ lines, irqfd, ioeventfd, and vCPU creation. Documentation/virt/kvm/api.rst, section 4.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::kvm {

class Vcpu;

class Vm {
 public:
  Vm(UniqueFd fd, size_t vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] int check_extension(int capability) const;

  [[nodiscard]] Result<void> set_user_memory_region(uint32_t slot, uint64_t gpa, uint64_t size,
                                                    void* host) const;
  [[nodiscard]] Result<void> set_tss_addr(uint64_t addr) const;
  [[nodiscard]] Result<void> set_identity_map_addr(uint64_t addr) const;
  [[nodiscard]] Result<void> create_irqchip() const;
  [[nodiscard]] Result<void> create_pit2() const;
  [[nodiscard]] Result<void> set_irq_line(uint32_t irq, bool level) const;

  // The in-kernel devices' state (snapshots). `chip_id` is
  // KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC;
  // set_irqchip writes the chip its argument's chip_id names.
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(uint32_t chip_id) const;
  [[nodiscard]] Result<void> set_irqchip(const kvm_irqchip& chip) const;
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  [[nodiscard]] Result<void> set_pit2(const kvm_pit_state2& pit) const;
  [[nodiscard]] Result<kvm_clock_data> get_clock() const;
  // Passes `clock` as given: the caller keeps only the flags KVM_SET_CLOCK
  // takes (restore_vm_state does).
  [[nodiscard]] Result<void> set_clock(const kvm_clock_data& clock) const;

  // Interrupts without a trip through user space: a write to `eventfd`
  // raises `gsi`.
  [[nodiscard]] Result<void> register_irqfd(int eventfd, uint32_t gsi) const;
  // Guest writes to [addr, addr+len) signal `eventfd` inside KVM instead of
  // exiting to a vCPU thread. With a datamatch only writes of that value do.
  [[nodiscard]] Result<void> register_ioeventfd(int eventfd, uint64_t addr, uint32_t len,
                                                bool pio,
                                                std::optional<uint64_t> datamatch = {}) const;

  [[nodiscard]] Result<Vcpu> create_vcpu(uint32_t id) const;

 private:
  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
};

}  // namespace husk::kvm
