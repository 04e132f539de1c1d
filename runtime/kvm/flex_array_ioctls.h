// KVM ioctls whose argument ends in a flexible array, with the C layout.
//
// The UAPI headers declare those arrays with __DECLARE_FLEX_ARRAY, which in
// C++ puts a one-byte empty struct before the array: g++ then sees
// sizeof(kvm_cpuid2) == 12 with entries at offset 12, where the kernel has
// 8 and 8, and the size baked into KVM_GET_SUPPORTED_CPUID's ioctl number is
// wrong (the call fails with EINVAL). husk therefore uses its own headers
// with the C layout and builds the ioctl numbers from them. The same holds
// for kvm_msrs (16 bytes in C++, 8 in C), kvm_msr_list (8, not 4) and
// kvm_xsave (4100, not 4096): every KVM_*MSR* and KVM_*XSAVE* number that
// <linux/kvm.h> gives a C++ program is one the kernel does not know. The
// seccomp lists (seccomp/allow_list.cpp) use these numbers too.
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
// struct kvm_msr_list without its indices; indices follow at offset 4.
struct MsrListHeader {
  uint32_t nmsrs;
};
// struct kvm_xsave without its flexible `extra` (KVM_GET_XSAVE2 writes past
// the region as many bytes as KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) says).
struct XsaveRegion {
  uint32_t region[1024];
};
static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8);
static_assert(sizeof(MsrListHeader) == 4 && sizeof(XsaveRegion) == 4096);

inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
inline constexpr unsigned long kKvmSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kKvmGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kKvmGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kKvmGetXsave = _IOR(KVMIO, 0xa4, XsaveRegion);
inline constexpr unsigned long kKvmSetXsave = _IOW(KVMIO, 0xa5, XsaveRegion);
inline constexpr unsigned long kKvmGetXsave2 = _IOR(KVMIO, 0xcf, XsaveRegion);

}  // namespace husk::kvm
