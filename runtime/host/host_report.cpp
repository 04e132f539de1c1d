#include "runtime/host/host_report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "runtime/kvm/capabilities.h"
#include "runtime/kvm/kvm.h"
#include "runtime/host/syscall_probe.h"

namespace husk::host {

namespace {

std::string detect_kvm_module() {
  for (const char* module : {"kvm_pvm", "kvm_intel", "kvm_amd"}) {
    struct stat st {};
    if (::stat(fmt::format("/sys/module/{}", module).c_str(), &st) == 0) return module;
  }
  return "";
}

std::string no_guest_summary(const HostReport& report, const std::string& why) {
  std::string text = "KVM is present but cannot run Linux guests: " + why + ".";
  if (report.kvm_module == "kvm_pvm") {
    text += "\nThis host's /dev/kvm is kvm_pvm, nested KVM without hardware virtualization;"
            " run husk on a host with VT-x/AMD-V, or use tests/testhost/run.";
  }
  return text;
}

}  // namespace

HostReport check_host(const std::string& kvm_path) {
  HostReport report;
  report.kvm_module = detect_kvm_module();

  auto kvm = kvm::Kvm::open(kvm_path);
  if (!kvm) {
    std::string fix = "load the kvm module for this CPU (modprobe kvm_intel or kvm_amd) and "
                      "enable virtualization in the firmware";
    if (kvm.error().code == EACCES) fix = "add this user to the kvm group or run as root";
    report.checks.push_back({"kvm-device", false, kvm.error().message, fix});
    report.summary = fmt::format("husk cannot run guests here: {}.", kvm.error().message);
    return report;
  }
  report.checks.push_back({"kvm-device", true, kvm_path + " opened read-write", ""});
  report.checks.push_back(
      {"api-version", true, fmt::format("KVM API version {}", kvm->api_version()), ""});

  bool caps_ok = true;
  for (const kvm::Capability& cap : kvm::required_capabilities()) {
    const bool ok = kvm->check_extension(cap.id) > 0;
    caps_ok = caps_ok && ok;
    report.checks.push_back({fmt::format("capability:{}", cap.name), ok, cap.why,
                             ok ? "" : "use a newer host kernel with this KVM capability"});
  }

  auto probe = run_syscall_probe(*kvm);
  Check probe_check{"linux-guest-probe", false, "", ""};
  if (!probe) {
    probe_check.detail = "the probe could not run: " + probe.error().message;
  } else {
    probe_check.ok = probe->reached_cpl0;
    probe_check.detail = probe->detail;
  }
  if (!probe_check.ok) {
    probe_check.fix = "run on a host whose KVM uses hardware virtualization (VT-x/AMD-V), "
                      "e.g. bare metal or a cloud VM with nested virtualization enabled";
  }
  report.checks.push_back(probe_check);

  report.can_run_guests = caps_ok && probe_check.ok;
  if (report.can_run_guests) {
    report.summary = fmt::format("husk can run guests here ({}).",
                                 report.kvm_module.empty() ? "kvm" : report.kvm_module);
  } else if (!caps_ok) {
    report.summary = "husk cannot run guests here: KVM lacks capabilities husk needs.";
  } else {
    report.summary = no_guest_summary(report, probe_check.detail);
  }
  return report;
}

}  // namespace husk::host
