// Vcpu: one virtual CPU (the fd from KVM_CREATE_VCPU) with its shared
// kvm_run page, and the per-vCPU state ioctls.
// Documentation/virt/kvm/api.rst, sections 4 and 5 (struct kvm_run).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::kvm {

class Vcpu {
 public:
  Vcpu(uint32_t id, UniqueFd fd, kvm_run* run, size_t run_size)
      : id_(id), fd_(std::move(fd)), run_(run), run_size_(run_size) {}
  ~Vcpu();
  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&&) = delete;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  [[nodiscard]] uint32_t id() const { return id_; }
  [[nodiscard]] int fd() const { return fd_.get(); }
  // The shared page KVM fills in on every exit. Valid for the Vcpu's life.
  [[nodiscard]] kvm_run* run_state() const { return run_; }

  // One KVM_RUN. EINTR (a kick from another thread) is returned as an error
  // whose code is EINTR so the caller can tell it from a real failure.
  [[nodiscard]] Result<void> run() const;

  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  [[nodiscard]] Result<void> set_mp_state(const kvm_mp_state& mp_state) const;
  [[nodiscard]] Result<kvm_regs> get_regs() const;
  [[nodiscard]] Result<void> set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Result<void> set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Result<void> set_fpu(const kvm_fpu& fpu) const;
  // KVM_GET_XSAVE2 into `xsave2_size` bytes (Kvm::xsave2_size()), or
  // KVM_GET_XSAVE's 4096 bytes when that is 0.
  [[nodiscard]] Result<std::vector<uint8_t>> get_xsave(size_t xsave2_size) const;
  // KVM_SET_XSAVE reads 4096 bytes, or KVM_CAP_XSAVE2's size if larger:
  // `xsave` must be what get_xsave returned on the same host.
  [[nodiscard]] Result<void> set_xsave(std::span<const uint8_t> xsave) const;
  [[nodiscard]] Result<kvm_xcrs> get_xcrs() const;
  [[nodiscard]] Result<void> set_xcrs(const kvm_xcrs& xcrs) const;
  [[nodiscard]] Result<kvm_debugregs> get_debugregs() const;
  [[nodiscard]] Result<void> set_debugregs(const kvm_debugregs& debugregs) const;
  // KVM_GET_MSRS for the indices in `msrs`, whose values it fills in. KVM
  // stops at the first MSR it cannot read: the result is how many it read
  // (a short count is not an error here; the entries after it are as given).
  [[nodiscard]] Result<size_t> get_msrs(std::span<kvm_msr_entry> msrs) const;
  // KVM_SET_MSRS; an MSR KVM refuses is an error that names its index.
  [[nodiscard]] Result<void> set_msrs(std::span<const kvm_msr_entry> msrs) const;
  [[nodiscard]] Result<void> set_cpuid(std::span<const kvm_cpuid_entry2> entries) const;
  [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
  [[nodiscard]] Result<void> set_vcpu_events(const kvm_vcpu_events& events) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Result<void> set_lapic(const kvm_lapic_state& lapic) const;

 private:
  uint32_t id_;
  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
};

}  // namespace husk::kvm
