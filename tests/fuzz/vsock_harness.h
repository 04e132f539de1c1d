// A virtio-vsock device behind its mmio transport with a guest driver in
// front (rx, tx and event queues in real guest memory) and its event loop
// stepped by hand, for the vsock fuzz targets. Everything goes through the
// transport's registers, guest memory and the device's Unix sockets.
//
// Every packet the device puts on the rx queue is checked as it arrives:
// used length 0 (a buffer too small to use) or a whole header and exactly
// the payload its header announces, from the host CID to the guest's, a
// stream packet with a known op, control packets without payload.
#pragma once

#include <linux/virtio_vsock.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/devices/virtio/vsock/vsock.h"
#include "tests/fuzz/fuzz_support.h"

namespace husk::fuzz {

struct RxPacket {
  virtio_vsock_hdr hdr{};
  std::string payload;
};

// A non-blocking client of a Unix stream socket; invalid when nothing listens.
inline UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), std::min(path.size(), sizeof(a.sun_path) - 1));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return UniqueFd();
  return fd;
}

inline UniqueFd listen_unix(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), std::min(path.size(), sizeof(a.sun_path) - 1));
  FUZZ_CHECK(fd.valid());
  ::unlink(path.c_str());
  FUZZ_CHECK(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  FUZZ_CHECK(::listen(fd.get(), 64) == 0);
  return fd;
}

// Reads what is there without waiting; false at end of stream or error.
inline bool drain(int fd, std::string& into, size_t max = 1 << 20) {
  char buf[4096];
  while (max > 0) {
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, max), MSG_DONTWAIT);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      max -= static_cast<size_t>(n);
      continue;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
  }
  return true;
}

class VsockHarness {
 public:
  static constexpr uint64_t kGuestCid = 3;
  static constexpr uint64_t kMemSize = 1 << 20;
  // More than kQueueBudget (64) chains fit, so one notification can leave
  // work for the transport's next round.
  static constexpr uint16_t kRingSize = 128;
  static constexpr GuestAddress kRxRing = 0x0;
  static constexpr GuestAddress kTxRing = 0x1000;
  static constexpr GuestAddress kEvRing = 0x2000;
  static constexpr GuestAddress kIndirect = 0x4000;  // tx tables, 0x100 each
  static constexpr size_t kRxSlots = 64;
  static constexpr GuestAddress kRxBuffers = 0x10000;  // kRxSlots of 4 KiB
  static constexpr uint64_t kRxSlot = 0x1000;
  static constexpr GuestAddress kTxArea = 0x50000;

  static const GuestMemory& memory() {
    static GuestMemory* mem = [] {
      auto m = GuestMemory::create({{0, kMemSize}});
      FUZZ_CHECK(m.has_value());
      return new GuestMemory(std::move(*m));
    }();
    return *mem;
  }

  // `tight` gives the device small budgets (8 connections, 2 handshakes),
  // so a short input reaches the paths where they run out.
  VsockHarness(std::string uds, EventLoop loop, bool event_idx, bool tight = false)
      : uds_(std::move(uds)), loop_(std::move(loop)) {
    if (tight) {
      budgets_.max_connections = 8;
      budgets_.max_handshakes = 2;
    }
    auto v = virtio::Vsock::create(kGuestCid, uds_, budgets_);
    FUZZ_CHECK(v.has_value());
    device_ = *v;
    transport_ = std::make_unique<virtio::MmioTransport>(device_, memory(), irq_, &loop_);
    uint64_t cid = 0;
    transport_->read(VIRTIO_MMIO_CONFIG, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&cid), 8));
    FUZZ_CHECK(cid == kGuestCid);
    init(event_idx);
  }

  // The driver's reset and init (3.1.1): fresh rings, every buffer back.
  // Also what a guest does to recover a device that needs reset.
  void init(bool event_idx) {
    rx_ = std::make_unique<Ring>(memory(), kRingSize, kRxRing);
    tx_ = std::make_unique<Ring>(memory(), kRingSize, kTxRing);
    ev_ = std::make_unique<Ring>(memory(), kRingSize, kEvRing);
    Ring* rings[] = {rx_.get(), tx_.get(), ev_.get()};
    const uint64_t features = virtio::kFeatureVersion1 | virtio::kFeatureIndirectDesc |
                              (event_idx ? virtio::kFeatureEventIdx : 0);
    const uint32_t status = driver_init(*transport_, features, rings);
    FUZZ_CHECK((status & VIRTIO_CONFIG_S_DRIVER_OK) != 0 && (status & VIRTIO_CONFIG_S_NEEDS_RESET) == 0);
    free_slots_.clear();
    for (size_t i = 0; i < kRxSlots; ++i) free_slots_.push_back(kRxSlots - 1 - i);
    rx_heads_.clear();
    tx_next_ = kTxArea;
    tx_indirect_ = 0;
    broken_ = false;
  }
  ~VsockHarness() {
    transport_.reset();
    device_.reset();
  }
  VsockHarness(const VsockHarness&) = delete;
  VsockHarness& operator=(const VsockHarness&) = delete;

  [[nodiscard]] const std::string& uds() const { return uds_; }
  [[nodiscard]] virtio::Vsock& device() { return *device_; }
  [[nodiscard]] const virtio::VsockBudgets& budgets() const { return budgets_; }
  [[nodiscard]] EventLoop& loop() { return loop_; }
  [[nodiscard]] bool failed() const {
    return (reg_read(*transport_, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET) != 0;
  }
  [[nodiscard]] size_t rx_buffers() const { return rx_heads_.size(); }

  // Two rounds of the event loop: an fd the first round registers (a
  // client the listener just accepted, with its CONNECT line already
  // waiting) is served in the second.
  void poll() {
    poll_once(loop_);
    poll_once(loop_);
  }
  void notify(uint16_t queue, bool by_register) {
    if (by_register) {
      reg_write(*transport_, VIRTIO_MMIO_QUEUE_NOTIFY, queue);
    } else {
      transport_->notify(queue);
    }
  }

  // Offers up to `count` receive buffers of `size` bytes (at most a slot):
  // layout 0 one descriptor, 1 the header split over two descriptors at
  // `split`, 2 the same through an indirect table. Notifies rx when asked.
  void add_rx_buffers(size_t count, uint32_t size, uint8_t layout, uint32_t split, bool notify_rx) {
    size = std::min<uint32_t>(size, kRxSlot);
    for (size_t i = 0; i < count && !free_slots_.empty(); ++i) {
      const size_t slot = free_slots_.back();
      const GuestAddress at = kRxBuffers + slot * kRxSlot;
      std::vector<Ring::Buffer> bufs;
      const uint32_t cut = std::min(split, size);
      if (layout % 3 != 0 && cut > 0 && cut < size) {
        bufs = {{at, cut, true}, {at + cut, size - cut, true}};
      } else {
        bufs = {{at, size, true}};
      }
      const int head = rx_->add_chain(bufs, layout % 3 == 2, kRxBuffers - 0x1000 + 0x20 * (slot % 64));
      if (head < 0) break;
      free_slots_.pop_back();
      rx_heads_[static_cast<uint16_t>(head)] = RxBuffer{slot, size};
      rx_->publish(static_cast<uint16_t>(head));
    }
    if (notify_rx) notify(virtio::Vsock::kRxQueue, false);
  }

  // The packets the device put on the rx queue since the last call, checked
  // (see the file comment); their buffers are free again.
  std::vector<RxPacket> receive() {
    std::vector<RxPacket> out;
    for (const Ring::Used& u : rx_->take_used(!broken_)) {
      auto it = rx_heads_.find(u.head);
      // After corrupt() the rings say what the guest scribbled: no checks.
      if (broken_ && it == rx_heads_.end()) continue;
      FUZZ_CHECK(it != rx_heads_.end());
      const RxBuffer buf = it->second;
      rx_heads_.erase(it);
      free_slots_.push_back(buf.slot);
      if (broken_) continue;
      FUZZ_CHECK(u.len <= buf.size);
      if (u.len == 0) continue;  // too small to use: returned empty
      FUZZ_CHECK(u.len >= sizeof(virtio_vsock_hdr));
      RxPacket p;
      const GuestAddress at = kRxBuffers + buf.slot * kRxSlot;
      FUZZ_CHECK(memory().read(at, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&p.hdr), sizeof p.hdr)).has_value());
      p.payload.resize(u.len - sizeof(virtio_vsock_hdr));
      FUZZ_CHECK(memory()
                     .read(at + sizeof(virtio_vsock_hdr),
                           std::span<uint8_t>(reinterpret_cast<uint8_t*>(p.payload.data()), p.payload.size()))
                     .has_value());
      check_packet(p);
      FUZZ_TRACE("  rx: op %u %u -> %u len %u flags %u buf_alloc %u fwd_cnt %u\n", p.hdr.op, p.hdr.src_port,
                 p.hdr.dst_port, p.hdr.len, p.hdr.flags, p.hdr.buf_alloc, p.hdr.fwd_cnt);
      out.push_back(std::move(p));
    }
    return out;
  }

  // Puts one packet on the tx queue: the header and payload bytes as given
  // (hdr.len may lie), over descriptors cut at `cuts` (offsets into the
  // packet), directly or through an indirect table. Returns false when the
  // ring or the tx area is full (take_tx_used() frees them).
  bool send(const virtio_vsock_hdr& hdr, std::span<const uint8_t> payload, std::span<const uint32_t> cuts,
            bool indirect, bool notify_tx, bool by_register = false) {
    std::vector<uint8_t> packet(sizeof hdr + payload.size());
    std::memcpy(packet.data(), &hdr, sizeof hdr);
    if (!payload.empty()) std::memcpy(packet.data() + sizeof hdr, payload.data(), payload.size());
    if (tx_next_ + packet.size() > kMemSize) return false;
    const GuestAddress at = tx_next_;
    std::vector<Ring::Buffer> bufs;
    uint32_t from = 0;
    for (uint32_t cut : cuts) {
      if (cut <= from || cut >= packet.size()) continue;
      bufs.push_back(Ring::Buffer{at + from, cut - from, false});
      from = cut;
    }
    bufs.push_back(Ring::Buffer{at + from, static_cast<uint32_t>(packet.size() - from), false});
    if (bufs.size() > 16) return false;
    const bool use_indirect = indirect && tx_indirect_ < 64;
    const int head = tx_->add_chain(bufs, use_indirect, kIndirect + 0x100 * tx_indirect_);
    if (head < 0) return false;
    if (use_indirect) ++tx_indirect_;
    FUZZ_CHECK(memory().write(at, packet).has_value());
    FUZZ_TRACE("  tx: op %u %u -> %u len %u (%zu bytes, %zu buffers%s)\n", hdr.op, hdr.src_port, hdr.dst_port,
               hdr.len, payload.size(), bufs.size(), use_indirect ? ", indirect" : "");
    tx_next_ = (tx_next_ + packet.size() + 15) & ~uint64_t{15};
    tx_->publish(static_cast<uint16_t>(head));
    if (notify_tx) notify(virtio::Vsock::kTxQueue, by_register);
    return true;
  }

  // Tx chains the device has consumed; when none are left in flight the tx
  // area and indirect tables start over.
  void take_tx_used() {
    for (const Ring::Used& u : tx_->take_used(!broken_)) {
      if (!broken_) FUZZ_CHECK(u.len == 0);  // the device writes nothing into tx
    }
    if (tx_->in_flight() == 0) {
      tx_next_ = kTxArea;
      tx_indirect_ = 0;
    }
  }

  // What a broken or hostile driver does to a queue (0 rx, 1 tx, 2 event):
  // a buffer outside guest memory, a chain that loops, a device-readable
  // receive buffer, or an avail index that runs past the ring. All but the
  // readable buffer must fail the device (NEEDS_RESET), never the host.
  void corrupt(uint8_t what, uint16_t queue) {
    Ring& r = queue == 0 ? *rx_ : queue == 1 ? *tx_ : *ev_;
    broken_ = true;
    // The last descriptor: the free list hands it out last.
    const uint16_t d = static_cast<uint16_t>(kRingSize - 1);
    switch (what % 4) {
      case 0:
        r.write_raw_desc(d, kMemSize - 8, 64, queue == 0 ? VRING_DESC_F_WRITE : 0, 0);
        r.publish_raw(d);
        break;
      case 1:
        r.write_raw_desc(d, kTxArea, 44, VRING_DESC_F_NEXT, d);
        r.publish_raw(d);
        break;
      case 2:
        r.write_raw_desc(d, kTxArea, 4096, 0, 0);
        r.publish_raw(d);
        break;
      default:
        r.jump_avail_idx(kRingSize + 1);
        break;
    }
    notify(queue, what & 4);
  }

  static virtio_vsock_hdr header(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len = 0,
                                 uint32_t buf_alloc = 65536, uint32_t fwd_cnt = 0, uint32_t flags = 0) {
    virtio_vsock_hdr h{};
    h.src_cid = kGuestCid;
    h.dst_cid = virtio::kHostCid;
    h.src_port = src_port;
    h.dst_port = dst_port;
    h.len = len;
    h.type = VIRTIO_VSOCK_TYPE_STREAM;
    h.op = op;
    h.flags = flags;
    h.buf_alloc = buf_alloc;
    h.fwd_cnt = fwd_cnt;
    return h;
  }

 private:
  struct RxBuffer {
    size_t slot;
    uint32_t size;
  };

  static void check_packet(const RxPacket& p) {
    const virtio_vsock_hdr& h = p.hdr;
    FUZZ_CHECK(h.src_cid == virtio::kHostCid);
    FUZZ_CHECK(h.dst_cid == kGuestCid);
    FUZZ_CHECK(h.type == VIRTIO_VSOCK_TYPE_STREAM);
    FUZZ_CHECK(h.op >= VIRTIO_VSOCK_OP_REQUEST && h.op <= VIRTIO_VSOCK_OP_CREDIT_REQUEST);
    FUZZ_CHECK(h.len == p.payload.size());
    if (h.op != VIRTIO_VSOCK_OP_RW) FUZZ_CHECK(h.len == 0);
    if (h.op == VIRTIO_VSOCK_OP_RW) FUZZ_CHECK(h.len > 0);
  }

  std::string uds_;
  virtio::VsockBudgets budgets_;
  EventLoop loop_;
  std::unique_ptr<Ring> rx_;
  std::unique_ptr<Ring> tx_;
  std::unique_ptr<Ring> ev_;
  std::shared_ptr<CountingInterrupt> irq_ = std::make_shared<CountingInterrupt>();
  std::shared_ptr<virtio::Vsock> device_;
  std::unique_ptr<virtio::MmioTransport> transport_;
  std::vector<size_t> free_slots_;
  std::map<uint16_t, RxBuffer> rx_heads_;
  GuestAddress tx_next_ = kTxArea;
  unsigned tx_indirect_ = 0;
  bool broken_ = false;  // corrupt() was called since the last init()
};

}  // namespace husk::fuzz
