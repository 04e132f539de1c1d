// The KVM capabilities husk relies on, checked once before a VM is built so
// that a missing one is reported by name instead of as a later EINVAL.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/kvm/kvm.h"

namespace husk::kvm {

struct Capability {
  int id;
  const char* name;  // as in <linux/kvm.h>
  const char* why;   // what husk uses it for
};

// Every capability a husk VM needs.
[[nodiscard]] std::span<const Capability> required_capabilities();

// The required capabilities this KVM lacks (empty when all are there).
[[nodiscard]] std::vector<Capability> missing_capabilities(const Kvm& kvm);

// An error naming every missing capability, or success.
[[nodiscard]] Result<void> check_capabilities(const Kvm& kvm);

}  // namespace husk::kvm
