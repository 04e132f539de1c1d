#include "runtime/vmm/vm_config.h"

#include <sys/sysinfo.h>

#include <fmt/format.h>

#include "runtime/arch/x86_64/layout.h"

namespace husk::vmm {

uint64_t host_memory_limit_mib() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return 0;
  return (static_cast<uint64_t>(info.totalram) * info.mem_unit) >> 20;
}

Result<void> validate(const VmConfig& config) {
  using namespace husk::x86_64;
  if (config.vcpus < 1 || config.vcpus > kMaxVcpus) {
    return fail(fmt::format("the vCPU count must be between 1 and {}, got {}", kMaxVcpus,
                            config.vcpus));
  }
  const uint64_t min_mib = kMinMemory >> 20;
  const uint64_t max_mib = host_memory_limit_mib();
  if (config.memory_mib < min_mib || (max_mib != 0 && config.memory_mib > max_mib)) {
    return fail(fmt::format("guest memory must be between {} MiB and {} MiB (this host's "
                            "memory), got {} MiB",
                            min_mib, max_mib, config.memory_mib));
  }
  if (config.kernel_path.empty()) return fail("no kernel given");
  if (config.cmdline.size() >= kCmdlineMax) {
    return fail(fmt::format("the kernel command line is {} bytes; at most {} fit",
                            config.cmdline.size(), kCmdlineMax - 1));
  }
  return {};
}

}  // namespace husk::vmm
