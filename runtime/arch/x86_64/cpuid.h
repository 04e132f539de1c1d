// Per-vCPU CPUID: the list KVM_GET_SUPPORTED_CPUID returns, rewritten so each
// vCPU sees its own APIC id and a topology of vcpu_count single-threaded
// cores in one package (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, E.4;
// Documentation/virt/kvm/api.rst, "KVM_GET_SUPPORTED_CPUID issues").
//
// The same steps as Firecracker's CPUID "normalize" (cpu_config/x86_64/cpuid/
// {common,intel,amd}/normalize.rs), without CPU templates:
//   leaf 0x1      EBX[31:24] initial APIC id, EBX[23:16] logical processor
//                 count, EBX[15:8] CLFLUSH size 8 (64 bytes), EDX[28] HTT
//                 when more than one vCPU, ECX[31] hypervisor present,
//                 ECX[24] TSC-deadline set exactly when the caller says
//                 KVM emulates it (KVM_GET_SUPPORTED_CPUID never reports it).
//   leaf 0x4      per cache: EAX[25:14] sharing (L1/L2 per core, L3 all
//                 vCPUs), EAX[31:26] cores per package - 1.
//   leaf 0x6      turbo boost (EAX[1]) and energy-performance bias (ECX[3])
//                 cleared: the guest cannot control them.
//   leaf 0xa      zeroed: no architectural PMU is promised to the guest.
//   leaf 0xb/0x1f rebuilt (KVM reports zeros): subleaf 0 SMT with 1 thread,
//                 subleaf 1 core level with vcpu_count, subleaf 2 invalid;
//                 EDX = x2APIC id on every subleaf. 0x1f only if present.
//   AMD only      0x80000001 ECX[1] CmpLegacy when more than one vCPU;
//                 0x80000008 ECX[7:0] NC = count - 1, ECX[15:12] ApicIdSize;
//                 0x8000001d sharing like leaf 4; 0x8000001e EAX extended
//                 APIC id, EBX core id, ECX node 0.
//   everything else, the KVM paravirt leaves 0x40000000.. included, as KVM
//   reported it.
// Not done: CPU templates, brand string rewrite, leaf 7 masking.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <linux/kvm.h>

namespace husk::x86_64 {

inline constexpr uint32_t kCpuidFeatureInfo = 0x1;
inline constexpr uint32_t kCpuidCacheParams = 0x4;
inline constexpr uint32_t kCpuidPowerMgmt = 0x6;
inline constexpr uint32_t kCpuidPerfMon = 0xa;
inline constexpr uint32_t kCpuidExtTopology = 0xb;
inline constexpr uint32_t kCpuidExtTopologyV2 = 0x1f;
inline constexpr uint32_t kCpuidAmdFeatures = 0x80000001;
inline constexpr uint32_t kCpuidAmdSizes = 0x80000008;
inline constexpr uint32_t kCpuidAmdCacheTopology = 0x8000001d;
inline constexpr uint32_t kCpuidAmdExtApicId = 0x8000001e;

inline constexpr uint32_t kCpuid1EcxTscDeadline = 1u << 24;
inline constexpr uint32_t kCpuid1EcxHypervisor = 1u << 31;
inline constexpr uint32_t kCpuid1EdxHtt = 1u << 28;

// `tsc_deadline_timer`: KVM_CHECK_EXTENSION(KVM_CAP_TSC_DEADLINE_TIMER) with
// the in-kernel irqchip; api.rst says only then may ECX[24] be set.
[[nodiscard]] std::vector<kvm_cpuid_entry2> normalize_cpuid(
    std::span<const kvm_cpuid_entry2> supported, uint32_t vcpu_index, uint32_t vcpu_count,
    bool tsc_deadline_timer = false);

}  // namespace husk::x86_64
