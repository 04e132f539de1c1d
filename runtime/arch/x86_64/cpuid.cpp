#include "runtime/arch/x86_64/cpuid.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace husk::x86_64 {

namespace {

// Leaf 0xb / 0x1f level types (SDM vol. 2A, CPUID leaf 0BH, ECX[15:8]).
constexpr uint32_t kLevelInvalid = 0;
constexpr uint32_t kLevelSmt = 1;
constexpr uint32_t kLevelCore = 2;

constexpr uint32_t kClflushLineSize8 = 8;  // in 8-byte units: 64 bytes
constexpr uint32_t kCacheTypeNull = 0;
constexpr uint32_t kCacheLevelL3 = 3;
constexpr uint32_t kAmdCmpLegacy = 1u << 1;

constexpr uint32_t set_bits(uint32_t reg, unsigned lo, unsigned hi, uint32_t value) {
  const uint32_t width = hi - lo + 1;
  const uint32_t mask = (width == 32 ? ~0u : ((1u << width) - 1)) << lo;
  return (reg & ~mask) | ((value << lo) & mask);
}

constexpr uint32_t get_bits(uint32_t reg, unsigned lo, unsigned hi) {
  const uint32_t width = hi - lo + 1;
  return (reg >> lo) & (width == 32 ? ~0u : ((1u << width) - 1));
}

// The number of APIC-id bits that tell `count` cores apart.
uint32_t id_bits(uint32_t count) { return static_cast<uint32_t>(std::bit_width(count - 1)); }

bool is_amd(std::span<const kvm_cpuid_entry2> entries) {
  for (const kvm_cpuid_entry2& e : entries) {
    if (e.function != 0) continue;
    char vendor[12];
    std::memcpy(vendor, &e.ebx, 4);
    std::memcpy(vendor + 4, &e.edx, 4);
    std::memcpy(vendor + 8, &e.ecx, 4);
    return std::memcmp(vendor, "AuthenticAMD", 12) == 0 ||
           std::memcmp(vendor, "HygonGenuine", 12) == 0;
  }
  return false;
}

void update_feature_info(kvm_cpuid_entry2& e, uint32_t index, uint32_t count, bool tsc_deadline) {
  e.ebx = set_bits(e.ebx, 24, 31, index);
  e.ebx = set_bits(e.ebx, 16, 23, count);
  e.ebx = set_bits(e.ebx, 8, 15, kClflushLineSize8);
  e.ecx |= kCpuid1EcxHypervisor;
  e.ecx = tsc_deadline ? (e.ecx | kCpuid1EcxTscDeadline) : (e.ecx & ~kCpuid1EcxTscDeadline);
  e.edx = count > 1 ? (e.edx | kCpuid1EdxHtt) : (e.edx & ~kCpuid1EdxHtt);
}

// Leaf 4 and AMD 0x8000001d share the EAX[25:14] layout; only leaf 4 has the
// cores-per-package field.
void update_cache(kvm_cpuid_entry2& e, uint32_t count, bool cores_field) {
  if (get_bits(e.eax, 0, 4) == kCacheTypeNull) return;
  const uint32_t sharing = get_bits(e.eax, 5, 7) >= kCacheLevelL3 ? count : 1;
  e.eax = set_bits(e.eax, 14, 25, sharing - 1);
  if (cores_field) e.eax = set_bits(e.eax, 26, 31, count - 1);
}

kvm_cpuid_entry2 topology_subleaf(uint32_t function, uint32_t subleaf, uint32_t index,
                                  uint32_t count) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = subleaf;
  e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
  e.ecx = subleaf;  // ECX[7:0] echoes the level number
  e.edx = index;    // x2APIC id on every subleaf
  if (subleaf == 0) {
    e.eax = 0;  // one thread per core: no SMT bits in the APIC id
    e.ebx = 1;
    e.ecx = set_bits(e.ecx, 8, 15, kLevelSmt);
  } else if (subleaf == 1) {
    e.eax = id_bits(count);
    e.ebx = count;
    e.ecx = set_bits(e.ecx, 8, 15, kLevelCore);
  } else {
    e.ecx = set_bits(e.ecx, 8, 15, kLevelInvalid);
  }
  return e;
}

void update_amd(kvm_cpuid_entry2& e, uint32_t index, uint32_t count) {
  switch (e.function) {
    case kCpuidAmdFeatures:
      e.ecx = count > 1 ? (e.ecx | kAmdCmpLegacy) : (e.ecx & ~kAmdCmpLegacy);
      break;
    case kCpuidAmdSizes:
      e.ecx = set_bits(e.ecx, 0, 7, count - 1);
      e.ecx = set_bits(e.ecx, 12, 15, id_bits(count));
      break;
    case kCpuidAmdCacheTopology:
      update_cache(e, count, false);
      break;
    case kCpuidAmdExtApicId:
      e.eax = index;
      e.ebx = index;  // core id; threads per core - 1 (EBX[15:8]) is 0
      e.ecx = 0;      // node 0, one node per package
      break;
    default:
      break;
  }
}

}  // namespace

std::vector<kvm_cpuid_entry2> normalize_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                              uint32_t vcpu_index, uint32_t vcpu_count,
                                              bool tsc_deadline_timer) {
  const bool amd = is_amd(supported);
  std::vector<kvm_cpuid_entry2> out;
  bool has_topology = false;
  bool has_topology_v2 = false;
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case kCpuidFeatureInfo:
        update_feature_info(e, vcpu_index, vcpu_count, tsc_deadline_timer);
        break;
      case kCpuidCacheParams:
        update_cache(e, vcpu_count, true);
        break;
      case kCpuidPowerMgmt:
        e.eax &= ~(1u << 1);  // turbo boost
        e.ecx &= ~(1u << 3);  // energy-performance bias
        break;
      case kCpuidPerfMon:
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case kCpuidExtTopology:
        has_topology = true;
        continue;  // rebuilt below
      case kCpuidExtTopologyV2:
        has_topology_v2 = true;
        continue;
      default:
        if (amd) update_amd(e, vcpu_index, vcpu_count);
        break;
    }
    out.push_back(e);
  }
  for (uint32_t subleaf = 0; subleaf < 3; ++subleaf) {
    if (has_topology) out.push_back(topology_subleaf(kCpuidExtTopology, subleaf, vcpu_index, vcpu_count));
    if (has_topology_v2) {
      out.push_back(topology_subleaf(kCpuidExtTopologyV2, subleaf, vcpu_index, vcpu_count));
    }
  }
  return out;
}

}  // namespace husk::x86_64
