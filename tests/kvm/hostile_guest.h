// HostileGuest: a GuestProgram for the hostile-device machine of
// hostile_harness.h, with the guest-physical layout, the driver init and a
// known-good request ("probe") for each device written once, so each test
// case is only its attack and its checks.
//
// Layout (all in the ELF's data image): ring areas of 16 KiB from
// kGuestDataBase, one per (device, round, queue): rounds 0 to kMaxRounds-1
// for attacks (new_round() moves on, so each attack starts on clean rings)
// and one more for the probe; 64 KiB of buffers per device from kBufferBase
// (the first 32 KiB for attacks, the rest for the probe); free room for
// bulk data from kBulkBase.
//
// Reports (COM1, "label=hex"): <dev>.<tag>status and <dev>.<tag>isr after
// an attack (expect_failed or report_state), and from probe():
//   <dev>.probe.status   the Status register after the good request
//   <dev>.probe.used     used->idx of the request queue (1 when served)
//   <dev>.probe.len      the used length (rng 16, blk 513, vsock 44)
//   blk.probe.result     the virtio-blk status byte (0: VIRTIO_BLK_S_OK)
//   blk.probe.data       the first word read from sector 1 (0x5ec70001)
//   vsock.probe.op       the op of the packet the device sent (RST, 3)
#pragma once

#include <linux/virtio_blk.h>
#include <linux/virtio_vsock.h>

#include <cstddef>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <tuple>

#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "tests/kvm/hostile_harness.h"
#include "tests/support/virtio_mmio_guest.h"

namespace husk::test {

enum class Dev { kBlk, kRng, kVsock };

inline constexpr Dev kAllDevs[] = {Dev::kBlk, Dev::kRng, Dev::kVsock};
inline constexpr uint64_t kFeatureVersion1 = uint64_t{1} << VIRTIO_F_VERSION_1;
inline constexpr uint64_t kFeatureIndirect = uint64_t{1} << VIRTIO_RING_F_INDIRECT_DESC;
inline constexpr uint64_t kRingBase = kGuestDataBase;
inline constexpr uint64_t kRingArea = 0x4000;
inline constexpr int kMaxRounds = 5;
inline constexpr uint64_t kBufferBase = 0x1200000;
inline constexpr uint64_t kBufferArea = 0x10000;
inline constexpr uint64_t kBulkBase = 0x1300000;
// Bounds on the guest's polls, met in a few rounds by a working device and
// generous for a loaded machine whose event-loop thread waits for a CPU:
// about 1-2 s each at worst on a CPL0-emulating /dev/kvm (a register read is
// an exit to user space, some 20-40 us; a memory read some 3 us).
inline constexpr uint32_t kRegisterPollRounds = 50000;
inline constexpr uint32_t kMemoryPollRounds = 500000;

inline const char* dev_name(Dev d) {
  switch (d) {
    case Dev::kBlk: return "blk";
    case Dev::kRng: return "rng";
    case Dev::kVsock: return "vsock";
  }
  return "?";
}
inline uint32_t dev_slot(Dev d) {
  switch (d) {
    case Dev::kBlk: return kBlkSlot;
    case Dev::kRng: return kRngSlot;
    case Dev::kVsock: return kVsockSlot;
  }
  return 0;
}
inline uint16_t dev_queue_count(Dev d) { return d == Dev::kVsock ? 3 : 1; }
// The queue that takes the device's requests.
inline uint16_t dev_request_queue(Dev d) { return d == Dev::kVsock ? 1 : 0; }

// A vsock packet header from the guest (CID 3) to the host (CID 2).
inline virtio_vsock_hdr guest_packet(uint16_t op, uint32_t src_port, uint32_t dst_port, uint32_t len = 0) {
  virtio_vsock_hdr h{};
  h.src_cid = kGuestCid;
  h.dst_cid = 2;
  h.src_port = src_port;
  h.dst_port = dst_port;
  h.len = len;
  h.type = VIRTIO_VSOCK_TYPE_STREAM;
  h.op = op;
  h.buf_alloc = 64 * 1024;
  return h;
}

// The virtio-blk request header (5.2.6).
struct BlkRequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

class HostileGuest {
 public:
  GuestProgram program;

  HostileGuest() {
    for (Dev d : kAllDevs) drivers_.emplace(d, MmioGuestDriver(program, dev_slot(d), dev_name(d)));
  }

  [[nodiscard]] const MmioGuestDriver& driver(Dev d) const { return drivers_.at(d); }
  // Attack buffer space of `d` (32 KiB from `offset` 0).
  [[nodiscard]] static uint64_t buffer(Dev d, uint64_t offset = 0) {
    return kBufferBase + dev_slot(d) * kBufferArea + offset;
  }

  // The attack ring for queue `q` of `d` in the current round, laid out
  // (zeroed) at the first call with `size` entries (0: 16).
  GuestQueue& queue(Dev d, uint16_t q, uint16_t size = 0) { return ring(d, round_[d], q, size); }
  // Moves `d` to fresh attack rings (call init() again after it).
  void new_round(Dev d) {
    if (++round_[d] >= kMaxRounds) throw std::logic_error("too many attack rounds for one device");
  }

  // Driver init of `d` up to DRIVER_OK with every queue on attack rings of
  // `size` entries (3.1.1).
  void init(Dev d, uint16_t size = 0, uint64_t features = kFeatureVersion1 | kFeatureIndirect) {
    const MmioGuestDriver& drv = driver(d);
    drv.negotiate(features);
    for (uint16_t q = 0; q < dev_queue_count(d); ++q) drv.setup_queue(q, queue(d, q, size));
    drv.driver_ok();
  }

  // Makes chain `head` available as the next entry of request queue `q`
  // (avail slot `slot`), publishes avail->idx = slot + 1 and notifies.
  void submit(Dev d, uint16_t head, uint16_t slot = 0) {
    GuestQueue& rq = queue(d, dev_request_queue(d));
    rq.avail_entry(slot, head);
    rq.publish(static_cast<uint16_t>(slot + 1));
    driver(d).notify(dev_request_queue(d));
  }

  // Places a good request of `d` as chain `head` (descriptors head to
  // head+2) in the current round's request ring, for the code to submit;
  // returns the used length the device answers it with.
  uint32_t place_good_request(Dev d, uint16_t head = 0) {
    GuestQueue& q = queue(d, dev_request_queue(d));
    const uint64_t buf = buffer(d, 0x6000 + 0x400ull * head);
    const auto next = static_cast<uint16_t>(head + 1);
    switch (d) {
      case Dev::kRng:
        q.desc(head, buf, 16, VRING_DESC_F_WRITE);
        return 16;
      case Dev::kBlk:
        program.place_obj(buf, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 2});
        q.desc(head, buf, 16, VRING_DESC_F_NEXT, next);
        q.desc(next, buf + 0x100, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, static_cast<uint16_t>(head + 2));
        q.desc(static_cast<uint16_t>(head + 2), buf + 0x300, 1, VRING_DESC_F_WRITE);
        return 513;
      case Dev::kVsock:
        // To a port with no connection: used with length 0, and a RST waits
        // for a receive buffer.
        program.place_obj(buf, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999));
        q.desc(head, buf, sizeof(virtio_vsock_hdr));
        return 0;
    }
    return 0;
  }

  // The device should now need a reset: waits for DEVICE_NEEDS_RESET and
  // reports Status and InterruptStatus.
  void expect_failed(Dev d, const std::string& tag = "") {
    driver(d).wait_needs_reset(kRegisterPollRounds);
    report_state(d, tag);
  }
  void report_state(Dev d, const std::string& tag = "") {
    driver(d).report(tag + "status", VIRTIO_MMIO_STATUS);
    driver(d).report(tag + "isr", VIRTIO_MMIO_INTERRUPT_STATUS);
  }
  // Reports used->idx and the first used length of request queue of `d`
  // as <dev>.<tag>used and <dev>.<tag>len.
  void report_used(Dev d, const std::string& tag = "") {
    const GuestQueue& q = queue(d, dev_request_queue(d));
    program.report16(std::string(dev_name(d)) + "." + tag + "used", q.used_idx_addr());
    program.report32(std::string(dev_name(d)) + "." + tag + "len", q.used_len_addr(0));
  }
  // Waits (bounded) until the request queue of `d` has `n` used entries.
  void wait_used(Dev d, uint16_t n) {
    program.wait_eq16(queue(d, dev_request_queue(d)).used_idx_addr(), n, kMemoryPollRounds);
  }
  // Gives the device time to act on something it should ignore.
  void settle() { program.delay(20000); }

  // Resets `d`, sets it up again on fresh rings and sends one good request.
  void probe(Dev d) {
    if (!probed_.insert(d).second) throw std::logic_error("one probe per device and program");
    const MmioGuestDriver& drv = driver(d);
    const std::string n = dev_name(d);
    const uint64_t buf = buffer(d, 0x8000);
    drv.negotiate(kFeatureVersion1);
    for (uint16_t q = 0; q < dev_queue_count(d); ++q) drv.setup_queue(q, ring(d, kMaxRounds, q, 16));
    drv.driver_ok();
    GuestQueue& rq = ring(d, kMaxRounds, dev_request_queue(d), 16);
    switch (d) {
      case Dev::kRng:
        rq.desc(0, buf, 16, VRING_DESC_F_WRITE);
        break;
      case Dev::kBlk: {
        program.place_obj(buf, BlkRequestHeader{VIRTIO_BLK_T_IN, 0, 1});
        program.place_obj<uint8_t>(buf + 0x400, 0xff);
        rq.desc(0, buf, 16, VRING_DESC_F_NEXT, 1);
        rq.desc(1, buf + 0x200, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
        rq.desc(2, buf + 0x400, 1, VRING_DESC_F_WRITE);
        break;
      }
      case Dev::kVsock: {
        // A receive buffer first, then a packet for a connection that does
        // not exist: the device answers with a RST.
        GuestQueue& rx = ring(d, kMaxRounds, 0, 16);
        rx.desc(0, buf + 0x100, 64, VRING_DESC_F_WRITE);
        rx.avail_entry(0, 0);
        rx.publish(1);
        drv.notify(0);
        program.place_obj(buf, guest_packet(VIRTIO_VSOCK_OP_RW, 7, 9999));
        rq.desc(0, buf, sizeof(virtio_vsock_hdr));
        break;
      }
    }
    rq.avail_entry(0, 0);
    rq.publish(1);
    drv.notify(dev_request_queue(d));
    // Where the answer shows: the request queue, or vsock's rx queue.
    const GuestQueue& answer = d == Dev::kVsock ? ring(d, kMaxRounds, 0, 16) : rq;
    program.wait_eq16(answer.used_idx_addr(), 1, kMemoryPollRounds);
    drv.report("probe.status", VIRTIO_MMIO_STATUS);
    program.report16(n + ".probe.used", answer.used_idx_addr());
    program.report32(n + ".probe.len", answer.used_len_addr(0));
    if (d == Dev::kBlk) {
      program.report8("blk.probe.result", buf + 0x400);
      program.report32("blk.probe.data", buf + 0x200);
    }
    if (d == Dev::kVsock) program.report16("vsock.probe.op", buf + 0x100 + offsetof(virtio_vsock_hdr, op));
  }

  void finish() { program.finish(); }

 private:
  GuestQueue& ring(Dev d, int round, uint16_t q, uint16_t size) {
    const auto key = std::make_tuple(d, round, q);
    auto it = rings_.find(key);
    if (it == rings_.end()) {
      const uint64_t area = (dev_slot(d) * (kMaxRounds + 1) + static_cast<uint64_t>(round)) * 3 + q;
      static_assert(kRingBase + 3 * (kMaxRounds + 1) * 3 * kRingArea <= kBufferBase);
      const uint16_t n = size != 0 ? size : 16;
      if (GuestQueue::footprint(n) > kRingArea) throw std::logic_error("ring too large for its area");
      it = rings_.emplace(key, std::make_unique<GuestQueue>(program, kRingBase + area * kRingArea, n)).first;
    }
    if (size != 0 && it->second->size() != size) throw std::logic_error("ring already laid out with another size");
    return *it->second;
  }

  std::map<Dev, MmioGuestDriver> drivers_;
  std::map<std::tuple<Dev, int, uint16_t>, std::unique_ptr<GuestQueue>> rings_;
  std::set<Dev> probed_;
  std::map<Dev, int> round_;
};

// The probe's expected answers (see the header comment).
inline void check_probe(const HostileRun& run, Dev d) {
  const std::string n = dev_name(d);
  INFO(n << " after a reset serves a good request; console:\n" << run.console);
  CHECK((run.value(n + ".probe.status") & VIRTIO_CONFIG_S_NEEDS_RESET) == 0);
  CHECK(run.value(n + ".probe.status") == (MmioGuestDriver::kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK));
  CHECK(run.value(n + ".probe.used") == 1);
  switch (d) {
    case Dev::kRng:
      CHECK(run.value("rng.probe.len") == 16);
      break;
    case Dev::kBlk:
      CHECK(run.value("blk.probe.len") == 513);
      CHECK(run.value("blk.probe.result") == VIRTIO_BLK_S_OK);
      CHECK(run.value("blk.probe.data") == 0x5ec70001u);
      break;
    case Dev::kVsock:
      CHECK(run.value("vsock.probe.len") == sizeof(virtio_vsock_hdr));
      CHECK(run.value("vsock.probe.op") == VIRTIO_VSOCK_OP_RST);
      break;
  }
}

// The device reported DEVICE_NEEDS_RESET (and the configuration-change
// interrupt that goes with it, 2.1.2).
inline void check_failed(const HostileRun& run, Dev d, const std::string& tag = "") {
  const std::string n = std::string(dev_name(d)) + "." + tag;
  INFO(n << " should need a reset; console:\n" << run.console);
  CHECK((run.value(n + "status") & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
  CHECK((run.value(n + "isr") & VIRTIO_MMIO_INT_CONFIG) != 0);
}

}  // namespace husk::test
