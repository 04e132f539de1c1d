// libFuzzer target for virtio-vsock packets from a hostile guest (virtio
// 1.2, 5.10.6): tx-queue packets with any CIDs, ports, op, type, flags,
// credit fields and lengths (lying or not), laid over descriptors in any
// split, with the device behind its mmio transport, real Unix sockets on
// the host side (listeners at <uds>_52 and <uds>_1234 for guest-initiated
// connections, host clients that CONNECT) and the event loop stepped in
// between. The guest also offers receive buffers of odd sizes and layouts,
// consumes what the device sends, breaks its rings (buffers outside memory,
// loops, an avail index past the ring), resets and re-initialises the device.
// Checked: no crash, leak, hang or fd leak; every packet the device puts on
// the rx queue is well-formed (vsock_harness.h); never more connections
// than the budget (the default one, or a tight one the input picks).
//
// Input: u8 setup (bit 0 EVENT_IDX, bit 1 tight budgets), then ops until the
// input ends (see run_op).
// Build and run: `make fuzz`.
#include <algorithm>

#include "tests/fuzz/vsock_harness.h"

namespace {

using namespace husk;
using namespace husk::fuzz;

constexpr size_t kMaxOps = 256;
constexpr size_t kMaxPeers = 8;
constexpr size_t kMaxClients = 4;
constexpr uint32_t kListenPorts[] = {52, 1234};

// The host services guest connections reach: <uds>_52 and <uds>_1234, for
// the whole process (the device's own socket comes and goes with it).
struct Services {
  std::string uds = scratch().file("p.sock");
  std::vector<UniqueFd> listeners;
  Services() {
    for (uint32_t port : kListenPorts) listeners.push_back(listen_unix(uds + "_" + std::to_string(port)));
  }
};

Services& services() {
  static Services* s = new Services();
  return *s;
}

const std::vector<uint8_t>& filler() {
  static std::vector<uint8_t>* f = [] {
    auto* v = new std::vector<uint8_t>(virtio::kMaxPacketPayload + 64);
    for (size_t i = 0; i < v->size(); ++i) (*v)[i] = static_cast<uint8_t>(i * 31 + 7);
    return v;
  }();
  return *f;
}

struct Key {
  uint32_t guest_port;
  uint32_t host_port;
};

class Session {
 public:
  Session(EventLoop loop, uint8_t setup) : h_(services().uds, std::move(loop), setup & 1, setup & 2) {}
  ~Session() {
    // Whatever reached the listeners is closed with the session.
    accept_peers(SIZE_MAX);
    peers_.clear();
  }

  void run_op(Input& in) {
    const uint8_t op = in.u8() % 11;
    FUZZ_TRACE("op %u\n", op);
    switch (op) {
      case 0: send_any(in); break;
      case 1: send_known(in); break;
      case 2: {  // receive buffers
        const size_t count = in.u8() % 17;
        const uint8_t size_sel = in.u8();
        const uint32_t sizes[] = {4096, 44, 45, 10, 64, 1024, 0};
        const uint32_t size = size_sel % 8 == 7 ? in.u16() % 4097 : sizes[size_sel % 8 % 7];
        const uint8_t layout = in.u8();
        h_.add_rx_buffers(count, size, layout, in.u8(), layout & 0x80);
        break;
      }
      case 3: h_.poll(); break;
      case 4: consume(in.flag()); break;
      case 5: peer_action(in); break;
      case 6: {  // a host client asks for a guest port
        if (clients_.size() >= kMaxClients) break;
        UniqueFd c = connect_unix(h_.uds());
        if (!c) break;
        const uint32_t ports[] = {52, 1234, 5000, in.u32()};
        const std::string line = "CONNECT " + std::to_string(ports[in.u8() % 4]) + "\n";
        (void)!::send(c.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        clients_.push_back(std::move(c));
        break;
      }
      case 7: {  // a client writes, reads or goes away
        if (clients_.empty()) break;
        const uint8_t sel = in.u8();
        UniqueFd& c = clients_[sel % clients_.size()];
        if (!c) break;
        if (sel & 0x10) {
          c.reset();
        } else if (sel & 0x20) {
          std::string got;
          (void)drain(c.get(), got);
        } else {
          const auto data = in.bytes(in.u8());
          (void)!::send(c.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        break;
      }
      case 8: h_.notify(in.u8() % 4, in.flag()); break;  // queue 3 does not exist
      case 9: h_.init(in.flag()); break;                  // driver reset and re-init
      case 10: {                                          // a broken ring
        const uint8_t what = in.u8();
        h_.corrupt(what, in.u8() % 3);
        // The guest driver recovers as Linux does: reset and init again.
        if (h_.failed() && (what & 8)) h_.init(what & 16);
        break;
      }
    }
    FUZZ_CHECK(h_.device().connection_count() <= h_.budgets().max_connections);
  }

  [[nodiscard]] bool failed() const { return h_.failed(); }
  void finish() {
    h_.poll();
    consume(true);
  }

 private:
  uint32_t pick_port(Input& in, bool guest_side) {
    const uint8_t sel = in.u8();
    switch (sel % 5) {
      case 0: return kListenPorts[(sel >> 3) & 1];
      case 1: return 1000 + (sel >> 3);
      case 2:
        if (!keys_.empty()) {
          const Key& k = keys_[(sel >> 3) % keys_.size()];
          return guest_side ? k.guest_port : k.host_port;
        }
        return 1u << 30;
      case 3: return (1u << 30) + (sel >> 3);  // where husk numbers its own ports
      default: return in.u32();
    }
  }

  std::span<const uint8_t> payload(Input& in, uint8_t sel) {
    if (sel & 0x80) {  // a large one, up to past the packet limit
      const uint32_t sizes[] = {4096, 65536, virtio::kMaxPacketPayload + 1, 300000};
      const size_t n = std::min<size_t>(sizes[(sel >> 5) & 3], filler().size());
      return std::span<const uint8_t>(filler().data(), n);
    }
    return in.bytes(in.u8());
  }

  void send_packet(Input& in, virtio_vsock_hdr hdr, std::span<const uint8_t> data, uint8_t len_sel) {
    switch (len_sel % 4) {
      case 0: case 1: hdr.len = static_cast<uint32_t>(data.size()); break;
      case 2: hdr.len = static_cast<uint32_t>(data.size()) + (len_sel >> 2); break;  // claims more
      default: hdr.len = in.u32(); break;
    }
    const uint8_t layout = in.u8();
    std::vector<uint32_t> cuts;
    for (int i = 0; i < (layout & 3); ++i) cuts.push_back(in.u8() % 64);
    std::sort(cuts.begin(), cuts.end());
    if (!h_.send(hdr, data, cuts, layout & 4, !(layout & 8), layout & 16)) {
      // Full: let the device catch up, then try once more.
      h_.notify(virtio::Vsock::kTxQueue, false);
      h_.take_tx_used();
      (void)h_.send(hdr, data, cuts, layout & 4, true);
    }
    if (hdr.op == VIRTIO_VSOCK_OP_REQUEST && keys_.size() < 16) keys_.push_back(Key{hdr.src_port, hdr.dst_port});
  }

  // A packet with every header field from the input.
  void send_any(Input& in) {
    const uint8_t sel = in.u8();
    virtio_vsock_hdr hdr{};
    hdr.src_cid = (sel & 1) ? in.u64() : VsockHarness::kGuestCid;
    hdr.dst_cid = (sel & 2) ? in.u64() : virtio::kHostCid;
    hdr.type = (sel & 4) ? in.u16() : VIRTIO_VSOCK_TYPE_STREAM;
    hdr.op = (sel & 8) ? in.u16() : static_cast<uint16_t>(in.u8() % 9);
    hdr.src_port = pick_port(in, true);
    hdr.dst_port = pick_port(in, false);
    hdr.flags = in.u8();
    const uint32_t allocs[] = {0, 4096, 65536, virtio::kConnectionBufAlloc, 1, 0xffffffff, 512, 0};
    hdr.buf_alloc = (sel & 16) ? in.u32() : allocs[in.u8() % 8];
    hdr.fwd_cnt = (sel & 32) ? in.u32() : 0;
    const uint8_t len_sel = in.u8();
    send_packet(in, hdr, payload(in, len_sel), len_sel);
  }

  // A well-formed packet of a chosen op on a key this session has used.
  void send_known(Input& in) {
    const uint8_t sel = in.u8();
    const uint16_t ops[] = {VIRTIO_VSOCK_OP_REQUEST,       VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RW,
                            VIRTIO_VSOCK_OP_RW,            VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_RST,
                            VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_REQUEST};
    Key k{1000u + (sel >> 5), kListenPorts[sel & 1]};
    if (!keys_.empty() && (sel & 2)) k = keys_[in.u8() % keys_.size()];
    const uint16_t op = ops[(sel >> 2) & 7];
    const uint8_t len_sel = in.u8() & 0x83;  // honest lengths, sometimes large
    const auto data = op == VIRTIO_VSOCK_OP_RW ? payload(in, len_sel) : std::span<const uint8_t>();
    const uint32_t flags = op == VIRTIO_VSOCK_OP_SHUTDOWN ? 1 + in.u8() % 3 : 0;
    send_packet(in, VsockHarness::header(op, k.guest_port, k.host_port, 0, 65536, in.u16(), flags), data, len_sel);
  }

  // The guest's receive path: read what the device sent, give the buffers
  // back (when asked), and learn the keys of host-initiated connections.
  void consume(bool refill) {
    const std::vector<RxPacket> packets = h_.receive();
    for (const RxPacket& p : packets) {
      if (p.hdr.op == VIRTIO_VSOCK_OP_REQUEST && keys_.size() < 16) {
        keys_.push_back(Key{p.hdr.dst_port, p.hdr.src_port});
      }
    }
    h_.take_tx_used();
    if (refill && !packets.empty()) h_.add_rx_buffers(packets.size(), 4096, 0, 0, true);
  }

  void accept_peers(size_t max) {
    for (UniqueFd& l : services().listeners) {
      for (;;) {
        UniqueFd fd(::accept4(l.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) break;
        if (peers_.size() < max) peers_.push_back(std::move(fd));
      }
    }
  }

  // What a host service does with a guest connection.
  void peer_action(Input& in) {
    accept_peers(kMaxPeers);
    if (peers_.empty()) return;
    const uint8_t sel = in.u8();
    UniqueFd& p = peers_[sel % peers_.size()];
    if (!p) return;
    switch ((sel >> 4) % 4) {
      case 0: {
        const auto data = in.bytes(in.u8());
        (void)!::send(p.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      case 1: {
        std::string got;
        (void)drain(p.get(), got);
        break;
      }
      case 2: ::shutdown(p.get(), SHUT_WR); break;
      default: p.reset(); break;
    }
  }

  VsockHarness h_;
  std::vector<Key> keys_;
  std::vector<UniqueFd> peers_;
  std::vector<UniqueFd> clients_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  init_target();
  (void)VsockHarness::memory();
  (void)services();
  (void)filler();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  const uint8_t setup = in.u8();
  const size_t fds_before = open_fd_count();
  {
    auto loop = EventLoop::create();
    FUZZ_CHECK(loop.has_value());
    Session s(std::move(*loop), setup);
    for (size_t i = 0; i < kMaxOps && !in.empty(); ++i) s.run_op(in);
    s.finish();
  }
  FUZZ_CHECK(open_fd_count() == fds_before);
  return 0;
}
