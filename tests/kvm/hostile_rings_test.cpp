// Hostile guests against the split virtqueue of every device (virtio 1.2,
// 2.7): descriptor loops (direct and indirect), buffers past guest memory,
// lengths near 4 GiB and an available index that jumps by 65535. The tiny
// guest programs the virtio-mmio registers itself; its rings are in guest
// memory. Each case checks that the host held (hostile_harness.h: no spin,
// bounded RSS, no fd, thread or file left), that each broken device says
// DEVICE_NEEDS_RESET in its Status register, and that after a reset it
// serves a good request again.
#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

constexpr uint16_t kNext = VRING_DESC_F_NEXT;
constexpr uint16_t kWrite = VRING_DESC_F_WRITE;
constexpr uint16_t kIndirect = VRING_DESC_F_INDIRECT;
constexpr uint64_t kMemoryEnd = kGuestMemoryMib << 20;

struct RawDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

// The well-formed start of a request of `d`, in descriptor 0 of its
// request queue: a blk header or a vsock packet header (rng needs none).
// Returns the first descriptor index left for the hostile part.
uint16_t lead_in(HostileGuest& g, Dev d) {
  GuestQueue& q = g.queue(d, dev_request_queue(d));
  const uint64_t buf = HostileGuest::buffer(d, 0x7000);
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

// The same start as an indirect table entry.
RawDesc lead_in_entry(HostileGuest& g, Dev d) {
  const uint64_t buf = HostileGuest::buffer(d, 0x7000);
  if (d == Dev::kBlk) {
    g.program.place_obj(buf, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 0});
    return RawDesc{buf, 16, kNext, 1};
  }
  if (d == Dev::kVsock) {
    g.program.place_obj(buf, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999, 16));
    return RawDesc{buf, sizeof(virtio_vsock_hdr), kNext, 1};
  }
  return RawDesc{HostileGuest::buffer(d, 0x7000), 16, static_cast<uint16_t>(kWrite | kNext), 1};
}

// Data descriptors: device-writable for blk and rng, readable for vsock's tx.
uint16_t data_flags(Dev d) { return d == Dev::kVsock ? 0 : kWrite; }

// A request of `d` as chain 0 whose data part is one descriptor at `addr`
// of `len` bytes (plus blk's status byte).
void place_one_buffer(HostileGuest& g, Dev d, uint64_t addr, uint32_t len) {
  GuestQueue& q = g.queue(d, dev_request_queue(d));
  const uint16_t i = lead_in(g, d);
  if (d == Dev::kBlk) {
    q.desc(i, addr, len, kWrite | kNext, static_cast<uint16_t>(i + 1));
    q.desc(i + 1, HostileGuest::buffer(d, 0x7800), 1, kWrite);
  } else {
    q.desc(i, addr, len, data_flags(d));
  }
}

// The same, submitted at once.
void submit_one_buffer(HostileGuest& g, Dev d, uint64_t addr, uint32_t len) {
  place_one_buffer(g, d, addr, len);
  g.submit(d, 0);
}

using Attack = void (*)(HostileGuest&, Dev);

// Each attack against each device, each on fresh rings after a fresh init;
// the device should fail every time, and serve a good request after the
// last reset. Tags: "a0.", "a1.", ...
HostileRun attack_each(std::initializer_list<Attack> attacks, uint16_t ring_size = 0) {
  HostileGuest g;
  for (Dev d : kAllDevs) {
    int n = 0;
    for (Attack attack : attacks) {
      if (n > 0) g.new_round(d);
      g.init(d, ring_size);
      attack(g, d);
      g.expect_failed(d, "a" + std::to_string(n++) + ".");
    }
    g.probe(d);
  }
  g.finish();
  return run_hostile_guest(g.program);
}

void check_each_failed_and_recovered(const HostileRun& run, size_t attacks) {
  check_host_held(run);
  for (Dev d : kAllDevs) {
    for (size_t n = 0; n < attacks; ++n) check_failed(run, d, "a" + std::to_string(n) + ".");
    check_probe(run, d);
  }
}

}  // namespace

TEST_CASE("hostile guest: descriptor chains that loop", "[kvm][hostile]") {
  auto run = attack_each({
      // first -> first+1 -> first: a two-descriptor cycle.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        const uint16_t first = lead_in(g, d);
        const uint64_t buf = HostileGuest::buffer(d);
        q.desc(first, buf, 512, data_flags(d) | kNext, static_cast<uint16_t>(first + 1));
        q.desc(first + 1, buf + 512, 512, data_flags(d) | kNext, first);
        g.submit(d, 0);
      },
      // A descriptor that is its own next.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        const uint16_t first = lead_in(g, d);
        q.desc(first, HostileGuest::buffer(d), 512, data_flags(d) | kNext, first);
        g.submit(d, 0);
      },
      // The whole ring as one chain that wraps to its head: longer than
      // the queue, every index in range.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        const uint16_t first = lead_in(g, d);
        for (uint16_t i = first; i < q.size(); ++i) {
          q.desc(i, HostileGuest::buffer(d, 64ull * i), 64, data_flags(d) | kNext,
                 static_cast<uint16_t>((i + 1) % q.size()));
        }
        g.submit(d, 0);
      },
  });
  check_each_failed_and_recovered(run, 3);
}

TEST_CASE("hostile guest: indirect descriptor tables that loop or nest", "[kvm][hostile]") {
  auto run = attack_each({
      // A table of 4 whose last two entries point at each other.
      [](HostileGuest& g, Dev d) {
        const uint64_t table = HostileGuest::buffer(d, 0x2000);
        const uint64_t buf = HostileGuest::buffer(d);
        const uint16_t f = static_cast<uint16_t>(data_flags(d) | kNext);
        const RawDesc t[4] = {lead_in_entry(g, d), RawDesc{buf, 16, f, 2}, RawDesc{buf + 16, 16, f, 3},
                              RawDesc{buf + 32, 16, f, 2}};
        g.program.place_obj(table, t);
        g.queue(d, dev_request_queue(d)).desc(0, table, sizeof(t), kIndirect);
        g.submit(d, 0);
      },
      // A table entry that is itself indirect and points back at the table.
      [](HostileGuest& g, Dev d) {
        const uint64_t table = HostileGuest::buffer(d, 0x2000);
        const RawDesc t[2] = {lead_in_entry(g, d), RawDesc{table, 32, kIndirect, 0}};
        g.program.place_obj(table, t);
        g.queue(d, dev_request_queue(d)).desc(0, table, sizeof(t), kIndirect);
        g.submit(d, 0);
      },
      // Two ring descriptors naming the same indirect table, chained in a
      // loop (INDIRECT together with NEXT).
      [](HostileGuest& g, Dev d) {
        const uint64_t table = HostileGuest::buffer(d, 0x2000);
        const RawDesc t[1] = {lead_in_entry(g, d)};
        g.program.place_obj(table, t);
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        q.desc(0, table, sizeof(t), kIndirect | kNext, 1);
        q.desc(1, table, sizeof(t), kIndirect | kNext, 0);
        g.submit(d, 0);
      },
  });
  check_each_failed_and_recovered(run, 3);
}

TEST_CASE("hostile guest: buffers past the end of guest memory", "[kvm][hostile]") {
  auto run = attack_each({
      // Straddles the end of RAM.
      [](HostileGuest& g, Dev d) { submit_one_buffer(g, d, kMemoryEnd - 256, 512); },
      // Wholly past it, in the MMIO gap: the device's own registers.
      [](HostileGuest& g, Dev d) { submit_one_buffer(g, d, kVirtioMmioBase + dev_slot(d) * kVirtioMmioWindow, 512); },
      // Wraps around the 64-bit address space back to page 0.
      [](HostileGuest& g, Dev d) { submit_one_buffer(g, d, 0xfffffffffffffe00ull, 0x1000); },
      // An indirect table that lies past the end.
      [](HostileGuest& g, Dev d) {
        g.queue(d, dev_request_queue(d)).desc(0, kMemoryEnd + 0x1000, 64, kIndirect);
        g.submit(d, 0);
      },
  });
  check_each_failed_and_recovered(run, 4);
}

TEST_CASE("hostile guest: lengths near 4 GiB", "[kvm][hostile]") {
  auto run = attack_each({
      // One buffer of 4 GiB - 1 from 1 MiB: past guest memory.
      [](HostileGuest& g, Dev d) { submit_one_buffer(g, d, 0x100000, 0xffffffffu); },
      // One buffer whose end overflows 32 bits: 0xfffff000 + 0x2000.
      [](HostileGuest& g, Dev d) { submit_one_buffer(g, d, 0xfffff000u, 0x2000); },
      // An indirect table of 4 GiB - 16 bytes (268 million entries).
      [](HostileGuest& g, Dev d) {
        g.queue(d, dev_request_queue(d)).desc(0, HostileGuest::buffer(d, 0x2000), 0xfffffff0u, kIndirect);
        g.submit(d, 0);
      },
  });
  check_each_failed_and_recovered(run, 3);
}

TEST_CASE("hostile guest: a chain of valid buffers that adds up to more than 4 GiB", "[kvm][hostile]") {
  // 65 buffers of 64 MiB each, all inside guest memory (they overlap):
  // 4.06 GiB in one chain, so a 32-bit sum of the lengths wraps. Nothing
  // here breaks the virtio rules: rng fills at most its cap, blk refuses
  // the request with IOERR, vsock drops a packet whose header claims 4 GiB.
  // No device should fail, read or write past the buffers, or take long.
  constexpr uint16_t kBuffers = 65;
  constexpr uint32_t kLen = 64u << 20;
  constexpr uint64_t kAddr = 32u << 20;
  HostileGuest g;
  for (Dev d : kAllDevs) {
    g.init(d, 128);
    GuestQueue& q = g.queue(d, dev_request_queue(d));
    uint16_t i = 0;
    if (d == Dev::kBlk) {
      g.program.place_obj(HostileGuest::buffer(d), BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 0});
      q.desc(i, HostileGuest::buffer(d), 16, kNext, 1);
      ++i;
    } else if (d == Dev::kVsock) {
      g.program.place_obj(HostileGuest::buffer(d), guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999, 0xfffffff0u));
      q.desc(i, HostileGuest::buffer(d), sizeof(virtio_vsock_hdr), kNext, 1);
      ++i;
    }
    for (uint16_t n = 0; n < kBuffers; ++n, ++i) q.desc(i, kAddr, kLen, data_flags(d) | kNext, static_cast<uint16_t>(i + 1));
    // blk: the status byte ends the chain.
    g.program.place_obj<uint8_t>(HostileGuest::buffer(d, 0x100), 0xff);
    q.desc(i, HostileGuest::buffer(d, 0x100), 1, kWrite);
    g.submit(d, 0);
    g.wait_used(d, 1);
    g.report_used(d);
    g.report_state(d);
    if (d == Dev::kBlk) g.program.report8("blk.result", HostileGuest::buffer(d, 0x100));
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    const std::string n = dev_name(d);
    INFO(n << "; console:\n" << run.console);
    CHECK((run.value(n + ".status") & VIRTIO_CONFIG_S_NEEDS_RESET) == 0);
    CHECK(run.value(n + ".used") == 1);
    check_probe(run, d);
  }
  // rng fills at most 64 KiB per request (rng.h kMaxRequest); the status
  // byte counts as written. blk answers IOERR with only its status byte.
  CHECK(run.value("rng.len") <= 64u * 1024 + 1);
  CHECK(run.value("rng.len") > 0);
  CHECK(run.value("blk.result") == VIRTIO_BLK_S_IOERR);
  CHECK(run.value("blk.len") == 1);
  CHECK(run.value("vsock.len") == 0);
}

TEST_CASE("hostile guest: an available index that jumps by 65535", "[kvm][hostile]") {
  auto run = attack_each({
      // avail->idx 0 -> 0xffff, every ring slot naming a valid chain.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        for (uint16_t s = 0; s < q.size(); ++s) q.avail_entry(s, 0);
        place_one_buffer(g, d, HostileGuest::buffer(d), 512);
        q.publish(0xffff);
        g.driver(d).notify(dev_request_queue(d));
      },
      // One good request first, then the index moves by 65535 from there
      // (1 -> 0: the device's next entry minus one).
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        for (uint16_t s = 0; s < q.size(); ++s) q.avail_entry(s, 0);
        submit_one_buffer(g, d, HostileGuest::buffer(d), 512);
        g.wait_used(d, 1);
        q.publish(0);
        g.driver(d).notify(dev_request_queue(d));
      },
      // Moves by the queue size + 1.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        for (uint16_t s = 0; s < q.size(); ++s) q.avail_entry(s, 0);
        place_one_buffer(g, d, HostileGuest::buffer(d), 512);
        q.publish(static_cast<uint16_t>(q.size() + 1));
        g.driver(d).notify(dev_request_queue(d));
      },
      // An avail ring entry naming a descriptor past the table.
      [](HostileGuest& g, Dev d) {
        GuestQueue& q = g.queue(d, dev_request_queue(d));
        q.avail_entry(0, 0xffff);
        q.publish(1);
        g.driver(d).notify(dev_request_queue(d));
      },
  });
  check_each_failed_and_recovered(run, 4);
}

TEST_CASE("hostile harness: a thread that keeps running in the window is caught", "[kvm][hostile]") {
  // The harness's own check, so a quiet window means something: a guest
  // that spins after DONE keeps its vCPU thread runnable.
  HostileGuest g;
  g.program.print("DONE\n").raw({0xeb, 0xfe});  // jmp $
  const HostileRun run = run_hostile_guest(g.program, HostileOptions{0.3});
  INFO(run.summary());
  REQUIRE(run.done);
  double most = 0;
  for (const ThreadCpu& t : run.window_threads) most = std::max(most, t.runnable_share);
  CHECK(most > 0.5);
}
