#include "runtime/arch/x86_64/cpuid.h"

#include <cstring>
#include <optional>

#include <catch2/catch.hpp>

namespace husk::x86_64 {
namespace {

kvm_cpuid_entry2 entry(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                       uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

kvm_cpuid_entry2 vendor_leaf(const char (&vendor)[13]) {
  kvm_cpuid_entry2 e = entry(0, 0, 0x1f, 0, 0, 0);
  std::memcpy(&e.ebx, vendor, 4);
  std::memcpy(&e.edx, vendor + 4, 4);
  std::memcpy(&e.ecx, vendor + 8, 4);
  return e;
}

// Shaped like KVM_GET_SUPPORTED_CPUID on a 16-core host: host topology in
// leaf 1 and leaf 4, zeros in leaf 0xb (api.rst says so).
std::vector<kvm_cpuid_entry2> intel_supported() {
  return {
      vendor_leaf("GenuineIntel"),
      entry(0x1, 0, 0x906ea, 0x0c100800, 0x7ffafbff, 0xbfebfbff & ~kCpuid1EdxHtt),
      entry(0x4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0),  // L1d
      entry(0x4, 1, 0x1c004143, 0x01c0003f, 0x3ff, 0),  // L2
      entry(0x4, 2, 0x1c03c163, 0x02c0003f, 0x3fff, 6),  // L3
      entry(0x4, 3, 0, 0, 0, 0),  // no more caches
      entry(0x6, 0, 0x6, 0, 0x9, 0),
      entry(0xa, 0, 0x07300404, 0, 0, 0x603),
      entry(0xb, 0, 0, 0, 0, 0),
      entry(0x40000000, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
      entry(0x40000001, 0, 0x01007afb, 0, 0, 0),
  };
}

std::optional<kvm_cpuid_entry2> find(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                                     uint32_t index = 0) {
  for (const kvm_cpuid_entry2& e : entries) {
    if (e.function == function && e.index == index) return e;
  }
  return std::nullopt;
}

TEST_CASE("normalize_cpuid gives each vCPU its APIC id in leaf 1", "[arch][cpuid]") {
  const auto supported = intel_supported();
  for (uint32_t i = 0; i < 4; ++i) {
    const auto out = normalize_cpuid(supported, i, 4);
    const auto leaf1 = find(out, 0x1);
    REQUIRE(leaf1);
    CHECK(leaf1->ebx >> 24 == i);
    CHECK(((leaf1->ebx >> 16) & 0xff) == 4);
    CHECK(((leaf1->ebx >> 8) & 0xff) == 8);
    CHECK((leaf1->ecx & kCpuid1EcxHypervisor) != 0);
    CHECK((leaf1->edx & kCpuid1EdxHtt) != 0);
    CHECK(leaf1->eax == 0x906ea);
  }
}

TEST_CASE("normalize_cpuid with one vCPU has no HTT", "[arch][cpuid]") {
  const auto leaf1 = find(normalize_cpuid(intel_supported(), 0, 1), 0x1);
  REQUIRE(leaf1);
  CHECK(((leaf1->ebx >> 16) & 0xff) == 1);
  CHECK((leaf1->edx & kCpuid1EdxHtt) == 0);
}

TEST_CASE("normalize_cpuid sets TSC-deadline only when KVM emulates it", "[arch][cpuid]") {
  const auto without = find(normalize_cpuid(intel_supported(), 0, 1), 0x1);
  const auto with = find(normalize_cpuid(intel_supported(), 0, 1, true), 0x1);
  REQUIRE(without);
  REQUIRE(with);
  CHECK((without->ecx & kCpuid1EcxTscDeadline) == 0);
  CHECK((with->ecx & kCpuid1EcxTscDeadline) != 0);
}

TEST_CASE("normalize_cpuid rebuilds leaf 0xb for the vCPU", "[arch][cpuid]") {
  const auto out = normalize_cpuid(intel_supported(), 5, 8);
  const auto smt = find(out, 0xb, 0);
  const auto core = find(out, 0xb, 1);
  const auto end = find(out, 0xb, 2);
  REQUIRE(smt);
  REQUIRE(core);
  REQUIRE(end);
  for (const auto& e : {*smt, *core, *end}) {
    CHECK(e.edx == 5);
    CHECK((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0);
    CHECK((e.ecx & 0xff) == e.index);
  }
  CHECK(smt->ebx == 1);
  CHECK(((smt->ecx >> 8) & 0xff) == 1);  // SMT level
  CHECK(core->ebx == 8);
  CHECK(core->eax == 3);                 // 8 cores: 3 APIC-id bits
  CHECK(((core->ecx >> 8) & 0xff) == 2);  // core level
  CHECK(((end->ecx >> 8) & 0xff) == 0);   // invalid: the end
  CHECK_FALSE(find(out, 0x1f));          // absent from KVM's list, not invented
}

TEST_CASE("normalize_cpuid rewrites leaf 0x1f when KVM lists it", "[arch][cpuid]") {
  auto supported = intel_supported();
  supported.push_back(entry(0x1f, 0, 0, 0, 0, 0));
  const auto core = find(normalize_cpuid(supported, 2, 4), 0x1f, 1);
  REQUIRE(core);
  CHECK(core->edx == 2);
  CHECK(core->ebx == 4);
}

TEST_CASE("normalize_cpuid sets the cache sharing in leaf 4", "[arch][cpuid]") {
  const auto out = normalize_cpuid(intel_supported(), 0, 4);
  const auto l1 = find(out, 0x4, 0);
  const auto l3 = find(out, 0x4, 2);
  const auto none = find(out, 0x4, 3);
  REQUIRE(l1);
  REQUIRE(l3);
  REQUIRE(none);
  CHECK(((l1->eax >> 14) & 0xfff) == 0);
  CHECK(((l3->eax >> 14) & 0xfff) == 3);
  CHECK((l1->eax >> 26) == 3);
  CHECK((l1->eax & 0x3fff) == (0x1c004121u & 0x3fff));  // type and level kept
  CHECK(none->eax == 0);
}

TEST_CASE("normalize_cpuid clears power and PMU leaves, keeps KVM's leaves", "[arch][cpuid]") {
  const auto out = normalize_cpuid(intel_supported(), 0, 2);
  const auto leaf6 = find(out, 0x6);
  const auto leafa = find(out, 0xa);
  const auto kvm = find(out, 0x40000000);
  const auto kvm_features = find(out, 0x40000001);
  REQUIRE(leaf6);
  REQUIRE(leafa);
  REQUIRE(kvm);
  REQUIRE(kvm_features);
  CHECK(leaf6->eax == 0x4);
  CHECK(leaf6->ecx == 0x1);
  CHECK((leafa->eax | leafa->ebx | leafa->ecx | leafa->edx) == 0);
  CHECK(kvm->ebx == 0x4b4d564b);
  CHECK(kvm_features->eax == 0x01007afb);
}

TEST_CASE("normalize_cpuid sets the AMD core count and extended APIC id", "[arch][cpuid]") {
  const std::vector<kvm_cpuid_entry2> supported = {
      vendor_leaf("AuthenticAMD"),
      entry(0x1, 0, 0x830f10, 0x00100800, 0x7ed8320b, 0x178bfbff),
      entry(0x80000001, 0, 0x830f10, 0, 0x75c237ff, 0x2fd3fbff),
      entry(0x80000008, 0, 0x3030, 0, 0x700f, 0),
      entry(0x8000001e, 0, 0, 0, 0, 0),
  };
  const auto out = normalize_cpuid(supported, 3, 6);
  const auto sizes = find(out, 0x80000008);
  const auto ext = find(out, 0x8000001e);
  const auto features = find(out, 0x80000001);
  REQUIRE(sizes);
  REQUIRE(ext);
  REQUIRE(features);
  CHECK((sizes->ecx & 0xff) == 5);
  CHECK(((sizes->ecx >> 12) & 0xf) == 3);
  CHECK(sizes->eax == 0x3030);
  CHECK(ext->eax == 3);
  CHECK((ext->ebx & 0xff) == 3);
  CHECK((features->ecx & 0x2) != 0);  // CmpLegacy
}

TEST_CASE("normalize_cpuid leaves Intel's extended leaves alone", "[arch][cpuid]") {
  auto supported = intel_supported();
  supported.push_back(entry(0x80000008, 0, 0x3027, 0, 0, 0));
  const auto sizes = find(normalize_cpuid(supported, 1, 4), 0x80000008);
  REQUIRE(sizes);
  CHECK(sizes->ecx == 0);
}

}  // namespace
}  // namespace husk::x86_64
