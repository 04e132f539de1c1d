// virtio-vsock's guest side against real anonymous guest memory and real
// Unix sockets: connection set-up to <uds>_P, data, refusals, and hostile
// packets (lying lengths, credit overruns, unknown connections).
#include "runtime/devices/virtio/vsock/vsock.h"

#include <linux/virtio_config.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include <catch2/catch.hpp>

#include "runtime/common/event_loop.h"
#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "tests/support/loop_thread.h"
#include "tests/support/temp_dir.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;
using husk::test::LoopThread;

namespace {

constexpr uint64_t kGuestCid = 3;
constexpr GuestAddress kRxBuffers = 0x40000;  // 8 buffers of 4 KiB
constexpr GuestAddress kTxPacket = 0x60000;

class NullLine : public devices::InterruptLine {
 public:
  void trigger() override {}
};

struct Fixture {
  explicit Fixture(Vsock::Budgets budgets = {}) {
    auto v = Vsock::create(kGuestCid, dir.file("v.sock"), budgets);
    REQUIRE(v);
    vsock = *v;
    auto l = EventLoop::create();
    REQUIRE(l);
    loop.emplace(std::move(*l));
    transport = std::make_unique<MmioTransport>(vsock, *mem, std::make_shared<NullLine>(), &*loop);
    test::MmioDriver driver(*transport);
    const test::VirtqDriver* queues[] = {&rx, &tx, &ev};
    REQUIRE((driver.init(kFeatureVersion1, queues) & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
    for (uint16_t i = 0; i < 8; ++i) {
      rx.set_desc(i, kRxBuffers + i * 4096ull, 4096, VRING_DESC_F_WRITE);
      rx.publish(i);
    }
    driver.notify(Vsock::kRxQueue);
  }

  // Sends one guest packet with `payload`; `claimed_len` overrides hdr.len.
  void send(uint16_t op, uint32_t src_port, uint32_t dst_port, const std::string& payload = "",
            int64_t claimed_len = -1, uint32_t buf_alloc = 65536, uint32_t fwd_cnt = 0) {
    virtio_vsock_hdr hdr{};
    hdr.src_cid = kGuestCid;
    hdr.dst_cid = kHostCid;
    hdr.src_port = src_port;
    hdr.dst_port = dst_port;
    hdr.len = claimed_len >= 0 ? static_cast<uint32_t>(claimed_len) : static_cast<uint32_t>(payload.size());
    hdr.type = VIRTIO_VSOCK_TYPE_STREAM;
    hdr.op = op;
    hdr.buf_alloc = buf_alloc;
    hdr.fwd_cnt = fwd_cnt;
    const uint16_t slot = static_cast<uint16_t>(tx.avail_idx() % 16);
    const GuestAddress at = kTxPacket + slot * 0x1000ull;
    REQUIRE(mem->write_obj(at, hdr));
    REQUIRE(mem->write(at + sizeof(hdr), std::span(reinterpret_cast<const uint8_t*>(payload.data()), payload.size())));
    tx.set_desc(slot, at, static_cast<uint32_t>(sizeof(hdr) + payload.size()));
    tx.publish(slot);
    test::MmioDriver(*transport).notify(Vsock::kTxQueue);
  }

  // The packets the device has put on the rx queue so far.
  std::vector<virtio_vsock_hdr> received() {
    std::vector<virtio_vsock_hdr> out;
    for (uint16_t i = 0; i < rx.used_idx(); ++i) {
      const auto elem = rx.used_elem(i);
      auto hdr = mem->read_obj<virtio_vsock_hdr>(kRxBuffers + elem.id * 4096ull);
      REQUIRE(hdr);
      out.push_back(*hdr);
    }
    return out;
  }

  int listen_on_port(uint32_t port) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = dir.file("v.sock_" + std::to_string(port));
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    return fd;
  }

  test::TempDir dir;
  Result<GuestMemory> mem = GuestMemory::create({{0, 1 << 20}});
  test::VirtqDriver rx{*mem, 16, 0x10000};
  test::VirtqDriver tx{*mem, 16, 0x18000};
  test::VirtqDriver ev{*mem, 16, 0x20000};
  std::shared_ptr<Vsock> vsock;
  std::optional<EventLoop> loop;
  std::unique_ptr<MmioTransport> transport;
};

// A host client of the device's socket.
UniqueFd connect_client(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  return fd;
}

// Whether the device closed `fd` (EOF or reset) within `ms`.
bool closed_within(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return false;
  char c = 0;
  return ::read(fd, &c, 1) <= 0;
}

}  // namespace

TEST_CASE("vsock: an over-long CONNECT line closes that client, and the device serves the next", "[unit]") {
  // Once a use-after-free: the line's length was read from the erased connection.
  Fixture f;
  UniqueFd good;  // outlives the loop: its hang-up would end the connection
  {
    LoopThread loop(*f.loop);
    UniqueFd bad = connect_client(f.dir.file("v.sock"));
    const std::string line = "CONNECT " + std::string(200, '9');
    REQUIRE(::write(bad.get(), line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    CHECK(closed_within(bad.get(), 5000));
    good = connect_client(f.dir.file("v.sock"));
    REQUIRE(::write(good.get(), "CONNECT 5000\n", 13) == 13);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(f.vsock->connection_count() == 1);  // the good one, waiting for the guest
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_REQUEST);
  CHECK(f.received().back().dst_port == 5000);
}

TEST_CASE("vsock: a client that hangs up while the guest has not answered is closed, without spinning", "[unit]") {
  Fixture f;
  UniqueFd client;
  {
    LoopThread loop(*f.loop);
    client = connect_client(f.dir.file("v.sock"));
    REQUIRE(::write(client.get(), "CONNECT 5001\n", 13) == 13);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  REQUIRE(f.vsock->connection_count() == 1);
  REQUIRE(f.received().back().op == VIRTIO_VSOCK_OP_REQUEST);
  {
    LoopThread loop(*f.loop);
    const double before = loop.cpu_ms();
    client.reset();  // EPOLLHUP, reported even though nothing is watched
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(loop.cpu_ms() - before < 150);  // a spinning loop would use ~500 ms
  }
  CHECK(f.vsock->connection_count() == 0);
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_RST);  // the guest's pending REQUEST is refused
}

TEST_CASE("vsock: the device reports the guest CID", "[unit]") {
  Fixture f;
  uint64_t cid = 0;
  f.vsock->read_config(0, std::span(reinterpret_cast<uint8_t*>(&cid), 8));
  CHECK(cid == kGuestCid);
}

TEST_CASE("vsock: a guest connection to a port nobody listens on is reset", "[unit]") {
  Fixture f;
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1000, 5000);
  auto packets = f.received();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op == VIRTIO_VSOCK_OP_RST);
  CHECK(packets[0].dst_port == 1000);
  CHECK(packets[0].src_port == 5000);
  CHECK(f.vsock->connection_count() == 0);
}

TEST_CASE("vsock: a guest connection to <uds>_P is accepted and its data arrives", "[unit]") {
  Fixture f;
  int listener = f.listen_on_port(5000);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1000, 5000);
  auto packets = f.received();
  REQUIRE(packets.size() == 1);
  CHECK(packets[0].op == VIRTIO_VSOCK_OP_RESPONSE);
  CHECK(packets[0].buf_alloc == kConnectionBufAlloc);
  int host = ::accept(listener, nullptr, nullptr);
  REQUIRE(host >= 0);
  f.send(VIRTIO_VSOCK_OP_RW, 1000, 5000, "hello host");
  char buf[64] = {};
  CHECK(::read(host, buf, sizeof(buf)) == 10);
  CHECK(std::string(buf) == "hello host");
  ::close(host);
  ::close(listener);
}

TEST_CASE("vsock: a packet claiming more payload than it carries is refused", "[unit]") {
  Fixture f;
  int listener = f.listen_on_port(5001);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1001, 5001);
  int host = ::accept(listener, nullptr, nullptr);
  REQUIRE(f.vsock->connection_count() == 1);
  f.send(VIRTIO_VSOCK_OP_RW, 1001, 5001, "abc", 4000);  // says 4000, carries 3
  CHECK(f.vsock->connection_count() == 0);
  auto packets = f.received();
  CHECK(packets.back().op == VIRTIO_VSOCK_OP_RST);
  ::close(host);
  ::close(listener);
}

TEST_CASE("vsock: a guest that overruns its credit is reset, not buffered", "[unit]") {
  Fixture f;
  int listener = f.listen_on_port(5002);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1002, 5002);
  int host = ::accept(listener, nullptr, nullptr);  // accepted, never read
  REQUIRE(f.vsock->connection_count() == 1);
  // Shrink the host socket's buffer so data piles up in the device.
  int one = 4096;
  ::setsockopt(host, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
  const std::string chunk(3000, 'x');
  size_t sent = 0;
  while (f.vsock->connection_count() == 1 && sent < 8u * 1024 * 1024) {
    f.send(VIRTIO_VSOCK_OP_RW, 1002, 5002, chunk);
    sent += chunk.size();
  }
  // The guest ignored the advertised buf_alloc: the connection is reset
  // before the device ever holds more than that.
  CHECK(f.vsock->connection_count() == 0);
  // What the host socket itself buffers comes on top of buf_alloc.
  CHECK(sent <= kConnectionBufAlloc + 1024 * 1024);
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_RST);
  ::close(host);
  ::close(listener);
}

TEST_CASE("vsock: a shutdown of both directions closes the host socket and resets", "[unit]") {
  Fixture f;
  int listener = f.listen_on_port(5004);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1004, 5004);
  int host = ::accept(listener, nullptr, nullptr);
  f.send(VIRTIO_VSOCK_OP_RW, 1004, 5004, "last words");
  f.send(VIRTIO_VSOCK_OP_SHUTDOWN, 1004, 5004, "", -1);
  // flags are 0 in send(); set them by sending a SHUTDOWN through the raw path
  CHECK(f.vsock->connection_count() == 1);
  virtio_vsock_hdr hdr{};
  hdr.src_cid = kGuestCid;
  hdr.dst_cid = kHostCid;
  hdr.src_port = 1004;
  hdr.dst_port = 5004;
  hdr.type = VIRTIO_VSOCK_TYPE_STREAM;
  hdr.op = VIRTIO_VSOCK_OP_SHUTDOWN;
  hdr.flags = VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND;
  const uint16_t slot = static_cast<uint16_t>(f.tx.avail_idx() % 16);
  REQUIRE(f.mem->write_obj(kTxPacket + slot * 0x1000ull, hdr));
  f.tx.set_desc(slot, kTxPacket + slot * 0x1000ull, sizeof(hdr));
  f.tx.publish(slot);
  test::MmioDriver(*f.transport).notify(Vsock::kTxQueue);
  CHECK(f.vsock->connection_count() == 0);
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_RST);
  char buf[64] = {};
  CHECK(::read(host, buf, sizeof(buf)) == 10);  // the data before the shutdown
  CHECK(::read(host, buf, sizeof(buf)) == 0);   // then end of file
  ::close(host);
  ::close(listener);
}

TEST_CASE("vsock: packets for unknown connections or from the wrong CID get RST", "[unit]") {
  Fixture f;
  f.send(VIRTIO_VSOCK_OP_RW, 1003, 5003, "data");
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_RST);
  const size_t before = f.received().size();
  f.send(VIRTIO_VSOCK_OP_RST, 1003, 5003);  // never answered
  CHECK(f.received().size() == before);
}

TEST_CASE("vsock: a host client that never sends its CONNECT line is closed at its deadline", "[unit]") {
  Vsock::Budgets budgets;
  budgets.connect_line_timeout_ms = 300;
  Fixture f(budgets);
  LoopThread loop(*f.loop);
  UniqueFd silent = connect_client(f.dir.file("v.sock"));
  UniqueFd partial = connect_client(f.dir.file("v.sock"));
  REQUIRE(::write(partial.get(), "CONN", 4) == 4);
  CHECK(closed_within(silent.get(), 5000));
  CHECK(closed_within(partial.get(), 5000));
}

TEST_CASE("vsock: a REQUEST the guest never answers ends the client and resets the guest side", "[unit]") {
  Vsock::Budgets budgets;
  budgets.guest_response_timeout_ms = 300;
  Fixture f(budgets);
  UniqueFd client;
  {
    LoopThread loop(*f.loop);
    client = connect_client(f.dir.file("v.sock"));
    REQUIRE(::write(client.get(), "CONNECT 5000\n", 13) == 13);
    CHECK(closed_within(client.get(), 5000));
  }
  CHECK(f.vsock->connection_count() == 0);
  auto packets = f.received();
  REQUIRE(packets.size() == 2);
  CHECK(packets[0].op == VIRTIO_VSOCK_OP_REQUEST);
  CHECK(packets[1].op == VIRTIO_VSOCK_OP_RST);
  CHECK(packets[1].dst_port == 5000);
}

TEST_CASE("vsock: clients beyond the handshake budget are closed at once", "[unit]") {
  Vsock::Budgets budgets;
  budgets.max_handshakes = 4;
  Fixture f(budgets);
  LoopThread loop(*f.loop);
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 10; ++i) clients.push_back(connect_client(f.dir.file("v.sock")));
  int closed = 0;
  for (int i = 0; i < 10; ++i) closed += closed_within(clients[static_cast<size_t>(i)].get(), 1000) ? 1 : 0;
  CHECK(closed == 6);
}

TEST_CASE("vsock: control packets owed to a guest that gives no receive buffers stay bounded", "[unit]") {
  Fixture f;
  // Eight packets to connections that do not exist use up the eight
  // receive buffers with resets; everything after waits for more.
  for (uint32_t i = 0; i < 8; ++i) f.send(VIRTIO_VSOCK_OP_RW, 2000 + i, 6000, "x");
  REQUIRE(f.received().size() == 8);
  for (uint32_t i = 0; i < 2000; ++i) f.send(VIRTIO_VSOCK_OP_RW, 3000 + i, 6000, "x");
  CHECK(f.vsock->pending_control() == Vsock::kMaxPendingRst);
  // One connection asking for credit again and again owes one answer.
  int listener = f.listen_on_port(5005);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1005, 5005);
  for (int i = 0; i < 100; ++i) f.send(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1005, 5005);
  CHECK(f.vsock->pending_control() == Vsock::kMaxPendingRst + 2);  // its RESPONSE and one CREDIT_UPDATE
  ::close(listener);
}

TEST_CASE("vsock: a host peer that hangs up with data the guest has no credit for does not spin the loop",
          "[unit]") {
  Fixture f;
  int listener = f.listen_on_port(5006);
  // buf_alloc 0: the guest takes nothing.
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1006, 5006, "", -1, 0);
  REQUIRE(f.received().back().op == VIRTIO_VSOCK_OP_RESPONSE);
  int host = ::accept(listener, nullptr, nullptr);
  REQUIRE(host >= 0);
  REQUIRE(::write(host, "unread", 6) == 6);
  ::close(host);  // EPOLLHUP with data still in the socket
  {
    LoopThread loop(*f.loop);
    const double before = loop.cpu_ms();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(loop.cpu_ms() - before < 150);  // a spinning loop would use ~500 ms
  }
  REQUIRE(f.vsock->connection_count() == 1);
  // Credit arrives: the data goes to the guest, then the end of the stream.
  const size_t before = f.received().size();
  {
    LoopThread loop(*f.loop);
    f.send(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1006, 5006, "", -1, 65536);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  auto packets = f.received();
  REQUIRE(packets.size() >= before + 2);
  CHECK(packets[before].op == VIRTIO_VSOCK_OP_RW);
  CHECK(packets[before].len == 6);
  CHECK(packets[before + 1].op == VIRTIO_VSOCK_OP_SHUTDOWN);
  ::close(listener);
}

TEST_CASE("vsock: a guest that opens connections without end leaves room for host clients", "[unit]") {
  Vsock::Budgets budgets;
  budgets.max_guest_connections = 3;
  Fixture f(budgets);
  int listener = f.listen_on_port(5007);
  for (uint32_t i = 0; i < 6; ++i) f.send(VIRTIO_VSOCK_OP_REQUEST, 1100 + i, 5007);
  CHECK(f.vsock->connection_count() == 3);
  auto packets = f.received();
  REQUIRE(packets.size() == 6);
  CHECK(packets[2].op == VIRTIO_VSOCK_OP_RESPONSE);
  CHECK(packets[3].op == VIRTIO_VSOCK_OP_RST);
  // A host client still gets through to the guest.
  UniqueFd client;
  {
    LoopThread loop(*f.loop);
    client = connect_client(f.dir.file("v.sock"));
    REQUIRE(::write(client.get(), "CONNECT 52\n", 11) == 11);
    for (int i = 0; i < 100 && f.vsock->connection_count() < 4; ++i) usleep(10000);
  }
  CHECK(f.vsock->connection_count() == 4);
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_REQUEST);
  ::close(listener);
}

TEST_CASE("vsock: guest bytes held for host sockets that do not read are bounded in all", "[unit]") {
  // Per connection the credit bounds them; across connections a connection
  // that adds bytes past max_held_bytes is reset, and the others go on (the
  // tx queue they share never waits).
  Vsock::Budgets budgets;
  budgets.max_held_bytes = 16 * 1024;
  Fixture f(budgets);
  int listener = f.listen_on_port(5008);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1008, 5008);
  int hoarder = ::accept(listener, nullptr, nullptr);  // accepted, never read
  REQUIRE(hoarder >= 0);
  f.send(VIRTIO_VSOCK_OP_REQUEST, 1009, 5008);
  int reader = ::accept(listener, nullptr, nullptr);
  REQUIRE(reader >= 0);
  REQUIRE(f.vsock->connection_count() == 2);
  const std::string chunk(3000, 'y');
  size_t sent = 0;
  while (f.vsock->connection_count() == 2 && sent < 8u * 1024 * 1024) {
    f.send(VIRTIO_VSOCK_OP_RW, 1008, 5008, chunk);
    sent += chunk.size();
  }
  CHECK(f.vsock->connection_count() == 1);
  CHECK(f.received().back().op == VIRTIO_VSOCK_OP_RST);
  CHECK(f.received().back().dst_port == 1008);
  CHECK(f.vsock->held_bytes() == 0);
  CHECK(f.tx.used_idx() == f.tx.avail_idx());  // nothing waits on the queue
  // The other connection still moves data.
  f.send(VIRTIO_VSOCK_OP_RW, 1009, 5008, "still here");
  char buf[32] = {};
  CHECK(::read(reader, buf, sizeof(buf)) == 10);
  ::close(hoarder);
  ::close(reader);
  ::close(listener);
}

TEST_CASE("vsock: a restored device tells its guest the transport was reset", "[unit]") {
  Fixture f;
  // The driver's event buffers, as Linux posts them at probe.
  constexpr GuestAddress kEventBuffers = 0x70000;
  for (uint16_t i = 0; i < 4; ++i) {
    f.ev.set_desc(i, kEventBuffers + i * 16ull, 4, VRING_DESC_F_WRITE);
    f.ev.publish(i);
  }
  REQUIRE(f.mem->write_obj<uint32_t>(kEventBuffers, 0xffffffffu));
  const TransportState saved = f.transport->state();
  REQUIRE(saved.device == DeviceState::kActive);

  // A new device on the same memory, as a restored VM has it.
  auto v = Vsock::create(kGuestCid, f.dir.file("restored.sock"));
  REQUIRE(v);
  REQUIRE((*v)->restore_state(f.vsock->state()));
  auto loop = EventLoop::create();
  REQUIRE(loop);
  MmioTransport restored(*v, *f.mem, std::make_shared<NullLine>(), &*loop);
  REQUIRE(restored.restore(saved));
  CHECK(restored.activated());
  CHECK(restored.state().queues.size() == 3);
  CHECK(f.ev.used_idx() == 1);
  CHECK(f.ev.used_elem(0).len == 4);
  auto event = f.mem->read_obj<uint32_t>(kEventBuffers + f.ev.used_elem(0).id * 16ull);
  REQUIRE(event);
  CHECK(*event == VIRTIO_VSOCK_EVENT_TRANSPORT_RESET);
  // The rx queue goes on where it was.
  CHECK(restored.state().queues[Vsock::kRxQueue].next_avail == saved.queues[Vsock::kRxQueue].next_avail);
  restored.detach();
}

TEST_CASE("vsock: a snapshot of another guest CID is refused", "[unit]") {
  test::TempDir dir;
  auto v = Vsock::create(kGuestCid, dir.file("v.sock"));
  REQUIRE(v);
  auto refused = (*v)->restore_state(Vsock::State{kGuestCid + 1, 1u << 30});
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message.find("guest CID") != std::string::npos);
}
