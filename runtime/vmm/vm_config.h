// VmConfig: everything needed to build a VM, as plain data. The CLI (or a
// job loader) fills it; the builder validates it and turns it into a Machine.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <string>

#include "runtime/common/result.h"

namespace husk::vmm {

inline constexpr const char* kDefaultCmdline = "console=ttyS0 reboot=k panic=-1";

struct VmConfig {
  std::string kernel_path;
  std::string initrd_path;  // empty: no initrd
  std::string cmdline = kDefaultCmdline;
  uint32_t vcpus = 1;
  uint64_t memory_mib = 128;
  // The guest's console: a file (created or truncated) or, when empty, the
  // already open console_fd (stdout by default, not owned).
  std::string console_path;
  int console_fd = STDOUT_FILENO;
  // Host input for the guest console; -1 for none. Not owned.
  int console_input_fd = -1;
  std::string kvm_path = "/dev/kvm";
};

// Checks the shape of the VM (vCPU count, memory size against the host) and
// returns an error that states the allowed range.
[[nodiscard]] Result<void> validate(const VmConfig& config);

// The most guest memory this host can give, in MiB (its physical memory).
[[nodiscard]] uint64_t host_memory_limit_mib();

}  // namespace husk::vmm
