// Hostile guests that race the device thread: a queue notification lands
// on the event loop while the vCPU goes on writing registers, so a guest
// can reset and set up a device again while the loop is still serving the
// queue it just filled, and can lay its rings over one another so that the
// device's own writes change what it reads next. Nothing here has a single
// right answer for the device; the host has to hold (no crash, hang, spin,
// leak) and each device has to work after a clean reset.
#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

constexpr uint16_t kRing = 256;
constexpr uint32_t kRounds = 100;

// Fills the request ring of `d` with kRing slots of long-running requests:
// rng 64 KiB of entropy each, blk 64 KiB reads, vsock packets that each
// provoke a reset packet. Returns the number of chains.
uint16_t fill_busy_ring(HostileGuest& g, Dev d) {
  GuestQueue& q = g.queue(d, dev_request_queue(d));
  const uint64_t data = kBulkBase + 0x100000ull * dev_slot(d);  // 64 KiB each, shared by every chain
  switch (d) {
    case Dev::kRng:
      for (uint16_t i = 0; i < kRing; ++i) q.desc(i, data, 64 * 1024, VRING_DESC_F_WRITE);
      break;
    case Dev::kBlk: {
      const uint64_t hdr = HostileGuest::buffer(d);
      g.program.place_obj(hdr, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 0});
      for (uint16_t c = 0; c < kRing / 3; ++c) {
        const auto h = static_cast<uint16_t>(3 * c);
        q.desc(h, hdr, 16, VRING_DESC_F_NEXT, static_cast<uint16_t>(h + 1));
        q.desc(static_cast<uint16_t>(h + 1), data, 64 * 1024, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
               static_cast<uint16_t>(h + 2));
        q.desc(static_cast<uint16_t>(h + 2), HostileGuest::buffer(d, 0x100 + c), 1, VRING_DESC_F_WRITE);
      }
      for (uint16_t s = 0; s < kRing; ++s) q.avail_entry(s, static_cast<uint16_t>(3 * (s % (kRing / 3))));
      return kRing;
    }
    case Dev::kVsock: {
      const uint64_t pkt = HostileGuest::buffer(d);
      g.program.place_obj(pkt, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999));
      for (uint16_t i = 0; i < kRing; ++i) q.desc(i, pkt, sizeof(virtio_vsock_hdr));
      break;
    }
  }
  for (uint16_t s = 0; s < kRing; ++s) q.avail_entry(s, s);
  return kRing;
}

}  // namespace

TEST_CASE("hostile guest: resets and new set-ups while the device serves a full queue", "[kvm][hostile]") {
  HostileGuest g;
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    g.init(d, kRing);
    const uint16_t chains = fill_busy_ring(g, d);
    GuestQueue& q = g.queue(d, dev_request_queue(d));
    // Every round: a full ring made available, the notification, then
    // after a wait that differs from round to round (0.05 to 5 ms) a reset
    // and a new set-up on the same rings (the device's avail position
    // restarts at 0, the guest's index is written afresh).
    g.program.repeat(kRounds);
    q.publish(chains);
    drv.notify(dev_request_queue(d));
    g.program.delay_by_round(4);
    drv.status(0);
    drv.negotiate(kFeatureVersion1);
    for (uint16_t i = 0; i < dev_queue_count(d); ++i) drv.setup_queue(i, g.queue(d, i));
    drv.driver_ok();
    q.publish(0);
    g.program.end_repeat();
    g.report_state(d);
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    INFO(dev_name(d) << "; console:\n" << run.console);
    // The last set-up was a proper one: the device runs (a reset that lost
    // the race to a failing request would show NEEDS_RESET instead).
    const uint64_t status = run.value(std::string(dev_name(d)) + ".status");
    CHECK((status == (MmioGuestDriver::kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK) ||
           (status & VIRTIO_CONFIG_S_NEEDS_RESET) != 0));
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: rings laid over one another", "[kvm][hostile]") {
  // Descriptor table, available ring and used ring of the request queue at
  // one address: the device's used-ring writes land in the descriptors and
  // the guest's avail index in descriptor 0's address. Four requests, one
  // after the other; whatever the device makes of them, the host holds.
  HostileGuest g;
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    g.init(d);
    const GuestQueue& q = g.queue(d, dev_request_queue(d));
    g.place_good_request(d);
    drv.write(VIRTIO_MMIO_STATUS, 0);
    drv.negotiate(kFeatureVersion1);
    for (uint16_t i = 0; i < dev_queue_count(d); ++i) {
      if (i != dev_request_queue(d)) drv.setup_queue(i, g.queue(d, i));
    }
    drv.write(VIRTIO_MMIO_QUEUE_SEL, dev_request_queue(d));
    drv.write(VIRTIO_MMIO_QUEUE_NUM, q.size());
    for (uint32_t reg : {VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_USED_LOW}) {
      drv.write(reg, static_cast<uint32_t>(q.desc_table()));
    }
    drv.write(VIRTIO_MMIO_QUEUE_READY, 1);
    drv.driver_ok();
    for (uint16_t i = 1; i <= 4; ++i) {
      q.publish(i);
      drv.notify(dev_request_queue(d));
      g.settle();
    }
    g.report_state(d);
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) check_probe(run, d);
}
