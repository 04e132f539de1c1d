// A hostile guest against virtio-blk's requests (virtio 1.2, 5.2.6): sectors
// past the end of the disk, sector numbers whose byte offset overflows 64
// bits, lengths that are no whole number of sectors, unknown request types
// and a request with nowhere to put its status. Malformed requests are not
// a broken device: each gets its status byte (IOERR or UNSUPP), the device
// stays up, and the good requests around them are served correctly.
#include <catch2/catch.hpp>

#include "tests/kvm/hostile_guest.h"

using namespace husk::test;

namespace {

struct BlkCase {
  const char* what;
  uint32_t type;
  uint64_t sector;
  uint32_t len;        // data bytes (0: no data descriptor)
  uint8_t want;        // status byte
  bool has_status = true;
};

constexpr uint64_t kCapacity = kDiskBytes / 512;  // 2048 sectors

}  // namespace

TEST_CASE("hostile guest: virtio-blk requests for sectors past the end of the disk", "[kvm][hostile]") {
  const BlkCase cases[] = {
      {"read at capacity", VIRTIO_BLK_T_IN, kCapacity, 512, VIRTIO_BLK_S_IOERR},
      {"read across the end", VIRTIO_BLK_T_IN, kCapacity - 1, 1024, VIRTIO_BLK_S_IOERR},
      {"read at sector 2^64-1", VIRTIO_BLK_T_IN, ~uint64_t{0}, 512, VIRTIO_BLK_S_IOERR},
      {"read at sector 2^55 (offset wraps to 0)", VIRTIO_BLK_T_IN, uint64_t{1} << 55, 512, VIRTIO_BLK_S_IOERR},
      {"write at capacity", VIRTIO_BLK_T_OUT, kCapacity, 512, VIRTIO_BLK_S_IOERR},
      {"write at sector 2^55-1 (offset wraps)", VIRTIO_BLK_T_OUT, (uint64_t{1} << 55) - 1, 1024, VIRTIO_BLK_S_IOERR},
      {"read of the last sector", VIRTIO_BLK_T_IN, kCapacity - 1, 512, VIRTIO_BLK_S_OK},
      {"write of the last sector", VIRTIO_BLK_T_OUT, kCapacity - 1, 512, VIRTIO_BLK_S_OK},
      {"read back of the last sector", VIRTIO_BLK_T_IN, kCapacity - 1, 512, VIRTIO_BLK_S_OK},
      {"read of 511 bytes", VIRTIO_BLK_T_IN, 0, 511, VIRTIO_BLK_S_IOERR},
      {"unknown type", 0xdeadbeef, 0, 512, VIRTIO_BLK_S_UNSUPP},
      {"no status byte", VIRTIO_BLK_T_IN, kCapacity, 0, 0, false},
      {"flush", VIRTIO_BLK_T_FLUSH, ~uint64_t{0}, 0, VIRTIO_BLK_S_OK},
  };
  constexpr size_t kCount = std::size(cases);
  HostileGuest g;
  g.init(Dev::kBlk, 64);
  GuestQueue& q = g.queue(Dev::kBlk, 0);
  auto data = [](size_t i) { return HostileGuest::buffer(Dev::kBlk, 0x800 * i); };
  auto header = [](size_t i) { return HostileGuest::buffer(Dev::kBlk, 0x7000 + 0x20 * i); };
  auto status = [](size_t i) { return HostileGuest::buffer(Dev::kBlk, 0x7800 + i); };
  for (size_t i = 0; i < kCount; ++i) {
    const BlkCase& c = cases[i];
    const auto head = static_cast<uint16_t>(3 * i);
    g.program.place_obj(header(i), BlkRequestHeader{c.type, 0, c.sector});
    g.program.place_obj<uint8_t>(status(i), 0xff);
    // What the write of the last sector puts there.
    if (c.type == VIRTIO_BLK_T_OUT) {
      for (uint32_t off = 0; off < c.len; off += 4) g.program.place_obj<uint32_t>(data(i) + off, 0xab1e0000u + off);
    }
    uint16_t d = head;
    const bool more = c.len > 0 || c.has_status;
    q.desc(d, header(i), 16, more ? VRING_DESC_F_NEXT : 0, static_cast<uint16_t>(d + 1));
    if (c.len > 0) {
      ++d;
      const uint16_t w = c.type == VIRTIO_BLK_T_OUT ? 0 : VRING_DESC_F_WRITE;
      q.desc(d, data(i), c.len, static_cast<uint16_t>(w | (c.has_status ? VRING_DESC_F_NEXT : 0)),
             static_cast<uint16_t>(d + 1));
    }
    if (c.has_status) q.desc(static_cast<uint16_t>(d + 1), status(i), 1, VRING_DESC_F_WRITE);
    q.avail_entry(static_cast<uint16_t>(i), head);
  }
  q.publish(static_cast<uint16_t>(kCount));
  g.driver(Dev::kBlk).notify(0);
  g.wait_used(Dev::kBlk, kCount);
  g.program.report16("blk.used", q.used_idx_addr());
  for (size_t i = 0; i < kCount; ++i) {
    g.program.report32("blk.r" + std::to_string(i) + ".id", q.used_id_addr(static_cast<uint16_t>(i)));
    g.program.report32("blk.r" + std::to_string(i) + ".len", q.used_len_addr(static_cast<uint16_t>(i)));
    g.program.report8("blk.r" + std::to_string(i) + ".status", status(i));
    g.program.report32("blk.r" + std::to_string(i) + ".data", data(i));
  }
  g.report_state(Dev::kBlk);
  g.probe(Dev::kBlk);
  g.finish();

  const HostileRun run = run_hostile_guest(g.program);
  check_host_held(run);
  INFO("console:\n" << run.console);
  CHECK(run.value("blk.used") == kCount);
  CHECK(run.value("blk.status") == (MmioGuestDriver::kFeaturesOk | VIRTIO_CONFIG_S_DRIVER_OK));
  for (size_t i = 0; i < kCount; ++i) {
    const BlkCase& c = cases[i];
    const std::string r = "blk.r" + std::to_string(i) + ".";
    INFO(c.what);
    CHECK(run.value(r + "id") == 3 * i);
    if (!c.has_status) {
      // Nowhere to answer: returned untouched.
      CHECK(run.value(r + "len") == 0);
      continue;
    }
    CHECK(run.value(r + "status") == c.want);
    const bool read_ok = c.type == VIRTIO_BLK_T_IN && c.want == VIRTIO_BLK_S_OK;
    // A read answers its data and the status byte; anything else only the
    // status byte.
    CHECK(run.value(r + "len") == (read_ok ? c.len + 1 : 1));
    if (!read_ok && c.type == VIRTIO_BLK_T_IN) CHECK(run.value(r + "data") == 0);  // nothing read
  }
  // The last sector, before and after the guest wrote it (copy-on-write).
  CHECK(run.value("blk.r6.data") == 0x5ec70000u + kCapacity - 1);
  CHECK(run.value("blk.r8.data") == 0xab1e0000u);
  check_probe(run, Dev::kBlk);
}
