// VirtioDevice: what a device (block, rng, vsock, ...) implements to sit
// behind the virtio-mmio transport. The transport owns the shared parts
// (registers, feature negotiation, status, queues, interrupts) and calls in
// here; every call into a device happens with the transport's lock held, so
// a device's own code never runs on two threads at once.
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

// What an activated device gets from its transport.
struct DeviceContext {
  const GuestMemory* memory = nullptr;
  std::vector<Queue>* queues = nullptr;
  uint64_t acked_features = 0;
  // Raises the used-buffer interrupt for `queue` if the driver wants one.
  std::function<void(uint16_t queue)> signal_used;
  // The guest broke the protocol: the device stops and asks to be reset.
  std::function<void(const std::string& why)> fail;
  // Registers a host fd of the device's own (a socket, a timer) with the
  // device event loop. The handler runs with the transport lock held and
  // only while this activation lasts; remove_fd undoes it.
  std::function<Result<void>(int fd, uint32_t events, std::function<void(uint32_t)> handler)> add_fd;
  std::function<void(int fd)> remove_fd;
  std::function<Result<void>(int fd, uint32_t events)> modify_fd;
};

// The request loop every simple device shares: pops each available chain of
// `queue`, lets `handle` serve it (returning the bytes it wrote into the
// chain), puts it on the used ring, and raises the interrupt once at the
// end. A chain the queue refuses fails the device (needs reset).
void serve_queue(DeviceContext& ctx, uint16_t queue,
                 const std::function<uint32_t(const DescriptorChain&)>& handle);

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
  // The driver notified `queue`.
  virtual void process_queue(uint16_t queue) = 0;
  // Device reset: drop all state from the activation (close host fds).
  virtual void reset() = 0;
};

}  // namespace husk::virtio
