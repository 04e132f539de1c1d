#include "runtime/devices/virtio/net/net.h"

#include <linux/virtio_ids.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "runtime/devices/virtio/chain_io.h"
#include "runtime/devices/virtio/net/virtio_net_uapi.h"

namespace husk::virtio {

namespace {

constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }

// A burst of 1/20 s of the rate (at least 16 KiB or 8 frames): small enough
// that a limit holds over a second or two, big enough for one full frame
// (a larger frame is let through into debt anyway: TokenBucket).
net::TokenBucket bytes_bucket(uint64_t rate, net::TokenBucket::Clock::time_point now) {
  return net::TokenBucket(rate, std::max<uint64_t>(rate / 20, 16 * 1024), now);
}
net::TokenBucket frames_bucket(uint64_t rate, net::TokenBucket::Clock::time_point now) {
  return net::TokenBucket(rate, std::max<uint64_t>(rate / 20, 8), now);
}

}  // namespace

std::chrono::nanoseconds Net::Buckets::wait(size_t len, Clock::time_point now) const {
  return std::max(bytes.wait_time(len, now), frames.wait_time(1, now));
}

void Net::Buckets::take(size_t len, Clock::time_point now) {
  (void)bytes.try_consume(len, now);
  (void)frames.try_consume(1, now);
}

Result<std::shared_ptr<Net>> Net::create(std::unique_ptr<net::FrameLink> link, NetDeviceSpec spec) {
  if (!link) return fail("virtio-net: no backend link");
  if (spec.mtu < 68 || spec.mtu > net::kMaxFrame - 14) {
    return fail(fmt::format("virtio-net: MTU {} out of range (68-{})", spec.mtu, net::kMaxFrame - 14));
  }
  // Made here, before any seccomp filter: the device thread only arms it.
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer) return fail_errno("virtio-net: timerfd_create");
  return std::shared_ptr<Net>(new Net(std::move(link), std::move(spec), std::move(timer)));
}

Net::Net(std::unique_ptr<net::FrameLink> link, NetDeviceSpec spec, UniqueFd timer)
    : link_(std::move(link)),
      spec_(std::move(spec)),
      timer_(std::move(timer)),
      tx_{bytes_bucket(spec_.rate.bytes_per_second, Clock::now()),
          frames_bucket(spec_.rate.frames_per_second, Clock::now())},
      rx_{bytes_bucket(spec_.rate.bytes_per_second, Clock::now()),
          frames_bucket(spec_.rate.frames_per_second, Clock::now())},
      filter_(spec_.filter) {}

uint32_t Net::device_id() const { return VIRTIO_ID_NET; }

uint64_t Net::features() const {
  return kCommonFeatures | bit(kVirtioNetFMac) | bit(kVirtioNetFMtu) | bit(kVirtioNetFStatus);
}

void Net::read_config(uint64_t offset, std::span<uint8_t> data) const {
  VirtioNetConfig config{};
  std::memcpy(config.mac, spec_.mac.data(), sizeof(config.mac));
  config.status = kVirtioNetSLinkUp;
  config.max_virtqueue_pairs = 1;
  config.mtu = spec_.mtu;
  read_config_bytes(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&config), sizeof(config)), offset,
                    data);
}

Result<void> Net::activate(DeviceContext context) {
  ctx_ = std::move(context);
  active_ = true;
  rx_starved_ = false;
  interest_ = EPOLLIN;
  HUSK_TRY(ctx_.add_fd(link_->fd(), interest_, [this](uint32_t events) { return on_link(events); }));
  HUSK_TRY(ctx_.add_fd(timer_.get(), EPOLLIN, [this](uint32_t) { return on_timer(); }));
  return {};
}

void Net::reset() {
  // The transport took the fds off the loop; the link stays (the backend
  // lives as long as the VM), frames it holds wait for the next driver.
  ctx_ = {};
  active_ = false;
  replies_.clear();
  held_.clear();
  // The timer is left as it is: a reset runs on a vCPU thread, whose
  // filter has no timerfd_settime. An expiry still pending reaches the next
  // activation, whose on_timer finds nothing held back.
  rx_limited_ = tx_limited_ = timer_armed_ = false;
}

Result<Served> Net::process_queue(uint16_t queue) {
  if (queue == kRxQueue) {
    rx_starved_ = false;
    HUSK_TRY(pump_rx());
    return Served::kDone;
  }
  if (queue == kTxQueue) return pump_tx();
  return Served::kDone;
}

Result<Served> Net::pump_tx() {
  if (tx_limited_) return Served::kDone;  // the timer calls again
  Queue& queue = (*ctx_.queues)[kTxQueue];
  bool used = false;
  uint32_t served = 0;
  for (; served < kQueueBudget; ++served) {
    // A backend that has not taken the last frame whole gets nothing more
    // until it has (EPOLLOUT): the guest's frames wait in its ring.
    if (link_->pending_output()) {
      HUSK_TRY(link_->flush());
      if (link_->pending_output()) break;
    }
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, queue.pop(*ctx_.memory));
    if (!chain) break;
    ChainReader reader(*ctx_.memory, *chain);
    const uint64_t total = reader.remaining();
    const auto now = Clock::now();
    if (total > kHeaderSize && total <= kHeaderSize + net::kMaxFrame) {
      const size_t len = total - kHeaderSize;
      if (const auto wait = tx_.wait(len, now); wait.count() > 0) {
        queue.undo_pop();
        tx_limited_ = true;
        HUSK_TRY(arm_timer(wait));
        break;
      }
      tx_.take(len, now);
      // Safe: the reader copies at most `total` bytes, all inside buffers
      // checked against guest memory at pop(); tx_frame_ is sized to fit.
      tx_frame_.resize(len);
      std::array<uint8_t, kHeaderSize> header{};
      HUSK_TRY(reader.read(header));
      HUSK_TRY(reader.read(tx_frame_));
      net::Decision decision;
      {
        std::lock_guard lock(mutex_);
        decision = filter_.outbound(tx_frame_);
        ++state_.tx_frames;
      }
      if (!decision.reply.empty()) {
        if (replies_.size() < kMaxPendingReplies) {
          replies_.push_back(std::move(decision.reply));
        } else {
          std::lock_guard lock(mutex_);
          ++state_.replies_dropped;
        }
      }
      if (decision.pass) {
        HUSK_TRY_ASSIGN(net::FrameLink::SendStatus sent, link_->send(tx_frame_));
        if (sent == net::FrameLink::SendStatus::kBlocked) {
          // Only a tap's full queue: dropped as a real NIC's full ring would.
          std::lock_guard lock(mutex_);
          ++state_.tx_link_drops;
        }
      }
    } else {
      // No frame (a header alone, or more than any frame): what no driver
      // sends. The filter counts it as malformed; the chain goes back.
      std::lock_guard lock(mutex_);
      (void)filter_.outbound({});
      ++state_.tx_frames;
    }
    HUSK_TRY(queue.add_used(*ctx_.memory, chain->head, 0));
    used = true;
  }
  if (used) HUSK_TRY(ctx_.signal_used(kTxQueue));
  if (!replies_.empty()) HUSK_TRY(pump_rx());
  HUSK_TRY(update_interest());
  return served == kQueueBudget ? Served::kMore : Served::kDone;
}

Result<bool> Net::deliver(const DescriptorChain& chain, std::span<const uint8_t> frame) {
  Queue& queue = (*ctx_.queues)[kRxQueue];
  ChainWriter writer(*ctx_.memory, chain);
  if (writer.remaining() < kHeaderSize + frame.size()) {
    queue.undo_pop();
    std::lock_guard lock(mutex_);
    ++state_.rx_too_big;
    return false;
  }
  VirtioNetHdrV1 header{};
  header.num_buffers = 1;
  // Safe: the writer checked above that header and frame fit the guest's
  // writable buffers; it writes only inside them.
  HUSK_TRY(writer.write_obj(header));
  HUSK_TRY(writer.write(frame));
  HUSK_TRY(queue.add_used(*ctx_.memory, chain.head, static_cast<uint32_t>(kHeaderSize + frame.size())));
  std::lock_guard lock(mutex_);
  ++state_.rx_frames;
  return true;
}

Result<bool> Net::deliver_replies(bool& used) {
  Queue& queue = (*ctx_.queues)[kRxQueue];
  while (!replies_.empty()) {
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, queue.pop(*ctx_.memory));
    if (!chain) return false;
    HUSK_TRY_ASSIGN(const bool delivered, deliver(*chain, replies_.front()));
    used = used || delivered;
    replies_.pop_front();  // one that does not fit is dropped, not retried
  }
  return true;
}

Result<void> Net::pump_rx() {
  if (!active_) return {};
  Queue& queue = (*ctx_.queues)[kRxQueue];
  bool used = false;
  HUSK_TRY_ASSIGN(const bool replies_done, deliver_replies(used));
  if (!replies_done) rx_starved_ = true;
  for (uint32_t n = 0; n < kQueueBudget && !rx_starved_ && !rx_limited_; ++n) {
    HUSK_TRY_ASSIGN(std::optional<DescriptorChain> chain, queue.pop(*ctx_.memory));
    if (!chain) {
      rx_starved_ = true;  // the driver's next notify (process_queue) resumes
      break;
    }
    std::span<const uint8_t> frame;
    if (!held_.empty()) {
      frame = held_;
    } else {
      HUSK_TRY_ASSIGN(auto received, link_->receive());
      if (!received) {
        queue.undo_pop();
        break;
      }
      frame = *received;
    }
    const auto now = Clock::now();
    if (const auto wait = rx_.wait(frame.size(), now); wait.count() > 0) {
      queue.undo_pop();
      if (held_.empty()) held_.assign(frame.begin(), frame.end());
      rx_limited_ = true;
      HUSK_TRY(arm_timer(wait));
      break;
    }
    rx_.take(frame.size(), now);
    bool pass = false;
    {
      std::lock_guard lock(mutex_);
      pass = filter_.inbound(frame).pass;
    }
    if (pass) {
      HUSK_TRY_ASSIGN(const bool delivered, deliver(*chain, frame));
      used = used || delivered;
    } else {
      queue.undo_pop();
    }
    held_.clear();
  }
  if (used) HUSK_TRY(ctx_.signal_used(kRxQueue));
  return update_interest();
}

Result<void> Net::on_link(uint32_t events) {
  if (events & EPOLLOUT) {
    HUSK_TRY(link_->flush());
    if (!link_->pending_output()) {
      HUSK_TRY_ASSIGN(const Served served, pump_tx());
      if (served == Served::kMore && ctx_.schedule) ctx_.schedule(kTxQueue);
    }
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) HUSK_TRY(pump_rx());
  return update_interest();
}

Result<void> Net::on_timer() {
  uint64_t expirations = 0;
  [[maybe_unused]] const ssize_t n = ::read(timer_.get(), &expirations, sizeof(expirations));
  timer_armed_ = false;
  if (tx_limited_) {
    tx_limited_ = false;
    HUSK_TRY_ASSIGN(const Served served, pump_tx());
    if (served == Served::kMore && ctx_.schedule) ctx_.schedule(kTxQueue);
  }
  if (rx_limited_) {
    rx_limited_ = false;
    HUSK_TRY(pump_rx());
  }
  return {};
}

Result<void> Net::arm_timer(std::chrono::nanoseconds wait) {
  if (timer_armed_) return {};  // the earlier expiry serves both directions
  wait = std::max(wait, std::chrono::nanoseconds(50'000));
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(wait.count() / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(wait.count() % 1'000'000'000);
  if (::timerfd_settime(timer_.get(), 0, &spec, nullptr) != 0) return fail_errno("virtio-net: timerfd_settime");
  timer_armed_ = true;
  return {};
}

Result<void> Net::update_interest() {
  if (!active_) return {};
  uint32_t want = 0;
  if (!rx_starved_ && !rx_limited_) want |= EPOLLIN;
  if (link_->pending_output()) want |= EPOLLOUT;
  if (want == interest_) return {};
  HUSK_TRY(ctx_.modify_fd(link_->fd(), want));
  interest_ = want;
  return {};
}

Net::State Net::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

net::NetReport Net::report() const {
  std::lock_guard lock(mutex_);
  return filter_.report();
}

}  // namespace husk::virtio
