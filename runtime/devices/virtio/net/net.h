// Net: virtio-net (virtio 1.2, section 5.1), one receive and one transmit
// queue, the host side a FrameLink (runtime/net/frame_link.h: passt's stream
// socket or a tap), and between the two the job's egress filter
// (runtime/net/net_filter.h) and rate limits. The guest is hostile: every
// frame it sends passes the filter before it reaches the backend, and every
// frame from the backend passes it before it reaches the guest.
// Features: VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU and VIRTIO_NET_F_STATUS (the
// link is always up). No offloads (no checksum, TSO or mergeable receive
// buffers), so every frame is at most MTU + 14 bytes and whole: what the
// filter needs to see. The 12-byte virtio_net_hdr_v1 of a transmitted frame
// is read and ignored (no offload was offered, so it has nothing to ask);
// a received frame's header is zero with num_buffers 1.
// State: the counters in Net::State; the filter's counts (report()).
// Budgets: at most kQueueBudget frames per process_queue or link event each
// way; filter replies waiting for receive buffers are at most
// kMaxPendingReplies (then dropped); the rate limits (token buckets for
// bytes and frames, each direction) hold the queue or the link, never
// drop: a guest over its rate waits.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "runtime/common/unique_fd.h"
#include "runtime/devices/virtio/virtio_device.h"
#include "runtime/net/frame_link.h"
#include "runtime/net/net_filter.h"
#include "runtime/net/token_bucket.h"

namespace husk::virtio {

// Per direction; 0 means no limit.
struct NetRateLimits {
  uint64_t bytes_per_second = 0;
  uint64_t frames_per_second = 0;
};

struct NetDeviceSpec {
  std::array<uint8_t, 6> mac{};
  uint16_t mtu = 1500;
  net::FilterConfig filter{};
  NetRateLimits rate{};
};

class Net final : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kMaxPendingReplies = 64;
  static constexpr size_t kHeaderSize = 12;  // struct virtio_net_hdr_v1

  [[nodiscard]] static Result<std::shared_ptr<Net>> create(std::unique_ptr<net::FrameLink> link,
                                                           NetDeviceSpec spec);

  [[nodiscard]] uint32_t device_id() const override;
  [[nodiscard]] uint64_t features() const override;
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override { return {kQueueSize, kQueueSize}; }
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  [[nodiscard]] Result<void> activate(DeviceContext context) override;
  [[nodiscard]] Result<Served> process_queue(uint16_t queue) override;
  void reset() override;

  struct State {
    uint64_t tx_frames = 0;       // taken from the guest
    uint64_t rx_frames = 0;       // handed to the guest (replies included)
    uint64_t tx_link_drops = 0;   // passed the filter, but the backend could not take them
    uint64_t rx_too_big = 0;      // larger than the guest's receive buffer
    uint64_t replies_dropped = 0; // filter replies over kMaxPendingReplies
  };
  [[nodiscard]] State state() const;
  // The filter's counts so far; safe from any thread.
  [[nodiscard]] net::NetReport report() const;

 private:
  Net(std::unique_ptr<net::FrameLink> link, NetDeviceSpec spec, UniqueFd timer);
  using Clock = net::TokenBucket::Clock;
  struct Buckets {
    net::TokenBucket bytes;
    net::TokenBucket frames;
    // How long until `len` bytes may pass (zero: now); takes nothing.
    [[nodiscard]] std::chrono::nanoseconds wait(size_t len, Clock::time_point now) const;
    void take(size_t len, Clock::time_point now);
  };

  [[nodiscard]] Result<Served> pump_tx();
  [[nodiscard]] Result<void> pump_rx();
  [[nodiscard]] Result<void> on_link(uint32_t events);
  [[nodiscard]] Result<void> on_timer();
  // Writes header and frame into `chain` and returns it used; false (the
  // chain given back) when the frame does not fit the guest's buffer.
  [[nodiscard]] Result<bool> deliver(const DescriptorChain& chain, std::span<const uint8_t> frame);
  // Delivers the filter's replies; false when the guest ran out of buffers.
  [[nodiscard]] Result<bool> deliver_replies(bool& used);
  [[nodiscard]] Result<void> arm_timer(std::chrono::nanoseconds wait);
  [[nodiscard]] Result<void> update_interest();

  std::unique_ptr<net::FrameLink> link_;
  NetDeviceSpec spec_;
  UniqueFd timer_;
  Buckets tx_;
  Buckets rx_;
  // The filter and the counters are read by report() and state() from
  // other threads (the VMM's control thread at the VM's end).
  mutable std::mutex mutex_;
  net::NetFilter filter_;
  State state_;
  DeviceContext ctx_;
  bool active_ = false;
  uint32_t interest_ = 0;            // the link fd's epoll events now
  bool rx_starved_ = false;          // the guest has no receive buffer
  bool rx_limited_ = false;          // waiting for the rx rate limit
  bool tx_limited_ = false;          // waiting for the tx rate limit
  bool timer_armed_ = false;
  std::deque<std::vector<uint8_t>> replies_;  // filter replies for the guest
  std::vector<uint8_t> held_;        // a received frame waiting for the rx rate limit
  std::vector<uint8_t> tx_frame_;    // the frame being sent (reused)
};

}  // namespace husk::virtio
