#include "runtime/devices/bus.h"

#include <catch2/catch.hpp>

using namespace husk::devices;

namespace {
class Recorder : public BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    std::fill(data.begin(), data.end(), tag);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_write = data.empty() ? 0 : data[0];
  }
  uint8_t tag = 0;
  uint64_t last_offset = ~0ull;
  uint8_t last_write = 0;
};
}  // namespace

TEST_CASE("the bus dispatches by range with offsets", "[unit]") {
  Bus bus("test");
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  a->tag = 0xaa;
  b->tag = 0xbb;
  REQUIRE(bus.insert(a, 0x100, 0x10));
  REQUIRE(bus.insert(b, 0x110, 0x10));
  uint8_t byte = 0;
  CHECK(bus.read(0x105, std::span(&byte, 1)));
  CHECK(byte == 0xaa);
  CHECK(a->last_offset == 5);
  CHECK(bus.read(0x110, std::span(&byte, 1)));
  CHECK(byte == 0xbb);
  CHECK(b->last_offset == 0);
  const uint8_t v = 7;
  CHECK(bus.write(0x11f, std::span(&v, 1)));
  CHECK(b->last_write == 7);
  CHECK(b->last_offset == 0xf);
}

TEST_CASE("the bus refuses overlapping ranges", "[unit]") {
  Bus bus("test");
  auto d = std::make_shared<Recorder>();
  REQUIRE(bus.insert(d, 0x100, 0x10));
  CHECK_FALSE(bus.insert(d, 0x108, 0x10));
  CHECK_FALSE(bus.insert(d, 0xf8, 0x10));
  CHECK_FALSE(bus.insert(d, 0x100, 1));
  CHECK_FALSE(bus.insert(d, 0x200, 0));
  CHECK_FALSE(bus.insert(d, UINT64_MAX - 1, 4));
  CHECK(bus.insert(d, 0x110, 1));
  CHECK(bus.insert(d, 0xff, 1));
}

TEST_CASE("unclaimed accesses read all ones and are remembered once", "[unit]") {
  Bus bus("test");
  auto d = std::make_shared<Recorder>();
  REQUIRE(bus.insert(d, 0x100, 0x4));
  uint32_t word = 0;
  auto bytes = std::span(reinterpret_cast<uint8_t*>(&word), 4);
  CHECK_FALSE(bus.read(0x200, bytes));
  CHECK(word == 0xffffffff);
  CHECK_FALSE(bus.read(0x200, bytes));
  // A wide access running past the end of a device is not split: unclaimed.
  CHECK_FALSE(bus.read(0x102, bytes));
  CHECK(bus.unclaimed_count() == 2);
}
