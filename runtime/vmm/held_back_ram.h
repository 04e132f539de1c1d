// HeldBackRam: the guest RAM that holds an initrd still being copied
// (BootImages, held_back()), as a device on the MMIO bus. KVM has no
// memory slot there yet, so a vCPU that touches those pages exits as for
// MMIO; this device waits for the copy to end and KVM to take the pages,
// then does the access on the memory itself. The guest sees RAM with its
// initrd in it, only later; after that KVM never exits for these pages
// again. A copy that failed (the VM is stopping) or that takes longer
// than the deadline reads as all ones and drops writes, like an absent
// device.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "runtime/devices/bus.h"
#include "runtime/memory/guest_memory.h"
#include "runtime/vmm/boot_images.h"

namespace husk::vmm {

class HeldBackRam final : public devices::BusDevice {
 public:
  // A local copy takes milliseconds; a VM that waits this long has a host
  // with a problem, and stops (BootImages' copy fails it, or the vCPU
  // reads all ones and the guest trips over them).
  static constexpr std::chrono::milliseconds kDeadline{30'000};

  // `images`, whose held_back() range starts at `base`, and `memory` must
  // outlive the device's accesses.
  HeldBackRam(BootImages& images, const GuestMemory& memory, GuestAddress base)
      : images_(images), memory_(memory), base_(base) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  BootImages& images_;
  const GuestMemory& memory_;
  GuestAddress base_;
};

}  // namespace husk::vmm
