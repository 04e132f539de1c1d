// MmioTransport: the virtio-mmio transport, version 2 (virtio 1.2, section
// 4.2 "Virtio Over MMIO", modern devices only). One 4 KiB window on the MMIO
// bus per device, register names from <linux/virtio_mmio.h>.
//
// State: feature selectors and the driver's features, the device status and
// its allowed transitions (3.1.1: ACKNOWLEDGE, DRIVER, FEATURES_OK,
// DRIVER_OK, in that order; FAILED at any time; 0 resets), the queues and
// the interrupt status. FEATURES_OK is refused unless the driver accepted
// VIRTIO_F_VERSION_1 and only offered features. Queue registers are
// writable only between FEATURES_OK and DRIVER_OK. At DRIVER_OK every ready
// queue is validated and the device activated; a bad queue or a device
// failure sets DEVICE_NEEDS_RESET and raises a configuration interrupt.
// Queue notifications normally arrive through an ioeventfd on the event
// loop (notify()); a QueueNotify write that reaches the bus works too.
// Ignored: shared memory regions (SHMSel and friends read as absent), any
// register access that is not 32 bits wide below the config space.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "runtime/common/event_loop.h"
#include "runtime/devices/bus.h"
#include "runtime/devices/interrupt.h"
#include "runtime/devices/virtio/virtio_device.h"

namespace husk::virtio {

class MmioTransport final : public devices::BusDevice {
 public:
  static constexpr uint64_t kWindowSize = 0x1000;

  // `loop` may be null for unit tests of devices that need no host fds.
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                std::shared_ptr<devices::InterruptLine> irq, EventLoop* loop);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // A queue notification (from the queue's ioeventfd).
  void notify(uint16_t queue);

  [[nodiscard]] uint32_t status() const;
  [[nodiscard]] bool activated() const;
  [[nodiscard]] size_t queue_count() const { return queues_.size(); }

 private:
  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_register(uint64_t offset, uint32_t value);
  bool features_acceptable() const;
  void activate();
  void reset();
  void device_failed(const std::string& why);
  void signal_used(uint16_t queue);
  void raise(uint32_t interrupt_bits);
  Queue* selected_queue();

  std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& memory_;
  std::shared_ptr<devices::InterruptLine> irq_;
  EventLoop* loop_;

  std::recursive_mutex mutex_;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t status_ = 0;
  uint32_t config_generation_ = 0;
  bool activated_ = false;
  uint64_t activation_ = 0;  // bumps on every reset, so stale fd events are dropped
  std::vector<Queue> queues_;
  std::set<int> device_fds_;
  std::atomic<uint32_t> interrupt_status_{0};
};

}  // namespace husk::virtio
