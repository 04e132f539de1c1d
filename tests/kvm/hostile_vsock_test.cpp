// Hostile guests against virtio-vsock (virtio 1.2, 5.10): a packet flood on
// the tx queue (resets for connections that do not exist, connection
// requests by the thousand to a host port that never accepts, data past
// the credit husk gave), and hostile receive buffers, which the device only
// reads when it has something to send. The device must keep its queues of
// pending packets, its connections and its memory bounded (vsock.h), not
// spin afterwards, and give every fd back when the VM goes.
#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

constexpr Dev V = Dev::kVsock;
constexpr uint16_t kRx = 0;
constexpr uint16_t kTx = 1;
constexpr uint16_t kRing = 256;
constexpr uint64_t kHdr = sizeof(virtio_vsock_hdr);

// Offers `n` receive buffers of 64 bytes on the current round's rx ring,
// waits (bounded) until the device filled them all and reports
// vsock.<tag>rx (used->idx).
void drain_rx(HostileGuest& g, uint16_t n, const std::string& tag) {
  GuestQueue& rx = g.queue(V, kRx);
  for (uint16_t i = 0; i < n; ++i) {
    rx.desc(i, HostileGuest::buffer(V, 0x1000 + 64ull * i), 64, VRING_DESC_F_WRITE);
    rx.avail_entry(i, i);
  }
  rx.publish(n);
  g.driver(V).notify(kRx);
  g.program.wait_eq16(rx.used_idx_addr(), n, kMemoryPollRounds);
  g.program.report16("vsock." + tag + "rx", rx.used_idx_addr());
}

// `rounds` times: make all kRing chains of the tx ring available again
// (avail->idx += kRing), notify, and wait until the device used them all;
// `between` runs after each round. Stops early when the device fails.
template <typename Between>
void flood_rounds(HostileGuest& g, uint32_t rounds, Between between) {
  GuestQueue& tx = g.queue(V, kTx);
  for (uint16_t i = 0; i < kRing; ++i) tx.avail_entry(i, i);
  g.program.repeat(rounds);
  g.program.add16(tx.avail_idx_addr(), kRing);
  g.driver(V).notify(kTx);
  g.program.wait_eq16_mem(tx.used_idx_addr(), tx.avail_idx_addr(), kMemoryPollRounds);
  g.program.break_if_bits32(g.driver(V).reg(VIRTIO_MMIO_STATUS), VIRTIO_CONFIG_S_NEEDS_RESET);
  between();
  g.program.end_repeat();
}

}  // namespace

TEST_CASE("hostile guest: a vsock packet flood", "[kvm][hostile]") {
  constexpr uint32_t kResetRounds = 1000;  // 256000 packets
  constexpr uint32_t kRequestRounds = 8;   // 2048 connection requests
  constexpr uint32_t kOverrunPackets = 32; // 2 MiB against 256 KiB of credit
  HostileGuest g;

  // Round 0: one connection to the host listener (which never reads), then
  // 64 KiB packets far past the credit husk advertised.
  g.init(V, 128);
  {
    GuestQueue& tx = g.queue(V, kTx);
    const uint64_t hdrs = kBulkBase;
    const uint64_t payload = kBulkBase + 0x10000;
    g.program.place_obj(hdrs, guest_packet(VIRTIO_VSOCK_OP_REQUEST, 30000, kVsockListenPort));
    tx.desc(0, hdrs, kHdr);
    tx.avail_entry(0, 0);
    for (uint16_t i = 0; i < kOverrunPackets; ++i) {
      const uint64_t h = hdrs + 64 * (i + 1);
      g.program.place_obj(h, guest_packet(VIRTIO_VSOCK_OP_RW, 30000, kVsockListenPort, 64 * 1024));
      const auto d = static_cast<uint16_t>(1 + 2 * i);
      tx.desc(d, h, kHdr, VRING_DESC_F_NEXT, static_cast<uint16_t>(d + 1));
      tx.desc(static_cast<uint16_t>(d + 1), payload, 64 * 1024);
      tx.avail_entry(static_cast<uint16_t>(i + 1), d);
    }
    tx.publish(kOverrunPackets + 1);
    g.driver(V).notify(kTx);
    g.program.wait_eq16(tx.used_idx_addr(), kOverrunPackets + 1, kMemoryPollRounds);
    g.program.report16("vsock.overrun.used", tx.used_idx_addr());
    g.report_state(V, "overrun.");
    drain_rx(g, 16, "overrun.");
  }

  // Round 1: packets for a connection that does not exist, each asking for
  // a reset, with no receive buffer to put the resets in.
  g.new_round(V);
  g.init(V, kRing);
  {
    const uint64_t h = kBulkBase + 0x20000;
    g.program.place_obj(h, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999));
    for (uint16_t i = 0; i < kRing; ++i) g.queue(V, kTx).desc(i, h, kHdr);
    flood_rounds(g, kResetRounds, [] {});
    g.program.report16("vsock.resets.used", g.queue(V, kTx).used_idx_addr());
    g.report_state(V, "resets.");
    drain_rx(g, 64, "resets.");
  }

  // Round 2: connection requests from 2048 different guest ports to a host
  // port whose listener never accepts.
  g.new_round(V);
  g.init(V, kRing);
  {
    const uint64_t hdrs = kBulkBase + 0x30000;
    for (uint16_t i = 0; i < kRing; ++i) {
      g.program.place_obj(hdrs + 64ull * i, guest_packet(VIRTIO_VSOCK_OP_REQUEST, 20000u + i, kVsockListenPort));
      g.queue(V, kTx).desc(i, hdrs + 64ull * i, kHdr);
    }
    flood_rounds(g, kRequestRounds, [&] {
      for (uint16_t i = 0; i < kRing; ++i) {
        g.program.add32(hdrs + 64ull * i + offsetof(virtio_vsock_hdr, src_port), kRing);
      }
    });
    g.program.report16("vsock.requests.used", g.queue(V, kTx).used_idx_addr());
    g.report_state(V, "requests.");
    drain_rx(g, 64, "requests.");
  }
  g.probe(V);
  g.finish();

  HostileOptions options;
  options.vsock_listener = true;
  const HostileRun run = run_hostile_guest(g.program, options);
  check_host_held(run);
  INFO(run.summary() << "\nconsole:\n" << run.console);
  const uint32_t ok = MmioGuestDriver::kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK;
  CHECK(run.value("vsock.overrun.used") == kOverrunPackets + 1);
  CHECK(run.value("vsock.overrun.status") == ok);
  CHECK(run.value("vsock.resets.used") == ((kResetRounds * kRing) & 0xffff));
  CHECK(run.value("vsock.resets.status") == ok);
  CHECK(run.value("vsock.requests.used") == kRequestRounds * kRing);
  CHECK(run.value("vsock.requests.status") == ok);
  // The device still answers: every receive buffer offered after a flood
  // carries one of the packets it kept for the guest (responses, resets).
  CHECK(run.value("vsock.overrun.rx") >= 2);  // RESPONSE, then at least the RST
  CHECK(run.value("vsock.resets.rx") == 64);
  CHECK(run.value("vsock.requests.rx") == 64);
  // Connections are capped (vsock.h: 1024 in all, fewer for the guest's
  // own): one socket each at most (fds sampled during the flood), all
  // closed with the VM.
  CHECK(run.fds_peak - run.fds_before <= 1024 + 64);
  CHECK(run.fds_after == run.fds_before);
  check_probe(run, V);
}

TEST_CASE("hostile guest: vsock receive buffers that loop or lie", "[kvm][hostile]") {
  // The device pops a receive buffer only when it has a packet for the
  // guest: a packet for a port with no connection makes it send a RST.
  auto provoke = [](HostileGuest& g) {
    g.program.place_obj(HostileGuest::buffer(V, 0x7000), guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999));
    g.queue(V, kTx).desc(0, HostileGuest::buffer(V, 0x7000), kHdr);
    g.submit(V, 0);
  };
  HostileGuest g;
  // a0: a receive chain that loops.
  g.init(V);
  g.queue(V, kRx).desc(0, HostileGuest::buffer(V), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
  g.queue(V, kRx).desc(1, HostileGuest::buffer(V, 64), 64, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
  g.queue(V, kRx).avail_entry(0, 0);
  g.queue(V, kRx).publish(1);
  g.driver(V).notify(kRx);
  provoke(g);
  g.expect_failed(V, "a0.");
  // a1: receive avail->idx jumps by 65535.
  g.new_round(V);
  g.init(V);
  g.queue(V, kRx).desc(0, HostileGuest::buffer(V), 64, VRING_DESC_F_WRITE);
  g.queue(V, kRx).publish(0xffff);
  g.driver(V).notify(kRx);
  provoke(g);
  g.expect_failed(V, "a1.");
  // a2: a receive buffer past the end of guest memory.
  g.new_round(V);
  g.init(V);
  g.queue(V, kRx).desc(0, (kGuestMemoryMib << 20) - 16, 64, VRING_DESC_F_WRITE);
  g.queue(V, kRx).avail_entry(0, 0);
  g.queue(V, kRx).publish(1);
  g.driver(V).notify(kRx);
  provoke(g);
  g.expect_failed(V, "a2.");
  // a3: a receive buffer the device may not write (no WRITE flag), then a
  // good one: not a broken device, the first is returned unfilled.
  g.new_round(V);
  g.init(V);
  g.queue(V, kRx).desc(0, HostileGuest::buffer(V), 64, 0);
  g.queue(V, kRx).desc(1, HostileGuest::buffer(V, 64), 64, VRING_DESC_F_WRITE);
  g.queue(V, kRx).avail_entry(0, 0);
  g.queue(V, kRx).avail_entry(1, 1);
  g.queue(V, kRx).publish(2);
  g.driver(V).notify(kRx);
  provoke(g);
  g.program.wait_eq16(g.queue(V, kRx).used_idx_addr(), 1, kMemoryPollRounds);
  g.program.report16("vsock.a3.rx", g.queue(V, kRx).used_idx_addr());
  g.program.report32("vsock.a3.len0", g.queue(V, kRx).used_len_addr(0));
  g.report_state(V, "a3.");
  g.probe(V);
  g.finish();

  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (const char* tag : {"a0.", "a1.", "a2."}) check_failed(run, V, tag);
  INFO("console:\n" << run.console);
  const uint64_t a3 = run.value("vsock.a3.status");
  CHECK((a3 == (MmioGuestDriver::kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK) || (a3 & VIRTIO_CONFIG_S_NEEDS_RESET)));
  if ((a3 & VIRTIO_CONFIG_S_NEEDS_RESET) == 0) {
    CHECK(run.value("vsock.a3.rx") >= 1);
    CHECK(run.value("vsock.a3.len0") == 0);
  }
  check_probe(run, V);
}
