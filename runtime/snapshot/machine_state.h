// MachineState: everything of a paused VM except its memory, as plain data:
// the VM's in-kernel devices and clock, every vCPU, the serial port and
// each virtio device (its transport's registers and queues, and the
// device's own State struct). snapshot_codec.h turns it into bytes and
// back; runtime/vmm/machine_snapshot.cpp fills it from a Machine and builds
// a Machine from it.
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "runtime/devices/legacy/serial.h"
#include "runtime/devices/virtio/block/block.h"
#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/devices/virtio/rng/rng.h"
#include "runtime/devices/virtio/vsock/vsock.h"
#include "runtime/kvm/vcpu_state.h"

namespace husk::snapshot {

// One virtio device: its transport and its own state, in slot order.
struct VirtioDeviceState {
  uint32_t device_id = 0;  // VIRTIO_ID_*; says which `device` alternative
  virtio::TransportState transport;
  std::variant<virtio::Block::State, virtio::Rng::State, virtio::Vsock::State> device;
};

struct MachineState {
  uint64_t memory_bytes = 0;  // the guest RAM size the memory file holds
  kvm::VmState vm;
  std::vector<kvm::VcpuState> vcpus;  // vCPU 0 first
  devices::Serial::State serial;
  std::vector<VirtioDeviceState> virtio;
};

}  // namespace husk::snapshot
