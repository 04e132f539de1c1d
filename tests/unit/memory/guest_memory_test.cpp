#include "runtime/memory/guest_memory.h"

#include <catch2/catch.hpp>

using namespace husk;

TEST_CASE("guest memory reads back what was written", "[unit]") {
  auto mem = GuestMemory::create({{0, 1 << 20}});
  REQUIRE(mem);
  const uint32_t value = 0xdeadbeef;
  REQUIRE(mem->write_obj(0x1000, value));
  auto back = mem->read_obj<uint32_t>(0x1000);
  REQUIRE(back);
  CHECK(*back == value);
  CHECK(mem->total_size() == (1 << 20));
}

TEST_CASE("guest memory refuses addresses outside every region", "[unit]") {
  auto mem = GuestMemory::create({{0, 1 << 20}, {4ull << 30, 1 << 20}});
  REQUIRE(mem);
  CHECK(mem->valid_range(0, 1 << 20));
  CHECK_FALSE(mem->valid_range(0, (1 << 20) + 1));           // one byte past the end
  CHECK_FALSE(mem->valid_range((1 << 20) - 4, 8));           // straddles the end
  CHECK_FALSE(mem->valid_range(2ull << 30, 1));              // in the hole
  CHECK(mem->valid_range(4ull << 30, 16));                    // second region
  CHECK_FALSE(mem->valid_range(UINT64_MAX - 3, 8));          // wraps around
  CHECK_FALSE(mem->valid_range(0x1000, UINT64_MAX));         // absurd length
  auto r = mem->read_obj<uint64_t>(3ull << 30);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == EFAULT);
  CHECK(r.error().message.find("outside guest memory") != std::string::npos);
  std::vector<uint8_t> big(16);
  CHECK_FALSE(mem->write((1 << 20) - 8, big));
  CHECK_FALSE(mem->fill((1 << 20) - 8, 0, 16));
}

TEST_CASE("guest memory regions must be aligned and disjoint", "[unit]") {
  CHECK_FALSE(GuestMemory::create({{0, 100}}));
  CHECK_FALSE(GuestMemory::create({{0x800, 0x1000}}));
  CHECK_FALSE(GuestMemory::create({{0, 0x2000}, {0x1000, 0x1000}}));
  CHECK_FALSE(GuestMemory::create({{0, 0}}));
  CHECK(GuestMemory::create({{0x2000, 0x1000}, {0, 0x1000}}));
}

TEST_CASE("a zero-length access at the end of a region is allowed", "[unit]") {
  auto mem = GuestMemory::create({{0, 0x1000}});
  REQUIRE(mem);
  CHECK(mem->valid_range(0x1000, 0));
  CHECK_FALSE(mem->valid_range(0x1001, 0));
}
