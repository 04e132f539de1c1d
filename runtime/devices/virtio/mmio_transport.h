// MmioTransport: the virtio-mmio transport, version 2 (virtio 1.2, section
// 4.2 "Virtio Over MMIO", modern devices only). One 4 KiB window on the MMIO
// bus per device, register names from <linux/virtio_mmio.h>.
//
// State (TransportState, plain data): feature selectors and the driver's
// features, the device status and its allowed transitions (3.1.1:
// ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, in that order; FAILED at any
// time; 0 resets), the queues, the interrupt status and the device's
// lifecycle (DeviceState). FEATURES_OK is refused unless the driver accepted
// VIRTIO_F_VERSION_1 and only offered features. Queue registers are
// writable only between FEATURES_OK and DRIVER_OK. At DRIVER_OK every ready
// queue is validated and the device activated; a bad queue or a device
// error marks the device failed: DEVICE_NEEDS_RESET and a configuration
// interrupt, and the device is reset (outside its own call).
// Locks: the device lock serializes everything the device does (queues,
// fds, activation, reset); the register lock guards the register file. A
// status write takes both (device first); a register read or a queue
// register write takes only the register lock, so vCPUs never wait for a
// device's I/O.
// Queue notifications normally arrive through an ioeventfd on the event
// loop (notify()); a QueueNotify write that reaches the bus works too. A
// device that used its budget (Served::kMore) is called again from the
// transport's own eventfd on the loop, after the loop's other ready fds.
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
#include "runtime/common/unique_fd.h"
#include "runtime/devices/bus.h"
#include "runtime/devices/interrupt.h"
#include "runtime/devices/virtio/virtio_device.h"

namespace husk::virtio {

// The transport's registers and the device's lifecycle as plain data.
struct TransportState {
  DeviceState device = DeviceState::kInactive;
  uint32_t device_features_sel = 0;
  uint32_t driver_features_sel = 0;
  uint64_t driver_features = 0;
  uint32_t queue_sel = 0;
  uint32_t status = 0;
  uint32_t config_generation = 0;
  uint32_t interrupt_status = 0;
  std::vector<QueueState> queues;
};

class MmioTransport final : public devices::BusDevice {
 public:
  static constexpr uint64_t kWindowSize = 0x1000;

  // `loop` may be null for unit tests of devices that need no host fds;
  // then a device that says kMore is called again at once.
  MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                std::shared_ptr<devices::InterruptLine> irq, EventLoop* loop);
  ~MmioTransport() override;
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // A queue notification (from the queue's ioeventfd).
  void notify(uint16_t queue);

  // Takes the transport off its event loop (the device's fds, the kick) and
  // resets the device: for an owner whose loop goes away first. The
  // destructor does the same while the loop is still attached.
  void detach();

  [[nodiscard]] uint32_t status() const;
  [[nodiscard]] DeviceState device_state() const;
  [[nodiscard]] bool activated() const { return device_state() == DeviceState::kActive; }
  [[nodiscard]] size_t queue_count() const { return queues_.size(); }
  [[nodiscard]] TransportState state() const;
  // Puts a saved state back (a restored VM, before it runs): registers and
  // queues, and a device that was active is activated again with them and
  // told so (VirtioDevice::restored), its queues then served once. Fails,
  // changing nothing the guest could see run, when the state does not fit
  // this device (queue count or sizes) or the device cannot come back.
  [[nodiscard]] Result<void> restore(const TransportState& state);
  [[nodiscard]] VirtioDevice& device() const { return *device_; }

 private:
  uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_register(uint64_t offset, uint32_t value);
  bool features_acceptable() const;
  // These run with the device lock held.
  void activate();
  void reset();
  void run_queue(uint16_t queue);
  void device_failed(const std::string& why);
  void drop_activation();
  [[nodiscard]] Result<void> signal_used(uint16_t queue);
  [[nodiscard]] Result<void> add_device_fd(uint64_t activation, int fd, uint32_t events, FdHandler handler);
  void schedule(uint16_t queue);
  void on_kick();
  void raise(uint32_t interrupt_bits);
  Queue* selected_queue();

  std::shared_ptr<VirtioDevice> device_;
  const GuestMemory& memory_;
  std::shared_ptr<devices::InterruptLine> irq_;
  EventLoop* loop_;

  // Lock order: device_mutex_, then register_mutex_.
  mutable std::mutex device_mutex_;
  mutable std::mutex register_mutex_;
  // Written with both locks held; read with either.
  DeviceState device_state_ = DeviceState::kInactive;
  uint32_t status_ = 0;
  std::vector<Queue> queues_;
  // Register lock only.
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
  uint32_t config_generation_ = 0;
  std::atomic<uint32_t> interrupt_status_{0};
  // Device lock only.
  uint64_t activation_ = 0;  // bumps on every reset, so stale fd events are dropped
  std::set<int> device_fds_;
  uint64_t pending_queues_ = 0;  // queues that said kMore (bit per queue)
  UniqueFd kick_;                // eventfd on the loop that runs them again
};

}  // namespace husk::virtio
