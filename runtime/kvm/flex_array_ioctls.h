// KVM ioctls whose argument ends in a flexible array, with the C layout.
//
// The UAPI headers declare those arrays with __DECLARE_FLEX_ARRAY, which in
// C++ puts a one-byte empty struct before the array: g++ then sees
// sizeof(kvm_cpuid2) == 12 with entries at offset 12, where the kernel has
// 8 and 8, and the size baked into KVM_GET_SUPPORTED_CPUID's ioctl number is
// wrong (the call fails with EINVAL). husk therefore uses its own headers
// with the C layout and builds the ioctl numbers from them.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace husk::kvm {

// struct kvm_cpuid2 without its entries; entries follow at offset 8.
struct CpuidHeader {
  uint32_t nent;
  uint32_t padding;
};
// struct kvm_msrs without its entries; entries follow at offset 8.
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8);

inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kKvmSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kKvmGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);

}  // namespace husk::kvm
