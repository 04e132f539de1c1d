// VmConfig: everything needed to build a VM, as plain data. The CLI (or a
// job loader) fills it; the builder validates it and turns it into a Machine.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/devices/virtio/block/disk_image.h"
#include "runtime/devices/virtio/net/net.h"
#include "runtime/kvm/cpuid_cache.h"

namespace husk::vmm {

inline constexpr const char* kDefaultCmdline = "console=ttyS0 reboot=k panic=-1";

// How a disk's file is used: read-only, copy-on-write (the file never
// changes; writes vanish with the VM), or persistent (writes go to the file).
using DiskMode = virtio::DiskMode;

struct DiskConfig {
  std::string path;
  DiskMode mode = DiskMode::kCopyOnWrite;
};

// Parses "PATH[,ro|,cow|,rw]" (the default mode is cow).
[[nodiscard]] Result<DiskConfig> parse_disk_spec(const std::string& spec);

// A virtio-vsock device whose host side is the Unix socket `uds_path`
// (Firecracker's scheme: CONNECT <port> in, <uds_path>_<port> out).
struct VsockConfig {
  std::string uds_path;
  uint64_t guest_cid = 3;
};

// Parses "PATH[,cid=N]".
[[nodiscard]] Result<VsockConfig> parse_vsock_spec(const std::string& spec);

// A virtio-net device on an already open backend (runtime/net/vm_network.h
// starts the backend and fills this): a connected passt socket (the
// stream protocol) or a tap's fd. The fd is not owned; the builder takes a
// duplicate.
struct NetConfig {
  enum class Link { kStream, kTap };
  int link_fd = -1;
  Link link = Link::kStream;
  virtio::NetDeviceSpec device{};
};

// A snapshot's two files as open descriptors (not owned): its state file
// and its guest memory file (runtime/snapshot/).
struct SnapshotFds {
  int state_fd = -1;
  int memory_fd = -1;
};

struct VmConfig {
  std::string kernel_path;
  std::string initrd_path;  // empty: no initrd
  std::string cmdline = kDefaultCmdline;
  uint32_t vcpus = 1;
  uint64_t memory_mib = 128;
  // Guest RAM advised for transparent huge pages (GuestMemory::Backing::
  // kHugeAnonymous) unless the VM may be snapshotted (save_to). Off: 4 KiB
  // pages in a memfd, the smallest host footprint for a guest that touches
  // little of its memory.
  bool huge_pages = true;
  // The guest's console: a file (created or truncated) or, when empty, the
  // already open console_fd (stdout by default, not owned).
  std::string console_path;
  int console_fd = STDOUT_FILENO;
  // Host input for the guest console; -1 for none. Not owned.
  int console_input_fd = -1;
  std::string kvm_path = "/dev/kvm";
  // Where KVM_GET_SUPPORTED_CPUID's answer is kept between VMs (runtime/kvm/
  // cpuid_cache.h); empty: asked of KVM every time.
  std::string cpuid_cache_path = kvm::default_cpuid_cache_path();
  // That answer, when the caller already has it (a VMM process's parent
  // asks before the jail hides the cache): then neither is asked.
  std::optional<std::vector<kvm_cpuid_entry2>> host_cpuid;
  // virtio devices, in the order they get MMIO slots and IRQs.
  std::vector<DiskConfig> disks;
  bool rng = false;
  std::optional<VsockConfig> vsock;
  std::optional<NetConfig> net;
  // Built by restoring this snapshot instead of booting the kernel: the
  // rest of the config must be the one it was made with (husk checks the
  // description; the builder checks memory, vCPUs and devices).
  std::optional<SnapshotFds> restore_from;
  // Where a snapshot of this VM goes when one is asked for (VmmProcess::
  // snapshot), and the configuration description its header records.
  std::optional<SnapshotFds> save_to;
  std::string snapshot_description;
};

// Checks the shape of the VM (vCPU count, memory size against the host) and
// returns an error that states the allowed range.
[[nodiscard]] Result<void> validate(const VmConfig& config);

// Splits a kernel command line into the kernel's part and init's part
// (" -- " and what follows it, which the kernel hands to init untouched).
[[nodiscard]] std::pair<std::string, std::string> split_init_args(const std::string& cmdline);

// The most guest memory this host can give, in MiB (its physical memory).
[[nodiscard]] uint64_t host_memory_limit_mib();

}  // namespace husk::vmm
