#include "runtime/vmm/vm_config.h"

#include <sys/sysinfo.h>

#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "runtime/arch/x86_64/layout.h"

namespace husk::vmm {

uint64_t host_memory_limit_mib() {
  struct sysinfo info {};
  if (::sysinfo(&info) != 0) return 0;
  return (static_cast<uint64_t>(info.totalram) * info.mem_unit) >> 20;
}

std::pair<std::string, std::string> split_init_args(const std::string& cmdline) {
  // Padding with spaces finds "--" as a whole word at either end too; a
  // match at p in the padded string puts "--" at p in the original.
  const size_t p = (" " + cmdline + " ").find(" -- ");
  if (p == std::string::npos) return {cmdline, ""};
  return {cmdline.substr(0, p == 0 ? 0 : p - 1), cmdline.substr(p)};
}

Result<VsockConfig> parse_vsock_spec(const std::string& spec) {
  VsockConfig vsock;
  vsock.uds_path = spec;
  const size_t comma = spec.rfind(",cid=");
  if (comma != std::string::npos) {
    vsock.uds_path = spec.substr(0, comma);
    const std::string cid = spec.substr(comma + 5);
    char* end = nullptr;
    errno = 0;
    vsock.guest_cid = std::strtoull(cid.c_str(), &end, 10);
    if (cid.empty() || *end != '\0' || errno != 0 || vsock.guest_cid < 3 || vsock.guest_cid > 0xffffffffull) {
      return fail(fmt::format("vsock '{}': cid must be a number from 3 to 4294967295", spec));
    }
  }
  if (vsock.uds_path.empty()) return fail(fmt::format("vsock '{}' has no socket path", spec));
  return vsock;
}

Result<DiskConfig> parse_disk_spec(const std::string& spec) {
  DiskConfig disk;
  const size_t comma = spec.rfind(',');
  disk.path = spec;
  if (comma != std::string::npos) {
    const std::string mode = spec.substr(comma + 1);
    if (mode == "ro") {
      disk.mode = DiskMode::kReadOnly;
    } else if (mode == "cow") {
      disk.mode = DiskMode::kCopyOnWrite;
    } else if (mode == "rw") {
      disk.mode = DiskMode::kPersistent;
    } else {
      return fail(fmt::format("disk '{}': mode '{}' is not ro, cow or rw", spec, mode));
    }
    disk.path = spec.substr(0, comma);
  }
  if (disk.path.empty()) return fail(fmt::format("disk '{}' has no path", spec));
  return disk;
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
  if (config.disks.size() + (config.rng ? 1 : 0) + (config.vsock ? 1 : 0) > x86_64::kMaxVirtioDevices) {
    return fail(fmt::format("at most {} virtio devices fit, {} requested", x86_64::kMaxVirtioDevices,
                            config.disks.size() + (config.rng ? 1 : 0) + (config.vsock ? 1 : 0)));
  }
  return {};
}

}  // namespace husk::vmm
