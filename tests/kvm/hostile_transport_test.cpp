// Hostile guests against the virtio-mmio transport of every device (virtio
// 1.2, 3.1.1 "Driver Requirements: Device Initialization" and 4.2.3): queue
// sizes that are not powers of two or above the maximum, notifications
// before DRIVER_OK, status written out of order, queue registers rewritten
// while the device runs. The guest writes the registers itself and reads
// them back over COM1; the host must hold (hostile_harness.h) and every
// device must either refuse what it was told (registers unchanged, nothing
// served) or say DEVICE_NEEDS_RESET, and serve a good request after reset.
#include <linux/virtio_ids.h>

#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

constexpr uint32_t S_ACK = VIRTIO_CONFIG_S_ACKNOWLEDGE;
constexpr uint32_t S_DRIVER = VIRTIO_CONFIG_S_DRIVER;
constexpr uint32_t S_FEATURES_OK = VIRTIO_CONFIG_S_FEATURES_OK;
constexpr uint32_t S_DRIVER_OK = VIRTIO_CONFIG_S_DRIVER_OK;
constexpr uint32_t S_FAILED = VIRTIO_CONFIG_S_FAILED;
constexpr uint32_t S_NEEDS_RESET = VIRTIO_CONFIG_S_NEEDS_RESET;

std::string label(Dev d, const std::string& what) { return std::string(dev_name(d)) + "." + what; }

// What the guest read is what a device that refused the write reports, or
// the device marked itself failed instead.
void check_refused_or_failed(const HostileRun& run, Dev d, const std::string& what, uint32_t unchanged) {
  const uint64_t v = run.value(label(d, what));
  INFO(label(d, what) << " = " << std::hex << v << ", refused would leave " << unchanged);
  CHECK((v == unchanged || (v & S_NEEDS_RESET) != 0));
}

}  // namespace

TEST_CASE("hostile guest: queue sizes that are not powers of two or above the maximum", "[kvm][hostile]") {
  // The request queue of each device gets the size; its maximum is 256.
  const uint32_t sizes[] = {3, 257, 0, 0x10000, 1024};
  HostileGuest g;
  for (Dev d : kAllDevs) {
    int n = 0;
    for (uint32_t size : sizes) {
      if (n > 0) g.new_round(d);
      const MmioGuestDriver& drv = g.driver(d);
      drv.negotiate(kFeatureVersion1);
      for (uint16_t q = 0; q < dev_queue_count(d); ++q) {
        drv.setup_queue(q, g.queue(d, q), q == dev_request_queue(d) ? int64_t{size} : -1);
      }
      drv.report("a" + std::to_string(n) + ".nummax", VIRTIO_MMIO_QUEUE_NUM_MAX);
      drv.driver_ok();
      // A request on the bad queue, in case the device took it anyway.
      g.place_good_request(d);
      g.submit(d, 0);
      g.expect_failed(d, "a" + std::to_string(n++) + ".");
    }
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    for (size_t n = 0; n < std::size(sizes); ++n) {
      const std::string tag = "a" + std::to_string(n) + ".";
      INFO("queue size " << sizes[n]);
      CHECK(run.value(label(d, tag + "nummax")) == 256);
      check_failed(run, d, tag);
    }
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: queue notifications before DRIVER_OK", "[kvm][hostile]") {
  HostileGuest g;
  uint32_t want_len[3] = {};
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    const uint16_t rq = dev_request_queue(d);
    // Right after reset, then with the queue set up and a request in it,
    // but before DRIVER_OK; also notifications for queues that do not exist.
    drv.status(0);
    drv.notify(rq);
    drv.negotiate(kFeatureVersion1);
    for (uint16_t q = 0; q < dev_queue_count(d); ++q) drv.setup_queue(q, g.queue(d, q));
    want_len[static_cast<int>(d)] = g.place_good_request(d);
    g.queue(d, rq).avail_entry(0, 0);
    g.queue(d, rq).publish(1);
    drv.notify(rq);
    drv.notify(7);
    drv.notify(0xffffffff);
    g.settle();
    g.program.report16(label(d, "pre.used"), g.queue(d, rq).used_idx_addr());
    g.report_state(d, "pre.");
    // Now the device may take it; stray notifications after DRIVER_OK too.
    drv.driver_ok();
    drv.notify(0x10000 + rq);  // not the queue: the full 32 bits count
    drv.notify(dev_queue_count(d));
    drv.notify(rq);
    g.wait_used(d, 1);
    g.report_used(d, "post.");
    g.report_state(d, "post.");
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    INFO(dev_name(d));
    // 3.1.1 / 2.1: no buffer is used before DRIVER_OK.
    CHECK(run.value(label(d, "pre.used")) == 0);
    const uint64_t pre = run.value(label(d, "pre.status"));
    CHECK((pre == MmioGuestDriver::kFeaturesOk || (pre & S_NEEDS_RESET) != 0));
    if ((pre & S_NEEDS_RESET) == 0) {
      CHECK(run.value(label(d, "post.status")) == (MmioGuestDriver::kFeaturesOk | S_DRIVER_OK));
      CHECK(run.value(label(d, "post.used")) == 1);
      CHECK(run.value(label(d, "post.len")) == want_len[static_cast<int>(d)]);
    }
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: device status written out of order", "[kvm][hostile]") {
  HostileGuest g;
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    auto report = [&](const std::string& what) { drv.report(what, VIRTIO_MMIO_STATUS); };
    // s0: features without VIRTIO_F_VERSION_1: FEATURES_OK must not stick.
    drv.negotiate(0);
    report("s0");
    // s1: DRIVER_OK straight after reset; s2: every init bit at once.
    drv.status(0);
    drv.status(S_DRIVER_OK);
    report("s1");
    drv.status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    report("s2");
    // s3: FEATURES_OK without DRIVER.
    drv.status(0);
    drv.status(S_ACK);
    drv.status(S_ACK | S_FEATURES_OK);
    report("s3");
    // s4: DRIVER_OK without FEATURES_OK.
    drv.status(S_ACK | S_DRIVER);
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 1);  // VIRTIO_F_VERSION_1
    drv.status(S_ACK | S_DRIVER | S_DRIVER_OK);
    report("s4");
    // s5: FEATURES_OK, then bits taken back.
    drv.status(MmioGuestDriver::kFeaturesOk);
    drv.status(S_ACK);
    report("s5");
    // s6: a proper DRIVER_OK with the queues set up.
    for (uint16_t q = 0; q < dev_queue_count(d); ++q) drv.setup_queue(q, g.queue(d, q));
    drv.driver_ok();
    report("s6");
    // s7: DRIVER_OK taken back; s8: the driver sets DEVICE_NEEDS_RESET.
    drv.status(MmioGuestDriver::kFeaturesOk);
    report("s7");
    drv.status(MmioGuestDriver::kFeaturesOk | S_DRIVER_OK | S_NEEDS_RESET);
    report("s8");
    // Features rewritten after FEATURES_OK are ignored; the device serves.
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    drv.write(VIRTIO_MMIO_DRIVER_FEATURES, 0);
    g.place_good_request(d);
    g.submit(d, 0);
    g.wait_used(d, 1);
    g.report_used(d);
    // s9: FAILED (the driver gives up) is always accepted.
    drv.status(S_FAILED);
    report("s9");
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  const uint32_t ok = MmioGuestDriver::kFeaturesOk | S_DRIVER_OK;
  for (Dev d : kAllDevs) {
    INFO(dev_name(d));
    check_refused_or_failed(run, d, "s0", S_ACK | S_DRIVER);
    check_refused_or_failed(run, d, "s1", 0);
    check_refused_or_failed(run, d, "s2", 0);
    check_refused_or_failed(run, d, "s3", S_ACK);
    check_refused_or_failed(run, d, "s4", S_ACK | S_DRIVER);
    check_refused_or_failed(run, d, "s5", MmioGuestDriver::kFeaturesOk);
    CHECK(run.value(label(d, "s6")) == ok);
    check_refused_or_failed(run, d, "s7", ok);
    // The driver cannot set DEVICE_NEEDS_RESET: only the device does.
    CHECK(run.value(label(d, "s8")) == ok);
    CHECK(run.value(label(d, "used")) == 1);
    CHECK(run.value(label(d, "s9")) == (ok | S_FAILED));
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: queue registers rewritten after DRIVER_OK", "[kvm][hostile]") {
  HostileGuest g;
  uint32_t want_len[3] = {};
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    const uint16_t rq = dev_request_queue(d);
    g.init(d);
    want_len[static_cast<int>(d)] = g.place_good_request(d);
    // The running queue: not ready, size 3, rings in the MMIO gap (the
    // used ring on the device's own registers), 64-bit addresses.
    drv.write(VIRTIO_MMIO_QUEUE_SEL, rq);
    drv.write(VIRTIO_MMIO_QUEUE_READY, 0);
    drv.write(VIRTIO_MMIO_QUEUE_NUM, 3);
    drv.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0xfffff000);
    drv.write(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0xffffffff);
    drv.write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(kVirtioMmioBase));
    drv.write(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(drv.reg(0)));
    drv.write(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    drv.report("ready", VIRTIO_MMIO_QUEUE_READY);
    drv.report("nummax", VIRTIO_MMIO_QUEUE_NUM_MAX);
    // A queue that does not exist.
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0x7fff);
    drv.write(VIRTIO_MMIO_QUEUE_NUM, 16);
    drv.write(VIRTIO_MMIO_QUEUE_READY, 1);
    drv.report("ghost.ready", VIRTIO_MMIO_QUEUE_READY);
    drv.report("ghost.nummax", VIRTIO_MMIO_QUEUE_NUM_MAX);
    // A request on the original rings: served there, or not at all.
    g.submit(d, 0);
    g.wait_used(d, 1);
    g.settle();
    g.report_used(d);
    g.report_state(d);
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    INFO(dev_name(d) << "; console:\n" << run.console);
    CHECK(run.value(label(d, "ghost.ready")) == 0);
    CHECK(run.value(label(d, "ghost.nummax")) == 0);
    CHECK(run.value(label(d, "nummax")) == 256);
    const uint64_t status = run.value(label(d, "status"));
    if ((status & S_NEEDS_RESET) == 0) {
      // Ignored: the queue runs on as set up at DRIVER_OK.
      CHECK(status == (MmioGuestDriver::kFeaturesOk | S_DRIVER_OK));
      CHECK(run.value(label(d, "ready")) == 1);
      CHECK(run.value(label(d, "used")) == 1);
      CHECK(run.value(label(d, "len")) == want_len[static_cast<int>(d)]);
    }
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: ring addresses outside guest memory or misaligned at set-up", "[kvm][hostile]") {
  constexpr uint64_t kMemoryEnd = kGuestMemoryMib << 20;
  // Each variant moves one ring of the request queue before DRIVER_OK.
  struct Variant {
    const char* what;
    uint32_t reg;
    uint32_t value;
  };
  HostileGuest g;
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    const Variant variants[] = {
        {"descriptor table across the end of RAM", VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(kMemoryEnd - 64)},
        {"available ring on the device's own registers", VIRTIO_MMIO_QUEUE_AVAIL_LOW,
         static_cast<uint32_t>(drv.reg(0))},
        {"used ring above 2^63", VIRTIO_MMIO_QUEUE_USED_HIGH, 0x80000000u},
        {"descriptor table misaligned", VIRTIO_MMIO_QUEUE_DESC_LOW, 0},  // + 8, below
        {"used ring misaligned", VIRTIO_MMIO_QUEUE_USED_LOW, 0},         // + 2, below
    };
    int n = 0;
    for (const Variant& v : variants) {
      if (n > 0) g.new_round(d);
      drv.negotiate(kFeatureVersion1);
      for (uint16_t q = 0; q < dev_queue_count(d); ++q) drv.setup_queue(q, g.queue(d, q));
      const GuestQueue& rq = g.queue(d, dev_request_queue(d));
      uint32_t value = v.value;
      if (n == 3) value = static_cast<uint32_t>(rq.desc_table() + 8);
      if (n == 4) value = static_cast<uint32_t>(rq.used_ring() + 2);
      drv.write(VIRTIO_MMIO_QUEUE_SEL, dev_request_queue(d));
      drv.write(v.reg, value);
      drv.driver_ok();
      g.place_good_request(d);
      g.submit(d, 0);
      g.expect_failed(d, "a" + std::to_string(n++) + ".");
    }
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  for (Dev d : kAllDevs) {
    for (int n = 0; n < 5; ++n) check_failed(run, d, "a" + std::to_string(n) + ".");
    check_probe(run, d);
  }
}

TEST_CASE("hostile guest: register accesses of the wrong width or place", "[kvm][hostile]") {
  // virtio-mmio registers are 32 bits wide and aligned (4.2.2.2); the
  // driver here uses 1, 2 and 8 byte accesses, unaligned ones, offsets no
  // register has, and writes to read-only registers and configuration. The
  // device may ignore them or fail; it may not act on a torn value, and it
  // must serve a good request afterwards (or after a reset).
  HostileGuest g;
  uint32_t want_len[3] = {};
  for (Dev d : kAllDevs) {
    const MmioGuestDriver& drv = g.driver(d);
    const std::string n = dev_name(d);
    g.init(d);
    g.program.report8(n + ".magic8", drv.reg(VIRTIO_MMIO_MAGIC_VALUE));
    g.program.report16(n + ".version16", drv.reg(VIRTIO_MMIO_VERSION));
    g.program.report64(n + ".magic64", drv.reg(VIRTIO_MMIO_MAGIC_VALUE));
    g.program.report32(n + ".unaligned", drv.reg(VIRTIO_MMIO_STATUS + 1));
    g.program.report32(n + ".nowhere", drv.reg(0x0fc));
    g.program.report32(n + ".window_end", drv.reg(0xffc));
    // Torn writes to Status (a reset if it were taken as 0), QueueSel and
    // QueueNotify; writes to read-only registers.
    g.program.store8(drv.reg(VIRTIO_MMIO_STATUS), 0);
    g.program.store16(drv.reg(VIRTIO_MMIO_STATUS), 0);
    g.program.store64(drv.reg(VIRTIO_MMIO_QUEUE_SEL), -1);
    g.program.store16(drv.reg(VIRTIO_MMIO_QUEUE_NOTIFY), dev_request_queue(d));
    drv.write(VIRTIO_MMIO_MAGIC_VALUE, 0);
    drv.write(VIRTIO_MMIO_DEVICE_ID, 0);
    drv.write(VIRTIO_MMIO_QUEUE_NUM_MAX, 0xffff);
    drv.write(VIRTIO_MMIO_INTERRUPT_STATUS, 0xffffffff);
    drv.write(VIRTIO_MMIO_CONFIG_GENERATION, 0);
    drv.write(0x0fc, 0xffffffff);
    // Configuration: written (read-only for all three), read past its end.
    drv.write(VIRTIO_MMIO_CONFIG, 0xffffffff);
    g.program.store64(drv.reg(VIRTIO_MMIO_CONFIG + 4), -1);
    g.program.store8(drv.reg(0xfff), 0xff);
    g.program.report64(n + ".config0", drv.reg(VIRTIO_MMIO_CONFIG));
    g.program.report32(n + ".config_end", drv.reg(0xffc));
    drv.report("magic", VIRTIO_MMIO_MAGIC_VALUE);
    drv.report("id", VIRTIO_MMIO_DEVICE_ID);
    drv.report("status", VIRTIO_MMIO_STATUS);
    // The device still works, on the rings it was given.
    want_len[static_cast<int>(d)] = g.place_good_request(d);
    drv.write(VIRTIO_MMIO_QUEUE_SEL, 0);
    g.submit(d, 0);
    g.wait_used(d, 1);
    g.report_used(d);
    drv.report("after", VIRTIO_MMIO_STATUS);
    g.probe(d);
  }
  g.finish();
  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  const uint32_t ids[3] = {VIRTIO_ID_BLOCK, VIRTIO_ID_RNG, VIRTIO_ID_VSOCK};
  for (Dev d : kAllDevs) {
    INFO(dev_name(d) << "; console:\n" << run.console);
    // Read-only registers kept their values.
    CHECK(run.value(label(d, "magic")) == 0x74726976);  // "virt"
    CHECK(run.value(label(d, "id")) == ids[static_cast<int>(d)]);
    // Narrow or torn reads give the register's bytes or nothing.
    const uint64_t m8 = run.value(label(d, "magic8"));
    CHECK((m8 == 0x76 || m8 == 0));
    const uint64_t v16 = run.value(label(d, "version16"));
    CHECK((v16 == 2 || v16 == 0));
    CHECK(run.value(label(d, "nowhere")) == 0);
    // blk's capacity (the first 8 config bytes) is 2048 sectors whatever
    // the driver wrote; rng has no configuration; vsock's is the guest CID.
    const uint64_t config0 = run.value(label(d, "config0"));
    if (d == Dev::kBlk) CHECK((config0 == kDiskBytes / 512 || config0 == 0));
    if (d == Dev::kRng) CHECK(config0 == 0);
    if (d == Dev::kVsock) CHECK((config0 == kGuestCid || config0 == 0));
    const uint64_t status = run.value(label(d, "status"));
    if ((status & S_NEEDS_RESET) == 0) {
      CHECK(status == (MmioGuestDriver::kFeaturesOk | S_DRIVER_OK));
      CHECK(run.value(label(d, "used")) == 1);
      CHECK(run.value(label(d, "len")) == want_len[static_cast<int>(d)]);
    }
    check_probe(run, d);
  }
}
