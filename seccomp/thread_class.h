// ThreadClass: every thread husk starts belongs to one class, and each class
// has its own seccomp allow-list (allow_list.h). Threads are started through
// husk::spawn_thread (runtime/common/thread.h), which names the class and
// installs the class's filter inside the new thread before it runs anything
// else (Cloud Hypervisor's `Thread` enum, Firecracker's vmm/api/vcpu lists).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace husk::seccomp {

enum class ThreadClass : uint8_t {
  kMain,      // husk's main thread: CLI, job layer, agent client, output files
  kVmm,       // the VMM's control thread: Machine::run (stop requests, signals, console flush)
  kVcpu,      // KVM_RUN and the device bus (register reads and writes of every device)
  kBlock,     // virtio-blk: its queue and the disk image's reads, writes and flushes
  kRng,       // virtio-rng: its queue and getrandom
  kVsock,     // virtio-vsock: its queues and the host side (Unix sockets: accept, connect)
  kNet,       // virtio-net: its queues, the egress filter and the backend's open fd (passt, tap)
  kConsole,   // the serial console's input (the host terminal or a pipe)
  kWatchdog,  // a job's host-side deadline
  kLoader,    // copies the guest's kernel and initrd into its memory, then gives KVM the initrd's memory slot
};

inline constexpr std::array<ThreadClass, 10> kAllThreadClasses{
    ThreadClass::kMain,  ThreadClass::kVmm, ThreadClass::kVcpu,    ThreadClass::kBlock,    ThreadClass::kRng,
    ThreadClass::kVsock, ThreadClass::kNet, ThreadClass::kConsole, ThreadClass::kWatchdog, ThreadClass::kLoader};

// "main", "vmm", "vcpu", "blk", "rng", "vsock", "net", "console", "watchdog",
// "loader".
[[nodiscard]] constexpr std::string_view class_name(ThreadClass c) {
  switch (c) {
    case ThreadClass::kMain: return "main";
    case ThreadClass::kVmm: return "vmm";
    case ThreadClass::kVcpu: return "vcpu";
    case ThreadClass::kBlock: return "blk";
    case ThreadClass::kRng: return "rng";
    case ThreadClass::kVsock: return "vsock";
    case ThreadClass::kNet: return "net";
    case ThreadClass::kConsole: return "console";
    case ThreadClass::kWatchdog: return "watchdog";
    case ThreadClass::kLoader: return "loader";
  }
  return "?";
}

[[nodiscard]] constexpr std::optional<ThreadClass> parse_class(std::string_view name) {
  for (ThreadClass c : kAllThreadClasses) {
    if (class_name(c) == name) return c;
  }
  return std::nullopt;
}

}  // namespace husk::seccomp
