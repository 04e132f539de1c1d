// Rng: virtio-rng, the entropy device (virtio 1.2, section 5.4). One
// request queue; every device-writable buffer the driver offers is filled
// with bytes from the host's getrandom(2).
// State: none beyond the activation. No configuration space, no features
// of its own. A single request is capped at kMaxRequest bytes so one huge
// buffer cannot keep the event loop busy; the driver just asks again.
#pragma once

#include "runtime/devices/virtio/virtio_device.h"

namespace husk::virtio {

class Rng final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr uint32_t kMaxRequest = 64 * 1024;

  [[nodiscard]] uint32_t device_id() const override;
  [[nodiscard]] uint64_t features() const override { return kCommonFeatures; }
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  [[nodiscard]] Result<void> activate(DeviceContext context) override;
  [[nodiscard]] Result<Served> process_queue(uint16_t queue) override;
  void reset() override { ctx_ = {}; }

  struct State {
    uint64_t bytes_served = 0;  // handed to the guest so far (tests, metrics)
  };
  [[nodiscard]] const State& state() const { return state_; }
  [[nodiscard]] uint64_t bytes_served() const { return state_.bytes_served; }

 private:
  DeviceContext ctx_;
  State state_;
};

}  // namespace husk::virtio
