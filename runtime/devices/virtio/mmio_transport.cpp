#include "runtime/devices/virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace husk::virtio {

namespace {

constexpr uint32_t kMagic = 0x74726976;  // "virt"
constexpr uint32_t kVersion = 2;         // modern virtio-mmio
constexpr uint32_t kVendorId = 0x6b737568;  // "husk"

constexpr uint32_t kStatusInitSteps[] = {
    VIRTIO_CONFIG_S_ACKNOWLEDGE,
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
        VIRTIO_CONFIG_S_DRIVER_OK,
};

uint64_t set_half(uint64_t value, uint32_t half, uint32_t word) {
  const uint32_t shift = half * 32;
  return (value & ~(uint64_t{0xffffffff} << shift)) | (uint64_t{word} << shift);
}

}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<VirtioDevice> device, const GuestMemory& memory,
                             std::shared_ptr<devices::InterruptLine> irq, EventLoop* loop)
    : device_(std::move(device)), memory_(memory), irq_(std::move(irq)), loop_(loop) {
  for (uint16_t max : device_->queue_max_sizes()) queues_.emplace_back(max);
}

uint32_t MmioTransport::status() const {
  std::lock_guard lock(const_cast<std::recursive_mutex&>(mutex_));
  return status_;
}

bool MmioTransport::activated() const {
  std::lock_guard lock(const_cast<std::recursive_mutex&>(mutex_));
  return activated_;
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  std::lock_guard lock(mutex_);
  if (offset >= VIRTIO_MMIO_CONFIG) {
    device_->read_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4) return;  // registers are 32-bit only (4.2.2.2)
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, 4);
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset >= VIRTIO_MMIO_CONFIG) {
    device_->write_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4) return;
  uint32_t value = 0;
  std::memcpy(&value, data.data(), 4);
  write_register(offset, value);
}

Queue* MmioTransport::selected_queue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  Queue* q = selected_queue();
  switch (offset) {
    case VIRTIO_MMIO_MAGIC_VALUE:
      return kMagic;
    case VIRTIO_MMIO_VERSION:
      return kVersion;
    case VIRTIO_MMIO_DEVICE_ID:
      return device_->device_id();
    case VIRTIO_MMIO_VENDOR_ID:
      return kVendorId;
    case VIRTIO_MMIO_DEVICE_FEATURES:
      return device_features_sel_ < 2
                 ? static_cast<uint32_t>(device_->features() >> (32 * device_features_sel_))
                 : 0;
    case VIRTIO_MMIO_QUEUE_NUM_MAX:
      return q != nullptr ? q->max_size() : 0;
    case VIRTIO_MMIO_QUEUE_READY:
      return q != nullptr && q->ready() ? 1 : 0;
    case VIRTIO_MMIO_INTERRUPT_STATUS:
      return interrupt_status_.load();
    case VIRTIO_MMIO_STATUS:
      return status_;
    case VIRTIO_MMIO_CONFIG_GENERATION:
      return config_generation_;
    case VIRTIO_MMIO_SHM_LEN_LOW:
    case VIRTIO_MMIO_SHM_LEN_HIGH:
      return 0xffffffff;  // no shared memory region: length -1 (4.2.2)
    default:
      return 0;
  }
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
      device_features_sel_ = value;
      return;
    case VIRTIO_MMIO_DRIVER_FEATURES:
      // Only while negotiating: after FEATURES_OK the set is fixed (3.1.1).
      if (status_ == (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER) &&
          driver_features_sel_ < 2) {
        driver_features_ = set_half(driver_features_, driver_features_sel_, value);
      }
      return;
    case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
      driver_features_sel_ = value;
      return;
    case VIRTIO_MMIO_QUEUE_SEL:
      queue_sel_ = value;
      return;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
      if (value < queues_.size()) notify(static_cast<uint16_t>(value));
      return;
    case VIRTIO_MMIO_INTERRUPT_ACK:
      interrupt_status_.fetch_and(~value);
      return;
    case VIRTIO_MMIO_STATUS:
      write_status(value);
      return;
    default:
      write_queue_register(offset, value);
      return;
  }
}

void MmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
  Queue* q = selected_queue();
  // Queue set-up belongs between FEATURES_OK and DRIVER_OK (3.1.1 step 7).
  const bool configuring = (status_ & VIRTIO_CONFIG_S_FEATURES_OK) &&
                           !(status_ & VIRTIO_CONFIG_S_DRIVER_OK) &&
                           !(status_ & VIRTIO_CONFIG_S_FAILED);
  if (q == nullptr || !configuring) return;
  switch (offset) {
    case VIRTIO_MMIO_QUEUE_NUM:
      // Checked against max_size at DRIVER_OK; truncation here would hide a
      // bad value, so anything above 16 bits becomes an invalid 0.
      q->set_size(value <= 0xffff ? static_cast<uint16_t>(value) : 0);
      return;
    case VIRTIO_MMIO_QUEUE_READY:
      q->set_ready(value == 1);
      return;
    case VIRTIO_MMIO_QUEUE_DESC_LOW:
      q->set_desc_table(set_half(q->desc_table(), 0, value));
      return;
    case VIRTIO_MMIO_QUEUE_DESC_HIGH:
      q->set_desc_table(set_half(q->desc_table(), 1, value));
      return;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      q->set_avail_ring(set_half(q->avail_ring(), 0, value));
      return;
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
      q->set_avail_ring(set_half(q->avail_ring(), 1, value));
      return;
    case VIRTIO_MMIO_QUEUE_USED_LOW:
      q->set_used_ring(set_half(q->used_ring(), 0, value));
      return;
    case VIRTIO_MMIO_QUEUE_USED_HIGH:
      q->set_used_ring(set_half(q->used_ring(), 1, value));
      return;
    default:
      return;
  }
}

bool MmioTransport::features_acceptable() const {
  const uint64_t offered = device_->features();
  return (driver_features_ & ~offered) == 0 &&
         (driver_features_ & (uint64_t{1} << VIRTIO_F_VERSION_1)) != 0;
}

void MmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset();
    return;
  }
  if (value & VIRTIO_CONFIG_S_FAILED) {
    status_ |= VIRTIO_CONFIG_S_FAILED;
    return;
  }
  // The only allowed change is adding the next init step's bit (3.1.1);
  // NEEDS_RESET, once set, stays until reset.
  const uint32_t kept = status_ & VIRTIO_CONFIG_S_NEEDS_RESET;
  const uint32_t current = status_ & ~kept;
  const uint32_t wanted = value & ~VIRTIO_CONFIG_S_NEEDS_RESET;
  bool allowed = false;
  uint32_t previous = 0;
  for (uint32_t step : kStatusInitSteps) {
    if (current == previous && wanted == step) allowed = true;
    previous = step;
  }
  if (!allowed) {
    spdlog::debug("virtio device {}: status {:#x} -> {:#x} refused", device_->device_id(), status_, value);
    return;
  }
  if ((wanted & VIRTIO_CONFIG_S_FEATURES_OK) && !(current & VIRTIO_CONFIG_S_FEATURES_OK) &&
      !features_acceptable()) {
    // Leaving FEATURES_OK clear tells the driver the features were not
    // accepted (3.1.1 step 6).
    spdlog::debug("virtio device {}: driver features {:#x} refused", device_->device_id(), driver_features_);
    return;
  }
  status_ = wanted | kept;
  if ((wanted & VIRTIO_CONFIG_S_DRIVER_OK) && !(current & VIRTIO_CONFIG_S_DRIVER_OK)) activate();
}

void MmioTransport::activate() {
  const bool event_idx = driver_features_ & (uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);
  for (size_t i = 0; i < queues_.size(); ++i) {
    Queue& q = queues_[i];
    q.set_event_idx(event_idx);
    if (!q.ready()) continue;
    if (auto valid = q.validate(memory_); !valid) {
      device_failed(fmt::format("queue {}: {}", i, valid.error().message));
      return;
    }
  }
  DeviceContext ctx;
  ctx.memory = &memory_;
  ctx.queues = &queues_;
  ctx.acked_features = driver_features_;
  ctx.signal_used = [this](uint16_t queue) { signal_used(queue); };
  ctx.fail = [this](const std::string& why) { device_failed(why); };
  const uint64_t activation = activation_;
  ctx.add_fd = [this, activation](int fd, uint32_t events,
                                  std::function<void(uint32_t)> handler) -> Result<void> {
    if (loop_ == nullptr) return fail("no event loop for device fds");
    HUSK_TRY(loop_->add(fd, events, [this, activation, handler](uint32_t ev) {
      std::lock_guard lock(mutex_);
      // An event fetched just before a reset belongs to the old activation.
      if (activation_ != activation || !activated_) return;
      handler(ev);
    }));
    device_fds_.insert(fd);
    return {};
  };
  ctx.remove_fd = [this](int fd) {
    if (loop_ != nullptr) loop_->remove(fd);
    device_fds_.erase(fd);
  };
  ctx.modify_fd = [this](int fd, uint32_t events) -> Result<void> {
    if (loop_ == nullptr) return fail("no event loop for device fds");
    return loop_->modify(fd, events);
  };
  if (auto ok = device_->activate(std::move(ctx)); !ok) {
    device_failed("activation: " + ok.error().message);
    return;
  }
  activated_ = true;
}

void MmioTransport::notify(uint16_t queue) {
  std::lock_guard lock(mutex_);
  if (!activated_ || queue >= queues_.size() || !queues_[queue].ready()) return;
  device_->process_queue(queue);
}

void MmioTransport::signal_used(uint16_t queue) {
  if (queue >= queues_.size()) return;
  auto needed = queues_[queue].needs_interrupt(memory_);
  if (!needed) {
    device_failed(needed.error().message);
    return;
  }
  if (*needed) raise(VIRTIO_MMIO_INT_VRING);
}

void MmioTransport::raise(uint32_t interrupt_bits) {
  interrupt_status_.fetch_or(interrupt_bits);
  irq_->trigger();
}

void MmioTransport::device_failed(const std::string& why) {
  if (status_ & VIRTIO_CONFIG_S_NEEDS_RESET) return;
  spdlog::warn("virtio device {} needs reset: {}", device_->device_id(), why);
  if (activated_) device_->reset();
  for (int fd : device_fds_) {
    if (loop_ != nullptr) loop_->remove(fd);
  }
  device_fds_.clear();
  activated_ = false;
  ++activation_;
  status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
  ++config_generation_;
  raise(VIRTIO_MMIO_INT_CONFIG);
}

void MmioTransport::reset() {
  if (activated_) device_->reset();
  for (int fd : device_fds_) {
    if (loop_ != nullptr) loop_->remove(fd);
  }
  device_fds_.clear();
  activated_ = false;
  ++activation_;
  for (Queue& q : queues_) q.reset();
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  status_ = 0;
  interrupt_status_ = 0;
}

}  // namespace husk::virtio
