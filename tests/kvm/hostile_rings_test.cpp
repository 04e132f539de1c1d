// Hostile guests against the split virtqueue of every device (virtio 1.2,
// 2.7): descriptor loops (direct and indirect), buffers past guest memory,
// lengths near 4 GiB and an available index that jumps by 65535. The tiny
// guest programs the virtio-mmio registers itself; its rings are in guest
// memory. Each case checks that the host held (hostile_harness.h), that the
// broken device says DEVICE_NEEDS_RESET in its Status register, and that
// after a reset it serves a good request again.
#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

constexpr uint16_t kNext = VRING_DESC_F_NEXT;
constexpr uint16_t kWrite = VRING_DESC_F_WRITE;
constexpr uint16_t kIndirect = VRING_DESC_F_INDIRECT;

// A chain of `d`'s request shape whose descriptor `head` is the hostile
// part: for blk a header first, for vsock a packet header first, for rng
// nothing. Returns the index the hostile part must use.
uint16_t lead_in(HostileGuest& g, Dev d) {
  GuestQueue& q = g.queue(d, dev_request_queue(d));
  const uint64_t buf = HostileGuest::buffer(d, 0x1000);
  switch (d) {
    case Dev::kBlk:
      g.program.place_obj(buf, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 0});
      q.desc(0, buf, 16, kNext, 1);
      return 1;
    case Dev::kVsock:
      g.program.place_obj(buf, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999, 16));
      q.desc(0, buf, sizeof(virtio_vsock_hdr), kNext, 1);
      return 1;
    case Dev::kRng:
      return 0;
  }
  return 0;
}

// Device-writable for blk and rng, device-readable for vsock's tx.
uint16_t data_flags(Dev d) { return d == Dev::kVsock ? 0 : kWrite; }

// Runs `attack` against each device in turn, expecting each to fail and
// then to serve a good request after a reset.
template <typename Attack>
HostileRun attack_each(Attack attack, const HostileOptions& options = {}) {
  HostileGuest g;
  for (Dev d : kAllDevs) {
    g.init(d);
    attack(g, d);
    g.expect_failed(d);
    g.probe(d);
  }
  g.finish();
  return run_hostile_guest(g.program, options);
}

void check_each_failed_and_recovered(const HostileRun& run) {
  check_host_held(run);
  for (Dev d : kAllDevs) {
    check_failed(run, d);
    check_probe(run, d);
  }
}

}  // namespace

TEST_CASE("hostile guest: a descriptor chain that loops", "[kvm][hostile]") {
  auto run = attack_each([](HostileGuest& g, Dev d) {
    GuestQueue& q = g.queue(d, dev_request_queue(d));
    const uint16_t first = lead_in(g, d);
    const uint64_t buf = HostileGuest::buffer(d);
    // first -> first+1 -> first: a two-descriptor cycle.
    q.desc(first, buf, 512, data_flags(d) | kNext, static_cast<uint16_t>(first + 1));
    q.desc(first + 1, buf + 512, 512, data_flags(d) | kNext, first);
    g.submit(d, 0);
  });
  check_each_failed_and_recovered(run);
}

TEST_CASE("hostile guest: a descriptor that chains to itself", "[kvm][hostile]") {
  auto run = attack_each([](HostileGuest& g, Dev d) {
    GuestQueue& q = g.queue(d, dev_request_queue(d));
    const uint16_t first = lead_in(g, d);
    q.desc(first, HostileGuest::buffer(d), 512, data_flags(d) | kNext, first);
    g.submit(d, 0);
  });
  check_each_failed_and_recovered(run);
}

TEST_CASE("hostile guest: an indirect descriptor table that loops", "[kvm][hostile]") {
  auto run = attack_each([](HostileGuest& g, Dev d) {
    GuestQueue& q = g.queue(d, dev_request_queue(d));
    const uint64_t table = HostileGuest::buffer(d, 0x2000);
    const uint64_t buf = HostileGuest::buffer(d);
    // The whole request in one indirect table of 4 whose last two entries
    // point at each other.
    struct Raw {
      uint64_t addr;
      uint32_t len;
      uint16_t flags;
      uint16_t next;
    };
    Raw t[4] = {};
    if (d == Dev::kBlk) {
      g.program.place_obj(buf + 0x1000, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 0});
      t[0] = Raw{buf + 0x1000, 16, kNext, 1};
    } else if (d == Dev::kVsock) {
      g.program.place_obj(buf + 0x1000, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999, 16));
      t[0] = Raw{buf + 0x1000, sizeof(virtio_vsock_hdr), kNext, 1};
    } else {
      t[0] = Raw{buf, 16, static_cast<uint16_t>(kWrite | kNext), 1};
    }
    t[1] = Raw{buf, 16, static_cast<uint16_t>(data_flags(d) | kNext), 2};
    t[2] = Raw{buf + 16, 16, static_cast<uint16_t>(data_flags(d) | kNext), 3};
    t[3] = Raw{buf + 32, 16, static_cast<uint16_t>(data_flags(d) | kNext), 2};
    g.program.place_obj(table, t);
    q.desc(0, table, sizeof(t), kIndirect);
    g.submit(d, 0);
  });
  check_each_failed_and_recovered(run);
}
