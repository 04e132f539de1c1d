// HostReport: what `husk doctor` finds out about this host: /dev/kvm and its
// access rights, the API version, each capability husk uses, which KVM module
// serves it, and whether it can really run a Linux guest (the SYSCALL probe).
#pragma once

#include <string>
#include <vector>

namespace husk::host {

struct Check {
  std::string name;    // "kvm-device", "api-version", "capability:KVM_CAP_IRQFD", ...
  bool ok = false;
  std::string detail;  // what was found
  std::string fix;     // what to do about it when !ok
};

struct HostReport {
  std::vector<Check> checks;
  std::string kvm_module;  // kvm_intel, kvm_amd, kvm_pvm, or "" when unknown
  bool can_run_guests = false;
  std::string summary;  // one or two lines for people
};

[[nodiscard]] HostReport check_host(const std::string& kvm_path = "/dev/kvm");

}  // namespace husk::host
