// virtio-net (runtime/devices/virtio/net) with real guest memory, a driver
// laying out the rings, a real event loop, the real filter, and a Unix
// socket pair speaking passt's stream protocol as the backend: frames the
// guest sends reach the backend whole (and only when the filter passes
// them), frames from the backend reach the guest's buffers with their
// header, a refused frame is answered in the guest's receive queue, and
// the rate limit holds the queue instead of dropping.
#include "runtime/devices/virtio/net/net.h"

#include <arpa/inet.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/devices/virtio/net/virtio_net_uapi.h"
#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "tests/support/loop_thread.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;
using husk::test::LoopThread;

namespace {

class NullLine : public devices::InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};

constexpr std::array<uint8_t, 6> kGuestMac{0x02, 0x68, 0x6b, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 6> kGatewayMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
constexpr uint32_t kGuestIp = 0x0a00020f;  // 10.0.2.15

uint16_t checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (n & 1) sum += p[n - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// An Ethernet + IPv4 + TCP SYN (proto 6) or UDP (17) frame from the guest.
std::vector<uint8_t> guest_frame(uint32_t dst, uint16_t port, uint8_t proto) {
  const size_t l4 = proto == 6 ? 20 : 8 + 4;
  std::vector<uint8_t> f(14 + 20 + l4, 0);
  std::memcpy(f.data(), kGatewayMac.data(), 6);
  std::memcpy(f.data() + 6, kGuestMac.data(), 6);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t total = static_cast<uint16_t>(20 + l4);
  ip[2] = total >> 8;
  ip[3] = total & 0xff;
  ip[8] = 64;
  ip[9] = proto;
  const uint32_t src = htonl(kGuestIp), d = htonl(dst);
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &d, 4);
  const uint16_t sum = checksum(ip, 20);
  ip[10] = sum >> 8;
  ip[11] = sum & 0xff;
  uint8_t* l = ip + 20;
  l[0] = 0xc3;
  l[1] = 0x50;  // source port 50000
  l[2] = port >> 8;
  l[3] = port & 0xff;
  if (proto == 6) {
    l[12] = 0x50;  // data offset 5
    l[13] = 0x02;  // SYN
  } else {
    l[4] = 0;
    l[5] = 12;
  }
  return f;
}

struct Fixture {
  explicit Fixture(net::FilterConfig config, NetRateLimits rate = {}) {
    REQUIRE(mem);
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    peer.reset(fds[0]);
    auto link = net::make_stream_link(UniqueFd(fds[1]));
    REQUIRE(link);
    config.addressing.guest_mac = kGuestMac;
    config.addressing.guest_ip = net::IpAddress::v4(kGuestIp);
    config.addressing.gateway_ip = net::IpAddress::v4(0x0a000202);
    config.addressing.dns_ip = net::IpAddress::v4(0x0a000203);
    NetDeviceSpec spec;
    spec.mac = kGuestMac;
    spec.filter = std::move(config);
    spec.rate = rate;
    auto created = Net::create(std::move(*link), spec);
    REQUIRE(created);
    dev = *created;
    auto l = EventLoop::create();
    REQUIRE(l);
    loop.emplace(std::move(*l));
    transport = std::make_unique<MmioTransport>(dev, *mem, irq, &*loop);
    driver = std::make_unique<test::MmioDriver>(*transport);
    const test::VirtqDriver* queues[] = {&rx, &tx};
    REQUIRE((driver->init(kFeatureVersion1 | (uint64_t{1} << kVirtioNetFMac), queues) &
             VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  }

  // Puts `frame` behind a zero header in tx descriptor `slot` and notifies.
  void send(const std::vector<uint8_t>& frame, uint16_t slot, bool notify = true) {
    const GuestAddress buf = 0x40000 + uint64_t{slot} * 0x1000;
    REQUIRE(mem->fill(buf, 0, Net::kHeaderSize));
    REQUIRE(mem->write(buf + Net::kHeaderSize, frame));
    tx.set_desc(slot, buf, static_cast<uint32_t>(Net::kHeaderSize + frame.size()));
    tx.publish(slot);
    if (notify) driver->notify(Net::kTxQueue);
  }
  // Gives the device receive buffer `slot` (2 KiB).
  void give_rx(uint16_t slot) {
    rx.set_desc(slot, 0x80000 + uint64_t{slot} * 0x1000, 2048, VRING_DESC_F_WRITE);
    rx.publish(slot);
  }
  std::vector<uint8_t> rx_frame(uint16_t used_slot) {
    const auto e = rx.used_elem(used_slot);
    std::vector<uint8_t> bytes(e.len);
    REQUIRE(mem->read(0x80000 + uint64_t{e.id} * 0x1000, bytes));
    return bytes;
  }
  // The next frame the backend got, within `ms`; empty if none.
  std::vector<uint8_t> backend_frame(int ms = 200) {
    pollfd p{peer.get(), POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return {};
    uint32_t len = 0;
    REQUIRE(::recv(peer.get(), &len, 4, MSG_WAITALL) == 4);
    std::vector<uint8_t> f(ntohl(len));
    REQUIRE(::recv(peer.get(), f.data(), f.size(), MSG_WAITALL) == static_cast<ssize_t>(f.size()));
    return f;
  }
  void backend_send(const std::vector<uint8_t>& frame) {
    const uint32_t len = htonl(static_cast<uint32_t>(frame.size()));
    REQUIRE(::send(peer.get(), &len, 4, 0) == 4);
    REQUIRE(::send(peer.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size()));
  }

  Result<GuestMemory> mem = GuestMemory::create({{0, 1 << 20}});
  test::VirtqDriver rx{*mem, 16, 0x10000};
  test::VirtqDriver tx{*mem, 16, 0x18000};
  UniqueFd peer;
  std::shared_ptr<Net> dev;
  std::shared_ptr<NullLine> irq = std::make_shared<NullLine>();
  std::optional<EventLoop> loop;
  std::unique_ptr<MmioTransport> transport;
  std::unique_ptr<test::MmioDriver> driver;
};

net::FilterConfig open_mode() {
  net::FilterConfig f;
  f.mode = net::NetMode::kOpen;
  return f;
}

}  // namespace

TEST_CASE("net: config space, a sent frame reaches the backend whole, a received one the guest", "[unit][net]") {
  Fixture f(open_mode());
  CHECK(f.dev->device_id() == VIRTIO_ID_NET);
  std::array<uint8_t, 6> mac{};
  f.dev->read_config(0, mac);
  CHECK(mac == kGuestMac);

  const auto frame = guest_frame(0xc0000201, 9, 17);
  f.send(frame, 0);
  CHECK(f.tx.used_idx() == 1);
  CHECK(f.backend_frame() == frame);

  const std::vector<uint8_t> in(100, 0x5a);
  {
    LoopThread loop(*f.loop);
    f.give_rx(0);
    f.driver->notify(Net::kRxQueue);
    std::vector<uint8_t> reply = frame;
    std::swap_ranges(reply.begin(), reply.begin() + 6, reply.begin() + 6);  // to the guest
    // An answer from 192.0.2.1:9 to the guest's port, as the backend would.
    std::swap_ranges(reply.begin() + 26, reply.begin() + 30, reply.begin() + 30);
    std::swap_ranges(reply.begin() + 34, reply.begin() + 36, reply.begin() + 36);
    f.backend_send(reply);
    for (int i = 0; i < 100 && f.rx.used_idx() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(f.rx.used_idx() == 1);
    const auto got = f.rx_frame(0);
    REQUIRE(got.size() == Net::kHeaderSize + reply.size());
    VirtioNetHdrV1 header{};
    std::memcpy(&header, got.data(), sizeof(header));
    CHECK(header.num_buffers == 1);
    CHECK(std::equal(reply.begin(), reply.end(), got.begin() + Net::kHeaderSize));
  }
  const net::NetReport r = f.dev->report();
  CHECK(r.frames_out == 1);
  CHECK(r.frames_in == 1);
  CHECK(r.bytes_out == frame.size());
}

TEST_CASE("net: a refused frame never reaches the backend; the guest gets the filter's ICMP answer", "[unit][net]") {
  net::FilterConfig egress;
  egress.mode = net::NetMode::kEgress;
  Fixture f(egress);
  f.give_rx(0);
  f.send(guest_frame(0xc0000201, 80, 6), 0);
  CHECK(f.tx.used_idx() == 1);
  CHECK(f.backend_frame(100).empty());
  REQUIRE(f.rx.used_idx() == 1);
  const auto got = f.rx_frame(0);
  REQUIRE(got.size() >= Net::kHeaderSize + 14 + 20 + 8);
  const uint8_t* eth = got.data() + Net::kHeaderSize;
  CHECK(std::equal(kGuestMac.begin(), kGuestMac.end(), eth));  // to the guest
  CHECK(eth[14 + 9] == 1);                                      // ICMP
  CHECK(eth[14 + 20] == 3);                                     // destination unreachable
  CHECK(eth[14 + 21] == 13);                                    // administratively prohibited
  const net::NetReport r = f.dev->report();
  CHECK(r.dropped_out == 1);
  REQUIRE(r.refused.size() == 1);
  CHECK(r.refused[0].destination == "192.0.2.1");
  CHECK(r.refused[0].port == 80);
}

TEST_CASE("net: a chain with no frame in it goes back and is counted, the device stays up", "[unit][net]") {
  Fixture f(open_mode());
  f.send({}, 0);  // a header alone
  CHECK(f.tx.used_idx() == 1);
  CHECK(f.transport->activated());
  CHECK(f.dev->report().dropped_out == 1);
  const auto frame = guest_frame(0xc0000201, 9, 17);
  f.send(frame, 1);
  CHECK(f.backend_frame() == frame);
}

TEST_CASE("net: packets_per_second holds the transmit queue and lets it go on with time", "[unit][net]") {
  Fixture f(open_mode(), NetRateLimits{0, 20});
  const auto frame = guest_frame(0xc0000201, 9, 17);
  for (uint16_t i = 0; i < 16; ++i) f.send(frame, i, false);
  f.driver->notify(Net::kTxQueue);
  // The burst (8 frames: 1/20 s of 20/s, at least 8) goes at once.
  const uint16_t first = f.tx.used_idx();
  CHECK(first >= 8);
  CHECK(first <= 9);
  {
    LoopThread loop(*f.loop);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const uint16_t later = f.tx.used_idx();
  CHECK(later > first);        // the timer let more through
  CHECK(later <= first + 8);   // about 20/s: 6 in 0.3 s
  int received = 0;
  while (!f.backend_frame(50).empty()) ++received;
  CHECK(received == later);
}
