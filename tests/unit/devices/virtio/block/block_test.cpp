// virtio-blk against real files and real anonymous guest memory, driven
// through the mmio transport by the test driver: every request type, the
// three disk modes, and malformed requests.
#include "runtime/devices/virtio/block/block.h"

#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <fstream>

#include <catch2/catch.hpp>

#include "runtime/devices/virtio/mmio_transport.h"
#include "tests/support/temp_dir.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;
using husk::test::MmioDriver;
using husk::test::TempDir;
using husk::test::VirtqDriver;

namespace {

constexpr uint64_t kDiskBytes = 64 * 1024;
constexpr GuestAddress kRing = 0x10000;
constexpr GuestAddress kHeader = 0x20000;
constexpr GuestAddress kData = 0x21000;
constexpr GuestAddress kStatus = 0x30000;

class CountingLine : public devices::InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + i / 512);
  return v;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Fixture {
  explicit Fixture(DiskMode mode) {
    path = dir.write("disk.img", pattern(kDiskBytes));
    auto disk = DiskImage::open(path, mode);
    REQUIRE(disk);
    device = std::make_shared<Block>(std::move(*disk), "husk-disk0");
    irq = std::make_shared<CountingLine>();
    transport = std::make_unique<MmioTransport>(device, *mem, irq, nullptr);
    MmioDriver driver(*transport);
    const VirtqDriver* queues[] = {&vq};
    const uint32_t status = driver.init(kFeatureVersion1, queues);
    REQUIRE((status & VIRTIO_CONFIG_S_DRIVER_OK) != 0);
  }

  // Sends one request: header, optional data buffer (device-writable for
  // reads), status byte. Returns the status the device wrote.
  uint8_t request(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    const uint32_t header[4] = {type, 0, static_cast<uint32_t>(sector), static_cast<uint32_t>(sector >> 32)};
    REQUIRE(mem->write_obj(kHeader, header));
    REQUIRE(mem->write_obj<uint8_t>(kStatus, 0xff));
    uint16_t next = 1;
    vq.set_desc(0, kHeader, 16, VRING_DESC_F_NEXT, next);
    if (data_len > 0) {
      vq.set_desc(1, kData, data_len, VRING_DESC_F_NEXT | (data_writable ? VRING_DESC_F_WRITE : 0), 2);
      next = 2;
      vq.set_desc(0, kHeader, 16, VRING_DESC_F_NEXT, 1);
    }
    vq.set_desc(next, kStatus, 1, VRING_DESC_F_WRITE);
    vq.publish(0);
    MmioDriver(*transport).notify(0);
    REQUIRE(vq.used_idx() == vq.avail_idx());
    last_used_len = vq.used_elem(static_cast<uint16_t>((vq.used_idx() - 1) % 16)).len;
    auto status = mem->read_obj<uint8_t>(kStatus);
    REQUIRE(status);
    return *status;
  }

  std::vector<uint8_t> data(size_t n) {
    std::vector<uint8_t> out(n);
    REQUIRE(mem->read(kData, out));
    return out;
  }

  TempDir dir;
  std::string path;
  Result<GuestMemory> mem = GuestMemory::create({{0, 1 << 20}});
  VirtqDriver vq{*mem, 16, kRing};
  std::shared_ptr<Block> device;
  std::shared_ptr<CountingLine> irq;
  std::unique_ptr<MmioTransport> transport;
  uint32_t last_used_len = 0;
};

}  // namespace

TEST_CASE("blk: reads return the file's sectors", "[unit]") {
  Fixture f(DiskMode::kReadOnly);
  CHECK(f.request(VIRTIO_BLK_T_IN, 2, 1024, true) == VIRTIO_BLK_S_OK);
  CHECK(f.last_used_len == 1024 + 1);
  const auto expected = pattern(kDiskBytes);
  CHECK(f.data(1024) == std::vector<uint8_t>(expected.begin() + 1024, expected.begin() + 2048));
  CHECK(f.irq->count >= 1);
}

TEST_CASE("blk: config space and features describe the disk", "[unit]") {
  Fixture ro(DiskMode::kReadOnly);
  uint64_t capacity = 0;
  ro.device->read_config(0, std::span(reinterpret_cast<uint8_t*>(&capacity), 8));
  CHECK(capacity == kDiskBytes / 512);
  CHECK((ro.device->features() & (1ull << VIRTIO_BLK_F_RO)) != 0);
  Fixture rw(DiskMode::kPersistent);
  CHECK((rw.device->features() & (1ull << VIRTIO_BLK_F_RO)) == 0);
  CHECK((rw.device->features() & (1ull << VIRTIO_BLK_F_FLUSH)) != 0);
}

TEST_CASE("blk: a read-only disk refuses writes and stays unchanged", "[unit]") {
  Fixture f(DiskMode::kReadOnly);
  REQUIRE(f.mem->fill(kData, 0xab, 512));
  CHECK(f.request(VIRTIO_BLK_T_OUT, 0, 512, false) == VIRTIO_BLK_S_IOERR);
  CHECK(file_bytes(f.path) == pattern(kDiskBytes));
}

TEST_CASE("blk: a persistent disk writes through to the file", "[unit]") {
  Fixture f(DiskMode::kPersistent);
  REQUIRE(f.mem->fill(kData, 0xab, 1024));
  CHECK(f.request(VIRTIO_BLK_T_OUT, 4, 1024, false) == VIRTIO_BLK_S_OK);
  CHECK(f.request(VIRTIO_BLK_T_FLUSH, 0, 0, false) == VIRTIO_BLK_S_OK);
  auto expected = pattern(kDiskBytes);
  std::fill(expected.begin() + 2048, expected.begin() + 3072, 0xab);
  CHECK(file_bytes(f.path) == expected);
}

TEST_CASE("blk: a copy-on-write disk keeps writes private and the file intact", "[unit]") {
  Fixture f(DiskMode::kCopyOnWrite);
  REQUIRE(f.mem->fill(kData, 0xcd, 512));
  CHECK(f.request(VIRTIO_BLK_T_OUT, 3, 512, false) == VIRTIO_BLK_S_OK);
  // A read spanning written and unwritten sectors mixes overlay and base.
  CHECK(f.request(VIRTIO_BLK_T_IN, 2, 1536, true) == VIRTIO_BLK_S_OK);
  const auto base = pattern(kDiskBytes);
  const auto got = f.data(1536);
  CHECK(std::equal(got.begin(), got.begin() + 512, base.begin() + 1024));
  CHECK(std::all_of(got.begin() + 512, got.begin() + 1024, [](uint8_t b) { return b == 0xcd; }));
  CHECK(std::equal(got.begin() + 1024, got.end(), base.begin() + 2048));
  CHECK(file_bytes(f.path) == base);
}

TEST_CASE("blk: requests outside the disk or of odd sizes fail without I/O", "[unit]") {
  Fixture f(DiskMode::kPersistent);
  const uint64_t capacity = kDiskBytes / 512;
  CHECK(f.request(VIRTIO_BLK_T_IN, capacity, 512, true) == VIRTIO_BLK_S_IOERR);
  CHECK(f.request(VIRTIO_BLK_T_IN, capacity - 1, 1024, true) == VIRTIO_BLK_S_IOERR);
  CHECK(f.request(VIRTIO_BLK_T_IN, capacity - 1, 512, true) == VIRTIO_BLK_S_OK);
  // A sector number that would overflow when multiplied by 512.
  CHECK(f.request(VIRTIO_BLK_T_OUT, UINT64_MAX / 256, 512, false) == VIRTIO_BLK_S_IOERR);
  CHECK(f.request(VIRTIO_BLK_T_IN, 0, 100, true) == VIRTIO_BLK_S_IOERR);
  CHECK(file_bytes(f.path) == pattern(kDiskBytes));
}

TEST_CASE("blk: GET_ID, unknown types and a missing header", "[unit]") {
  Fixture f(DiskMode::kReadOnly);
  CHECK(f.request(VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true) == VIRTIO_BLK_S_OK);
  const auto id = f.data(VIRTIO_BLK_ID_BYTES);
  CHECK(std::string(reinterpret_cast<const char*>(id.data())) == "husk-disk0");
  CHECK(f.request(99, 0, 0, false) == VIRTIO_BLK_S_UNSUPP);
  // A header descriptor too short to hold a header.
  REQUIRE(f.mem->write_obj<uint8_t>(kStatus, 0xff));
  f.vq.set_desc(0, kHeader, 8, VRING_DESC_F_NEXT, 1);
  f.vq.set_desc(1, kStatus, 1, VRING_DESC_F_WRITE);
  f.vq.publish(0);
  MmioDriver(*f.transport).notify(0);
  CHECK(*f.mem->read_obj<uint8_t>(kStatus) == VIRTIO_BLK_S_IOERR);
}

TEST_CASE("blk: a buffer outside guest memory makes the device need a reset", "[unit]") {
  Fixture f(DiskMode::kPersistent);
  f.vq.set_desc(0, kHeader, 16, VRING_DESC_F_NEXT, 1);
  f.vq.set_desc(1, 0x7fff0000, 512, VRING_DESC_F_NEXT, 2);  // past the 1 MiB of memory
  f.vq.set_desc(2, kStatus, 1, VRING_DESC_F_WRITE);
  f.vq.publish(0);
  MmioDriver(*f.transport).notify(0);
  CHECK((f.transport->status() & VIRTIO_CONFIG_S_NEEDS_RESET) != 0);
  CHECK_FALSE(f.transport->activated());
  CHECK(file_bytes(f.path) == pattern(kDiskBytes));
}

TEST_CASE("disk images: missing files and empty files are refused with the path", "[unit]") {
  TempDir dir;
  auto missing = DiskImage::open(dir.file("nope.img"), DiskMode::kReadOnly);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("nope.img") != std::string::npos);
  auto tiny = DiskImage::open(dir.write("tiny.img", std::vector<uint8_t>(100)), DiskMode::kReadOnly);
  REQUIRE_FALSE(tiny);
  CHECK(tiny.error().message.find("smaller than one 512-byte sector") != std::string::npos);
  auto odd = DiskImage::open(dir.write("odd.img", std::vector<uint8_t>(1000)), DiskMode::kCopyOnWrite);
  REQUIRE(odd);
  CHECK(odd->size() == 512);
}
