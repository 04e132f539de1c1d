// A running Machine's snapshot (Machine::snapshot) and a built Machine's
// restore from one (restore_machine): MachineState filled from the paused
// machine, and put back into a new one before it first runs.
#include <linux/virtio_ids.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include "runtime/kvm/vcpu_state.h"
#include "runtime/snapshot/machine_state.h"
#include "runtime/snapshot/snapshot_codec.h"
#include "runtime/snapshot/snapshot_file.h"
#include "runtime/vmm/machine.h"
#include "runtime/vmm/vcpu_loop.h"
#include "runtime/vmm/vm_builder.h"

namespace husk::vmm {

namespace {

// How long the threads have to park. They park between two exits or two
// events, so only a thread stuck in a host call could miss it.
constexpr auto kParkTimeout = std::chrono::seconds(5);

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Result<snapshot::VirtioDeviceState> device_state(const virtio::MmioTransport& transport) {
  snapshot::VirtioDeviceState d;
  virtio::VirtioDevice& device = transport.device();
  d.device_id = device.device_id();
  d.transport = transport.state();
  switch (d.device_id) {
    case VIRTIO_ID_BLOCK: {
      auto& block = static_cast<virtio::Block&>(device);
      // A restored VM's disk starts as its file: writes the guest made
      // before the snapshot would be missing under its page cache.
      if (block.disk().overlay_written()) {
        return fail(fmt::format("the guest wrote to disk {} before the snapshot (a copy-on-write disk's writes are "
                                "not saved); mount it read-only until the snapshot is made",
                                block.disk().path()));
      }
      d.device = block.state();
      break;
    }
    case VIRTIO_ID_RNG: d.device = static_cast<virtio::Rng&>(device).state(); break;
    case VIRTIO_ID_VSOCK: d.device = static_cast<virtio::Vsock&>(device).state(); break;
    default: return fail(fmt::format("virtio device {} cannot be saved", d.device_id));
  }
  return d;
}

// The device's own state back; the transport's comes after.
Result<void> restore_device(virtio::VirtioDevice& device, const snapshot::VirtioDeviceState& saved, size_t slot) {
  if (saved.device_id != device.device_id()) {
    return fail(fmt::format("virtio slot {} is device {} in the snapshot, {} here", slot, saved.device_id,
                            device.device_id()));
  }
  switch (saved.device_id) {
    case VIRTIO_ID_BLOCK: {
      const auto& was = std::get<virtio::Block::State>(saved.device);
      const auto now = static_cast<virtio::Block&>(device).state();
      if (was.capacity_bytes != now.capacity_bytes || was.read_only != now.read_only) {
        return fail(fmt::format("disk {} is not the one the snapshot was made with ({} bytes{} then, {} bytes{} now)",
                                slot, was.capacity_bytes, was.read_only ? " read-only" : "", now.capacity_bytes,
                                now.read_only ? " read-only" : ""));
      }
      return {};
    }
    case VIRTIO_ID_VSOCK:
      return static_cast<virtio::Vsock&>(device).restore_state(std::get<virtio::Vsock::State>(saved.device));
    default: return {};
  }
}

}  // namespace

Result<std::string> Machine::snapshot() {
  if (!save_to_) return fail("this VM was started without snapshot files");
  const int64_t start = monotonic_ns();
  // 1. Park every thread: vCPUs out of KVM_RUN, device threads between events.
  pause_gate_.close();
  for (size_t i = 0; i < vcpus_.size(); ++i) kick_vcpu(vcpus_[i], vcpu_threads_[i]);
  const uint64_t one = 1;
  if (::write(pause_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
    pause_gate_.open();
    return fail_errno("wake the device threads for the pause");
  }
  const size_t threads = vcpus_.size() + io_loops_.size();
  const bool parked = pause_gate_.wait_parked(threads, kParkTimeout, *stop_);
  const int64_t paused = monotonic_ns();
  auto saved = [&]() -> Result<std::string> {
    if (!parked) return fail("the VM's threads did not pause within 5 s");
    // 2. The machine's state, one consistent moment of it.
    snapshot::MachineState state;
    state.memory_bytes = memory_.total_size();
    HUSK_TRY_ASSIGN(state.vm, kvm::save_vm_state(vm_));
    // Each vCPU's thread saved its own as it parked.
    for (size_t i = 0; i < paused_vcpus_.size(); ++i) {
      if (!paused_vcpus_[i].state) return fail(fmt::format("vCPU {}: {}", i, paused_vcpus_[i].error));
      state.vcpus.push_back(std::move(*paused_vcpus_[i].state));
      paused_vcpus_[i].state.reset();
    }
    state.serial = serial_->state();
    for (const auto& transport : virtio_) {
      HUSK_TRY_ASSIGN(snapshot::VirtioDeviceState d, device_state(*transport));
      state.virtio.push_back(std::move(d));
    }
    // 3. The files.
    HUSK_TRY_ASSIGN(std::vector<uint8_t> bytes, snapshot::encode_state(state));
    snapshot::StateHeaderInfo info;
    info.build_id = snapshot::build_id();
    info.config = snapshot_description_;
    info.memory_bytes = state.memory_bytes;
    HUSK_TRY(snapshot::write_state_file(save_to_->state_fd, info, bytes));
    HUSK_TRY_ASSIGN(const uint64_t memory_bytes, memory_.save(save_to_->memory_fd));
    if (::fsync(save_to_->state_fd) < 0 || ::fsync(save_to_->memory_fd) < 0) {
      return fail_errno("sync the snapshot files");
    }
    const int64_t end = monotonic_ns();
    return fmt::format("state {} KiB, memory {} MiB of {} MiB; paused in {:.1f} ms, saved in {:.1f} ms",
                       (bytes.size() + 1023) / 1024, memory_bytes >> 20, state.memory_bytes >> 20,
                       static_cast<double>(paused - start) / 1e6, static_cast<double>(end - paused) / 1e6);
  }();
  // 4. Run on.
  uint64_t count = 0;
  [[maybe_unused]] const ssize_t n = ::read(pause_fd_.get(), &count, sizeof(count));
  pause_gate_.open();
  return saved;
}

Result<void> restore_machine(Machine& m, const snapshot::MachineState& state) {
  if (state.memory_bytes != m.memory_.total_size()) {
    return fail(fmt::format("the snapshot's VM has {} MiB of memory, this one {} MiB", state.memory_bytes >> 20,
                            m.memory_.total_size() >> 20));
  }
  if (state.vcpus.size() != m.vcpus_.size()) {
    return fail(fmt::format("the snapshot's VM has {} vCPUs, this one {}", state.vcpus.size(), m.vcpus_.size()));
  }
  if (state.virtio.size() != m.virtio_.size()) {
    return fail(fmt::format("the snapshot's VM has {} virtio devices, this one {}", state.virtio.size(),
                            m.virtio_.size()));
  }
  HUSK_TRY(kvm::restore_vm_state(m.vm_, state.vm));
  for (size_t i = 0; i < m.vcpus_.size(); ++i) HUSK_TRY(kvm::restore_vcpu_state(m.vcpus_[i], state.vcpus[i]));
  m.serial_->restore(state.serial);
  for (size_t i = 0; i < m.virtio_.size(); ++i) {
    HUSK_TRY(restore_device(m.virtio_[i]->device(), state.virtio[i], i));
    HUSK_TRY(m.virtio_[i]->restore(state.virtio[i].transport));
  }
  return {};
}

}  // namespace husk::vmm
