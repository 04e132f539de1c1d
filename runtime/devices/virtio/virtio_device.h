// VirtioDevice: what a device (block, rng, vsock, ...) implements to sit
// behind the virtio-mmio transport: the virtio contract, version 2.
//
// The transport owns the shared parts (registers, feature negotiation,
// status, queues, interrupts) and the device's lifecycle (DeviceState). It
// calls into a device only from one thread at a time, under its device
// lock, and never with its register lock held, so a vCPU reading a register
// does not wait for a device's disk or socket I/O.
// The rules a device keeps:
//   - It reports a broken guest as an error value, from process_queue, an
//     fd handler or activate. The transport then marks the device failed
//     (DEVICE_NEEDS_RESET, a configuration interrupt) and calls reset() after
//     the device's call has returned; a device never resets itself.
//   - It does bounded work per call: at most kQueueBudget chains per
//     process_queue (Served::kMore asks to be called again after the event
//     loop has served everything else), a bounded amount per fd event.
//   - A chain it popped but cannot use yet goes back with Queue::undo_pop.
//   - Its state is a plain struct (Block::State, ...): what a snapshot saves.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/devices/virtio/queue.h"
#include "runtime/memory/guest_memory.h"

namespace husk::virtio {

// Features every husk device offers: modern virtio, indirect descriptors
// and event-index interrupt suppression (feature bits from
// <linux/virtio_config.h> and <linux/virtio_ring.h>).
inline constexpr uint64_t kFeatureVersion1 = uint64_t{1} << 32;  // VIRTIO_F_VERSION_1
inline constexpr uint64_t kFeatureIndirectDesc = uint64_t{1} << 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr uint64_t kFeatureEventIdx = uint64_t{1} << 29;  // VIRTIO_RING_F_EVENT_IDX
inline constexpr uint64_t kCommonFeatures = kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx;

// Copies the part of a device's config struct that [offset, offset+len)
// covers; bytes past its end read as zero.
void read_config_bytes(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> out);

// Where a device is in its life; kept by the transport.
enum class DeviceState : uint8_t {
  kInactive,  // before DRIVER_OK, or after a reset
  kActive,    // activated: serves its queues and fds
  kFailed,    // broken by the guest: DEVICE_NEEDS_RESET until the driver resets
};

// What one process_queue call left behind.
enum class Served : uint8_t {
  kDone,  // the queue is empty (or the device waits for something else)
  kMore,  // the budget ran out with chains left: call again later
};

// Chains a device serves per process_queue call, so a guest that keeps a
// queue full cannot hold the device thread: after kQueueBudget chains the
// event loop serves its other fds before the queue's next turn.
inline constexpr uint32_t kQueueBudget = 64;

// A device's own host fd (a socket, a timer) became ready. An error fails
// the device.
using FdHandler = std::function<Result<void>(uint32_t events)>;

// What an activated device gets from its transport.
struct DeviceContext {
  const GuestMemory* memory = nullptr;
  std::vector<Queue>* queues = nullptr;
  uint64_t acked_features = 0;
  // Raises the used-buffer interrupt for `queue` if the driver wants one.
  std::function<Result<void>(uint16_t queue)> signal_used;
  // Registers a host fd of the device's own with the device event loop. The
  // handler runs under the device lock and only while this activation
  // lasts; remove_fd undoes it (the transport also removes every fd still
  // registered when the device resets or fails).
  std::function<Result<void>(int fd, uint32_t events, FdHandler handler)> add_fd;
  std::function<void(int fd)> remove_fd;
  std::function<Result<void>(int fd, uint32_t events)> modify_fd;
  // Has process_queue(queue) called again soon from the event loop, after
  // its other ready fds: for a device whose fd handler served a queue up
  // to its budget (the return value of process_queue does this otherwise).
  std::function<void(uint16_t queue)> schedule;
};

// The request loop every simple device shares: pops up to kQueueBudget
// available chains of `queue`, lets `handle` serve each (returning the bytes
// it wrote into the chain), puts them on the used ring, and raises the
// interrupt once at the end. A chain the queue refuses, or an error from
// `handle`, ends the turn with that error.
[[nodiscard]] Result<Served> serve_queue(DeviceContext& ctx, uint16_t queue,
                                         const std::function<Result<uint32_t>(const DescriptorChain&)>& handle);

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  // VIRTIO_ID_* from <linux/virtio_ids.h>.
  [[nodiscard]] virtual uint32_t device_id() const = 0;
  // Offered features, VIRTIO_F_VERSION_1 included.
  [[nodiscard]] virtual uint64_t features() const = 0;
  [[nodiscard]] virtual std::vector<uint16_t> queue_max_sizes() const = 0;

  // Device configuration space (offset from 0x100 of the MMIO window).
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) const = 0;
  virtual void write_config(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}

  // Called at DRIVER_OK with the validated queues.
  [[nodiscard]] virtual Result<void> activate(DeviceContext context) = 0;
  // The driver notified `queue` (or the device's last call said kMore).
  [[nodiscard]] virtual Result<Served> process_queue(uint16_t queue) = 0;
  // Back to the state before activate: drop everything from the activation
  // (close host fds). Called by the transport only, never from inside one
  // of the device's own calls.
  virtual void reset() = 0;
  // A restored VM's device was just activated again with its saved queues
  // (MmioTransport::restore). A device whose host side did not survive the
  // snapshot tells its driver here (vsock: a transport reset).
  [[nodiscard]] virtual Result<void> restored() { return {}; }
};

}  // namespace husk::virtio
