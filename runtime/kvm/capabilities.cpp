#include "runtime/kvm/capabilities.h"

#include <array>

namespace husk::kvm {

namespace {
constexpr std::array kRequired = {
    Capability{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", "in-kernel interrupt controllers"},
    Capability{KVM_CAP_HLT, "KVM_CAP_HLT", "idle vCPUs halt in the kernel"},
    Capability{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", "guest memory from user space"},
    Capability{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR", "the TSS KVM needs on Intel"},
    Capability{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID", "KVM_GET_SUPPORTED_CPUID"},
    Capability{KVM_CAP_PIT2, "KVM_CAP_PIT2", "the in-kernel PIT timer"},
    Capability{KVM_CAP_IRQFD, "KVM_CAP_IRQFD", "device interrupts without a vCPU exit"},
    Capability{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD", "queue notifications without a vCPU exit"},
    Capability{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs without a race"},
};
}  // namespace

std::span<const Capability> required_capabilities() { return kRequired; }

std::vector<Capability> missing_capabilities(const Kvm& kvm) {
  std::vector<Capability> missing;
  for (const Capability& cap : kRequired) {
    if (kvm.check_extension(cap.id) <= 0) missing.push_back(cap);
  }
  return missing;
}

Result<void> check_capabilities(const Kvm& kvm) {
  const std::vector<Capability> missing = missing_capabilities(kvm);
  if (missing.empty()) return {};
  std::string names;
  for (const Capability& cap : missing) {
    if (!names.empty()) names += ", ";
    names += cap.name;
  }
  return fail("this KVM lacks " + names + " (see `husk doctor`)");
}

}  // namespace husk::kvm
