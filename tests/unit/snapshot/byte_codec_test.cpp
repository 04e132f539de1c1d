// ByteWriter and ByteReader (runtime/snapshot/byte_codec.h): the exact
// bytes written, round trips, and every way a read of hostile bytes fails
// without reading past its input or allocating for a length it lacks.
#include "runtime/snapshot/byte_codec.h"

#include <linux/kvm.h>
#include <sys/mman.h>

#include <catch2/catch.hpp>

#include "tests/unit/snapshot/snapshot_test_support.h"

using namespace husk;
using namespace husk::snapshot;

namespace {

std::vector<uint8_t> done(ByteWriter&& w) {
  auto out = std::move(w).finish();
  REQUIRE(out);
  return *out;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("byte codec: integers are little-endian of their width", "[snapshot]") {
  ByteWriter w;
  w.u8(0x01);
  w.u16(0x0302);
  w.u32(0x07060504);
  w.u64(0x0f0e0d0c0b0a0908ull);
  w.boolean(true);
  const auto bytes = done(std::move(w));
  REQUIRE(bytes == std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1});
  ByteReader r(bytes);
  CHECK(*r.u8() == 0x01);
  CHECK(*r.u16() == 0x0302);
  CHECK(*r.u32() == 0x07060504);
  CHECK(*r.u64() == 0x0f0e0d0c0b0a0908ull);
  CHECK(*r.boolean());
  CHECK(r.expect_end());
}

TEST_CASE("byte codec: bytes, strings and structs round trip", "[snapshot]") {
  kvm_regs regs;
  test::fill(regs, 3);
  const std::vector<kvm_msr_entry> msrs = {{0x10, 0, 123}, {0xc0000080, 0, 0xd01}};
  ByteWriter w;
  w.bytes(std::vector<uint8_t>{9, 8, 7});
  w.string("hello");
  w.string("");
  w.raw(regs);
  w.raw_array(std::span<const kvm_msr_entry>(msrs));
  const auto bytes = done(std::move(w));
  CHECK(bytes.size() == 4 + 3 + 4 + 5 + 4 + 4 + sizeof regs + 8 + 2 * sizeof(kvm_msr_entry));
  ByteReader r(bytes);
  CHECK(*r.bytes(3) == std::vector<uint8_t>{9, 8, 7});
  CHECK(*r.string(5) == "hello");
  CHECK(r.string(0)->empty());
  auto regs2 = r.raw<kvm_regs>();
  REQUIRE(regs2);
  CHECK(test::same_bytes(regs, *regs2));
  auto msrs2 = r.raw_array<kvm_msr_entry>(2);
  REQUIRE(msrs2);
  REQUIRE(msrs2->size() == 2);
  CHECK(test::same_bytes((*msrs2)[1], msrs[1]));
  CHECK(r.expect_end());
}

TEST_CASE("byte codec: every read past the end fails and moves nothing", "[snapshot]") {
  const std::vector<uint8_t> three = {1, 2, 3};
  ByteReader r(three);
  CHECK_FALSE(r.u32());
  CHECK_FALSE(r.u64());
  CHECK_FALSE(r.fixed(4));
  CHECK_FALSE(r.raw<uint64_t>());
  CHECK(r.offset() == 0);
  CHECK(*r.u16() == 0x0201);
  CHECK_FALSE(r.u16());
  CHECK(contains(r.u16().error().message, "truncated at byte 2: 2 bytes needed, 1 left"));
  CHECK(*r.u8() == 3);
  CHECK_FALSE(r.u8());
  CHECK(r.expect_end());
}

TEST_CASE("byte codec: a length past the input is an error, not an allocation", "[snapshot]") {
  std::vector<uint8_t> in(100, 0);
  in[0] = in[1] = in[2] = in[3] = 0xff;  // a length of 4 GiB - 1
  SECTION("bytes") {
    ByteReader r(in);
    auto b = r.bytes(SIZE_MAX);
    REQUIRE_FALSE(b);
    CHECK(contains(b.error().message, "truncated"));
  }
  SECTION("string") {
    ByteReader r(in);
    CHECK_FALSE(r.string(SIZE_MAX));
  }
  SECTION("a length over its limit names the limit") {
    ByteReader r(in);
    auto s = r.string(64);
    REQUIRE_FALSE(s);
    CHECK(contains(s.error().message, "at most 64"));
  }
  SECTION("a count over its limit") {
    ByteReader r(in);
    auto n = r.count(256, 1);
    REQUIRE_FALSE(n);
    CHECK(contains(n.error().message, "a count of 4294967295, at most 256"));
  }
  SECTION("a count whose elements the input cannot hold") {
    in[0] = 10, in[1] = in[2] = in[3] = 0;
    ByteReader r(in);
    auto n = r.count(256, 10);
    REQUIRE_FALSE(n);
    CHECK(contains(n.error().message, "needs at least 100 bytes, 96 left"));
    ByteReader r2(in);
    CHECK(*r2.count(256, 9) == 10);
  }
  SECTION("a struct array longer than the input") {
    ByteWriter w;
    w.u32(sizeof(kvm_msr_entry));
    w.u32(4096);
    const auto bytes = done(std::move(w));
    ByteReader r(bytes);
    CHECK_FALSE(r.raw_array<kvm_msr_entry>(4096));
  }
}

TEST_CASE("byte codec: a struct of another size is refused with the note", "[snapshot]") {
  ByteWriter w;
  w.u32(sizeof(kvm_regs) - 8);
  for (size_t i = 0; i < sizeof(kvm_regs); ++i) w.u8(0);
  const auto bytes = done(std::move(w));
  ByteReader r(bytes);
  auto v = r.raw<kvm_regs>("a different ABI");
  REQUIRE_FALSE(v);
  CHECK(v.error().message == "at byte 0: stored as 136 bytes, 144 here: a different ABI");
  ByteReader r2(bytes);
  CHECK_FALSE(r2.raw_array<kvm_msr_entry>(10));
}

TEST_CASE("byte codec: a boolean is 0 or 1", "[snapshot]") {
  const std::vector<uint8_t> in = {0, 1, 2};
  ByteReader r(in);
  CHECK_FALSE(*r.boolean());
  CHECK(*r.boolean());
  auto b = r.boolean();
  REQUIRE_FALSE(b);
  CHECK(b.error().message == "at byte 2: 2 is not a boolean (0 or 1)");
}

TEST_CASE("byte codec: bytes left over are an error", "[snapshot]") {
  const std::vector<uint8_t> in = {1, 2, 3};
  ByteReader r(in);
  REQUIRE(r.u8());
  auto end = r.expect_end();
  REQUIRE_FALSE(end);
  CHECK(end.error().message == "2 bytes left over after byte 1");
}

TEST_CASE("byte codec: the writer refuses a length past 32 bits", "[snapshot]") {
  // 4 GiB of address space, never touched: the length is refused first.
  const size_t big = size_t{1} << 32;
  void* p = ::mmap(nullptr, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  REQUIRE(p != MAP_FAILED);
  ByteWriter w;
  w.u8(1);
  w.bytes(std::span<const uint8_t>(static_cast<const uint8_t*>(p), big));
  w.u8(2);
  auto out = std::move(w).finish();
  ::munmap(p, big);
  REQUIRE_FALSE(out);
  CHECK(out.error().message == "at byte 1: a length of 4294967296 does not fit in 32 bits");
}
