// Kvm: the handle on /dev/kvm, the system-wide KVM API (KVM_GET_API_VERSION,
// KVM_CHECK_EXTENSION, KVM_GET_SUPPORTED_CPUID, KVM_GET_MSR_INDEX_LIST,
// KVM_GET_VCPU_MMAP_SIZE, KVM_CREATE_VM). Documentation/virt/kvm/api.rst,
// section 4.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::kvm {

class Vm;

inline constexpr const char* kDefaultKvmPath = "/dev/kvm";

// The most CPUID entries husk asks KVM for, and believes from anywhere:
// KVM_GET_SUPPORTED_CPUID fails with E2BIG while the array is too small,
// and KVM_SET_CPUID2 takes no more than this (KVM_MAX_CPUID_ENTRIES).
inline constexpr uint32_t kMaxCpuidEntries = 256;

class Kvm {
 public:
  // Opens the device and checks that it speaks API version 12 (the only
  // stable one). The error names the path and says what to do.
  static Result<Kvm> open(const std::string& path = kDefaultKvmPath);

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] int api_version() const { return api_version_; }

  // KVM_CHECK_EXTENSION on the system fd: 0 when absent, else a value whose
  // meaning depends on the capability.
  [[nodiscard]] int check_extension(int capability) const;

  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  // KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a guest
  // (the host's that KVM passes on, and the ones KVM emulates).
  [[nodiscard]] Result<std::vector<uint32_t>> msr_index_list() const;
  // The bytes of one vCPU's XSAVE state for KVM_GET_XSAVE2 / KVM_SET_XSAVE:
  // KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2), read once at open(), so that a
  // vCPU thread saving its state needs no ioctl on this fd; 0 when KVM has
  // no XSAVE2 (then KVM_GET_XSAVE's 4096-byte struct kvm_xsave).
  [[nodiscard]] size_t xsave2_size() const { return xsave2_size_; }
  [[nodiscard]] Result<size_t> vcpu_mmap_size() const;
  [[nodiscard]] Result<Vm> create_vm() const;

 private:
  Kvm(UniqueFd fd, int api_version) : fd_(std::move(fd)), api_version_(api_version) {}
  UniqueFd fd_;
  int api_version_ = 0;
  size_t xsave2_size_ = 0;
};

}  // namespace husk::kvm
