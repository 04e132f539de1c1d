// build_machine: turns a VmConfig into a Machine ready to run. The whole
// boot order is in this one function, step by step: KVM checks, the VM and
// its interrupt controllers, guest memory, the kernel and initrd, the boot
// structures, the devices (with their ports, IRQs and irqfds in one visible
// place), then the vCPUs.
#pragma once

#include <memory>

#include "runtime/common/result.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/vm_config.h"

namespace husk::vmm {

[[nodiscard]] Result<std::unique_ptr<Machine>> build_machine(const VmConfig& config);

// The guest-physical regions for `memory_mib` of RAM: below the 32-bit MMIO
// gap, and the rest from 4 GiB up.
[[nodiscard]] std::vector<RegionSpec> ram_regions(uint64_t memory_mib);

}  // namespace husk::vmm
