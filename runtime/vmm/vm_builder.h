// build_machine: turns a VmConfig into a Machine ready to run. The whole
// boot order is in this one function, step by step: guest memory, the
// kernel's and the initrd's copy started (on a thread of its own,
// BootImages), KVM checks, the VM and its interrupt controllers, the memory
// registered with KVM, the devices (with their ports, IRQs and irqfds in
// one visible place), the copy joined and the boot structures, then the
// vCPUs.
#pragma once

#include <memory>

#include "runtime/common/result.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/vm_config.h"

namespace husk::vmm {

// With config.restore_from the machine is the snapshot's: its memory
// mapped from the memory file, every vCPU, device and the VM's clock and
// interrupt controllers as saved; the kernel is not loaded again.
// `started` holds the phases before the build (the process's start, its
// arguments parsed); the build stamps its own (BootPhase) into the
// machine's timeline.
[[nodiscard]] Result<std::unique_ptr<Machine>> build_machine(const VmConfig& config,
                                                           const BootTimeline& started = {});

// Puts a snapshot's state into a machine built for its configuration
// (runtime/vmm/machine_snapshot.cpp). Before the machine runs.
[[nodiscard]] Result<void> restore_machine(Machine& m, const snapshot::MachineState& state);

// Gives `device` virtio-mmio slot `slot`: its MMIO window, IRQ, irqfd, one
// ioeventfd per queue, and its `virtio_mmio.device=` entry on `cmdline`.
[[nodiscard]] Result<void> attach_virtio(Machine& m, std::shared_ptr<virtio::VirtioDevice> device,
                                         uint32_t slot, std::string& cmdline);

// The guest-physical regions for `memory_mib` of RAM: below the 32-bit MMIO
// gap, and the rest from 4 GiB up.
[[nodiscard]] std::vector<RegionSpec> ram_regions(uint64_t memory_mib);

}  // namespace husk::vmm
