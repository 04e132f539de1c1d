#include "runtime/devices/virtio/mmio_transport.h"

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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

MmioTransport::~MmioTransport() { detach(); }

void MmioTransport::detach() {
  std::lock_guard lock(device_mutex_);
  if (loop_ == nullptr) return;
  drop_activation();
  if (kick_) loop_->remove(kick_.get());
  loop_ = nullptr;
  std::lock_guard register_lock(register_mutex_);
  if (device_state_ == DeviceState::kActive) device_state_ = DeviceState::kInactive;
}

uint32_t MmioTransport::status() const {
  std::lock_guard lock(register_mutex_);
  return status_;
}

DeviceState MmioTransport::device_state() const {
  std::lock_guard lock(register_mutex_);
  return device_state_;
}

TransportState MmioTransport::state() const {
  std::scoped_lock lock(device_mutex_, register_mutex_);
  TransportState s;
  s.device = device_state_;
  s.device_features_sel = device_features_sel_;
  s.driver_features_sel = driver_features_sel_;
  s.driver_features = driver_features_;
  s.queue_sel = queue_sel_;
  s.status = status_;
  s.config_generation = config_generation_;
  s.interrupt_status = interrupt_status_.load();
  for (const Queue& q : queues_) s.queues.push_back(q.state());
  return s;
}

Result<void> MmioTransport::restore(const TransportState& s) {
  std::lock_guard lock(device_mutex_);
  if (device_state_ != DeviceState::kInactive) return fail("a virtio device is restored only before it ran");
  if (s.queues.size() != queues_.size()) {
    return fail(fmt::format("virtio device {}: the snapshot has {} queues, the device {}", device_->device_id(),
                            s.queues.size(), queues_.size()));
  }
  std::vector<Queue> queues;
  for (size_t i = 0; i < s.queues.size(); ++i) {
    auto q = Queue::restore(queues_[i].max_size(), s.queues[i]);
    if (!q) return wrap(fmt::format("virtio device {} queue {}", device_->device_id(), i), q.error());
    queues.push_back(std::move(*q));
  }
  {
    std::lock_guard register_lock(register_mutex_);
    device_features_sel_ = s.device_features_sel;
    driver_features_sel_ = s.driver_features_sel;
    driver_features_ = s.driver_features;
    queue_sel_ = s.queue_sel;
    status_ = s.status;
    config_generation_ = s.config_generation;
    interrupt_status_.store(s.interrupt_status);
    queues_ = std::move(queues);
    // A device the guest had broken stays broken: the driver must reset it.
    device_state_ = s.device == DeviceState::kFailed ? DeviceState::kFailed : DeviceState::kInactive;
  }
  if (s.device != DeviceState::kActive) return {};
  activate();
  if (device_state_ != DeviceState::kActive) {
    return fail(fmt::format("virtio device {} did not come back from the snapshot", device_->device_id()));
  }
  if (auto back = device_->restored(); !back) {
    return wrap(fmt::format("virtio device {}", device_->device_id()), back.error());
  }
  // Anything the driver queued before the snapshot is served once the
  // device's thread runs.
  if (loop_ != nullptr) {
    for (uint16_t q = 0; q < queues_.size(); ++q) {
      if (queues_[q].ready()) schedule(q);
    }
  }
  return {};
}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= VIRTIO_MMIO_CONFIG) {
    std::lock_guard lock(device_mutex_);
    device_->read_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4) return;  // registers are 32-bit only (4.2.2.2)
  std::lock_guard lock(register_mutex_);
  const uint32_t value = read_register(offset);
  std::memcpy(data.data(), &value, 4);
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= VIRTIO_MMIO_CONFIG) {
    std::lock_guard lock(device_mutex_);
    device_->write_config(offset - VIRTIO_MMIO_CONFIG, data);
    return;
  }
  if (data.size() != 4) return;
  uint32_t value = 0;
  std::memcpy(&value, data.data(), 4);
  if (offset == VIRTIO_MMIO_STATUS) {
    write_status(value);
  } else if (offset == VIRTIO_MMIO_QUEUE_NOTIFY) {
    if (value < queues_.size()) notify(static_cast<uint16_t>(value));
  } else {
    std::lock_guard lock(register_mutex_);
    write_register(offset, value);
  }
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
    case VIRTIO_MMIO_INTERRUPT_ACK:
      interrupt_status_.fetch_and(~value);
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
  // Activation and reset call into the device: device lock first.
  std::lock_guard device_lock(device_mutex_);
  if (value == 0) {
    reset();
    return;
  }
  std::unique_lock lock(register_mutex_);
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
  const bool activate_now = (wanted & VIRTIO_CONFIG_S_DRIVER_OK) && !(current & VIRTIO_CONFIG_S_DRIVER_OK) &&
                            device_state_ == DeviceState::kInactive;
  lock.unlock();
  // The queue registers are frozen now (DRIVER_OK is set), so the device
  // lock alone covers the queues from here on.
  if (activate_now) activate();
}

void MmioTransport::activate() {
  uint64_t features = 0;
  {
    std::lock_guard lock(register_mutex_);
    features = driver_features_;
  }
  const bool event_idx = features & (uint64_t{1} << VIRTIO_RING_F_EVENT_IDX);
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
  ctx.acked_features = features;
  ctx.signal_used = [this](uint16_t queue) { return signal_used(queue); };
  const uint64_t activation = activation_;
  ctx.add_fd = [this, activation](int fd, uint32_t events, FdHandler handler) {
    return add_device_fd(activation, fd, events, std::move(handler));
  };
  ctx.remove_fd = [this](int fd) {
    if (loop_ != nullptr) loop_->remove(fd);
    device_fds_.erase(fd);
  };
  ctx.modify_fd = [this](int fd, uint32_t events) -> Result<void> {
    if (loop_ == nullptr) return fail("no event loop for device fds");
    return loop_->modify(fd, events);
  };
  ctx.schedule = [this](uint16_t queue) {
    if (loop_ != nullptr && queue < queues_.size()) schedule(queue);
  };
  if (auto ok = device_->activate(std::move(ctx)); !ok) {
    device_failed("activation: " + ok.error().message);
    return;
  }
  std::lock_guard lock(register_mutex_);
  device_state_ = DeviceState::kActive;
}

Result<void> MmioTransport::add_device_fd(uint64_t activation, int fd, uint32_t events, FdHandler handler) {
  if (loop_ == nullptr) return fail("no event loop for device fds");
  HUSK_TRY(loop_->add(fd, events, [this, activation, handler = std::move(handler)](uint32_t ev) {
    std::lock_guard lock(device_mutex_);
    // An event fetched just before a reset belongs to the old activation.
    if (activation_ != activation || device_state_ != DeviceState::kActive) return;
    if (auto ok = handler(ev); !ok) device_failed(ok.error().message);
  }));
  device_fds_.insert(fd);
  return {};
}

void MmioTransport::notify(uint16_t queue) {
  std::lock_guard lock(device_mutex_);
  run_queue(queue);
}

void MmioTransport::run_queue(uint16_t queue) {
  if (device_state_ != DeviceState::kActive || queue >= queues_.size() || !queues_[queue].ready()) return;
  for (;;) {
    auto served = device_->process_queue(queue);
    if (!served) {
      device_failed(served.error().message);
      return;
    }
    if (*served == Served::kDone) return;
    // Budget used up: with a loop, come back after its other fds; without
    // one (unit tests), go on at once.
    if (loop_ != nullptr) {
      schedule(queue);
      return;
    }
  }
}

void MmioTransport::schedule(uint16_t queue) {
  if (!kick_) {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!fd || !loop_->add(fd.get(), EPOLLIN, [this](uint32_t) { on_kick(); })) {
      // Without the kick the queue waits for the driver's next notify: the
      // guest's loss, never the host's.
      spdlog::warn("virtio device {}: cannot schedule more work", device_->device_id());
      return;
    }
    kick_ = std::move(fd);
  }
  pending_queues_ |= uint64_t{1} << queue;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(kick_.get(), &one, sizeof(one));
}

void MmioTransport::on_kick() {
  uint64_t count = 0;
  [[maybe_unused]] ssize_t n = ::read(kick_.get(), &count, sizeof(count));
  std::lock_guard lock(device_mutex_);
  const uint64_t pending = pending_queues_;
  pending_queues_ = 0;
  for (uint16_t q = 0; q < queues_.size(); ++q) {
    if (pending & (uint64_t{1} << q)) run_queue(q);
  }
}

Result<void> MmioTransport::signal_used(uint16_t queue) {
  if (queue >= queues_.size()) return {};
  HUSK_TRY_ASSIGN(bool needed, queues_[queue].needs_interrupt(memory_));
  if (needed) raise(VIRTIO_MMIO_INT_VRING);
  return {};
}

void MmioTransport::raise(uint32_t interrupt_bits) {
  interrupt_status_.fetch_or(interrupt_bits);
  irq_->trigger();
}

void MmioTransport::drop_activation() {
  // Off the loop first, then closed by the device's reset: a number closed
  // first could already be another thread's new fd when it is removed.
  for (int fd : device_fds_) {
    if (loop_ != nullptr) loop_->remove(fd);
  }
  device_fds_.clear();
  if (device_state_ == DeviceState::kActive) device_->reset();
  pending_queues_ = 0;
  ++activation_;
}

void MmioTransport::device_failed(const std::string& why) {
  if (device_state_ == DeviceState::kFailed) return;
  spdlog::warn("virtio device {} needs reset: {}", device_->device_id(), why);
  drop_activation();
  {
    std::lock_guard lock(register_mutex_);
    device_state_ = DeviceState::kFailed;
    status_ |= VIRTIO_CONFIG_S_NEEDS_RESET;
    ++config_generation_;
  }
  raise(VIRTIO_MMIO_INT_CONFIG);
}

void MmioTransport::reset() {
  drop_activation();
  std::lock_guard lock(register_mutex_);
  device_state_ = DeviceState::kInactive;
  for (Queue& q : queues_) q.reset();
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  status_ = 0;
  interrupt_status_ = 0;
}

}  // namespace husk::virtio
