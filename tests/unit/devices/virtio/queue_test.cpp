// Split virtqueue (runtime/devices/virtio/queue.h) and ChainReader/ChainWriter
// against a driver that lays its rings out in real guest memory: well-formed
// chains first, then every hostile shape the queue must refuse.
#include "runtime/devices/virtio/queue.h"

#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <numeric>
#include <string>

#include "runtime/devices/virtio/chain_io.h"
#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "tests/support/virtq_driver.h"

using namespace husk;
using namespace husk::virtio;
using husk::test::RawDescriptor;
using husk::test::VirtqDriver;

namespace {

constexpr uint64_t kMemSize = 1 << 20;
constexpr GuestAddress kRings = 0x1000;
constexpr GuestAddress kBuffers = 0x10000;
constexpr GuestAddress kTable = 0x8000;  // indirect tables
constexpr uint16_t F_NEXT = VRING_DESC_F_NEXT;
constexpr uint16_t F_WRITE = VRING_DESC_F_WRITE;
constexpr uint16_t F_INDIRECT = VRING_DESC_F_INDIRECT;

struct Fixture {
  explicit Fixture(uint16_t size = 8, uint16_t max = 256)
      : mem(make_memory()), driver(mem, size, kRings), queue(max) {
    driver.configure(queue);
    REQUIRE(queue.validate(mem));
  }

  static GuestMemory make_memory() {
    auto m = GuestMemory::create({{0, kMemSize}});
    REQUIRE(m);
    return std::move(*m);
  }

  DescriptorChain pop_chain() {
    auto r = queue.pop(mem);
    REQUIRE(r);
    REQUIRE(r->has_value());
    return std::move(**r);
  }

  // The error message pop() returns; fails the test if pop succeeds.
  std::string pop_error() {
    auto r = queue.pop(mem);
    REQUIRE_FALSE(r);
    return r.error().message;
  }

  GuestMemory mem;
  VirtqDriver driver;
  Queue queue;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// --- well-formed chains ---------------------------------------------------

TEST_CASE("queue: an empty ring pops nothing", "[unit]") {
  Fixture f;
  auto r = f.queue.pop(f.mem);
  REQUIRE(r);
  CHECK_FALSE(r->has_value());
  CHECK(f.queue.in_flight() == 0);
}

TEST_CASE("queue: a single-descriptor chain", "[unit]") {
  Fixture f;
  f.driver.set_desc(3, kBuffers, 64);
  f.driver.publish(3);
  DescriptorChain c = f.pop_chain();
  CHECK(c.head == 3);
  REQUIRE(c.descriptors.size() == 1);
  CHECK(c.descriptors[0].addr == kBuffers);
  CHECK(c.descriptors[0].len == 64);
  CHECK_FALSE(c.descriptors[0].device_writable);
  CHECK(f.queue.in_flight() == 1);
  auto again = f.queue.pop(f.mem);
  REQUIRE(again);
  CHECK_FALSE(again->has_value());
}

TEST_CASE("queue: readable descriptors then writable ones, in next order", "[unit]") {
  Fixture f;
  // Out of table order on purpose: 5 -> 1 -> 7.
  f.driver.set_desc(5, kBuffers, 16, F_NEXT, 1);
  f.driver.set_desc(1, kBuffers + 0x100, 32, F_NEXT, 7);
  f.driver.set_desc(7, kBuffers + 0x200, 512, F_WRITE);
  f.driver.publish(5);
  DescriptorChain c = f.pop_chain();
  CHECK(c.head == 5);
  REQUIRE(c.descriptors.size() == 3);
  CHECK(c.descriptors[0].addr == kBuffers);
  CHECK_FALSE(c.descriptors[0].device_writable);
  CHECK(c.descriptors[1].addr == kBuffers + 0x100);
  CHECK_FALSE(c.descriptors[1].device_writable);
  CHECK(c.descriptors[2].addr == kBuffers + 0x200);
  CHECK(c.descriptors[2].len == 512);
  CHECK(c.descriptors[2].device_writable);
  CHECK(ChainReader(f.mem, c).remaining() == 48);
  CHECK(ChainWriter(f.mem, c).remaining() == 512);
}

TEST_CASE("queue: chains come off the ring in avail order", "[unit]") {
  Fixture f;
  for (uint16_t i = 0; i < 8; ++i) f.driver.set_desc(i, kBuffers + 0x100 * i, 8);
  for (uint16_t head : {6, 2, 4}) f.driver.publish(head);
  CHECK(f.pop_chain().head == 6);
  CHECK(f.pop_chain().head == 2);
  CHECK(f.pop_chain().head == 4);
  CHECK(f.queue.in_flight() == 3);
}

TEST_CASE("queue: a chain exactly as long as the queue is accepted", "[unit]") {
  Fixture f(4);
  for (uint16_t i = 0; i < 3; ++i) f.driver.set_desc(i, kBuffers + 0x10 * i, 16, F_NEXT, i + 1);
  f.driver.set_desc(3, kBuffers + 0x30, 16, F_WRITE);
  f.driver.publish(0);
  CHECK(f.pop_chain().descriptors.size() == 4);
}

TEST_CASE("queue: the ring wraps around its size and the u16 index", "[unit]") {
  Fixture f(4);
  f.driver.set_desc(0, kBuffers, 8);
  // Past 65535 the avail index wraps to 0 while slots keep cycling mod 4.
  for (uint32_t i = 0; i < 70000; ++i) {
    f.driver.publish(0);
    DescriptorChain c = f.pop_chain();
    REQUIRE(f.queue.add_used(f.mem, c.head, 1));
  }
  CHECK(f.driver.used_idx() == static_cast<uint16_t>(70000));
  CHECK(f.queue.in_flight() == 0);
}

// --- ChainReader / ChainWriter --------------------------------------------

TEST_CASE("chain io: reads and writes span descriptors and stop at the end", "[unit]") {
  Fixture f;
  std::array<uint8_t, 12> pattern{};
  std::iota(pattern.begin(), pattern.end(), uint8_t{1});
  // Readable 4 + 0 (skipped) + 3 + 5 bytes, then writable 2 + 6 bytes.
  REQUIRE(f.mem.write(kBuffers, std::span(pattern).subspan(0, 4)));
  REQUIRE(f.mem.write(kBuffers + 0x100, std::span(pattern).subspan(4, 3)));
  REQUIRE(f.mem.write(kBuffers + 0x200, std::span(pattern).subspan(7, 5)));
  f.driver.set_desc(0, kBuffers, 4, F_NEXT, 1);
  f.driver.set_desc(1, kBuffers + 0x80, 0, F_NEXT, 2);
  f.driver.set_desc(2, kBuffers + 0x100, 3, F_NEXT, 3);
  f.driver.set_desc(3, kBuffers + 0x200, 5, F_NEXT, 4);
  f.driver.set_desc(4, kBuffers + 0x300, 2, F_WRITE | F_NEXT, 5);
  f.driver.set_desc(5, kBuffers + 0x400, 6, F_WRITE);
  f.driver.publish(0);
  DescriptorChain c = f.pop_chain();

  ChainReader reader(f.mem, c);
  CHECK(reader.remaining() == 12);
  std::array<uint8_t, 6> first{};
  REQUIRE(reader.read(first));  // crosses the first (and the empty) descriptor
  CHECK(std::equal(first.begin(), first.end(), pattern.begin()));
  CHECK(reader.consumed() == 6);
  auto word = reader.read_obj<uint32_t>();  // crosses the 3- and 5-byte ones
  REQUIRE(word);
  uint32_t expected_word = 0;
  std::memcpy(&expected_word, pattern.data() + 6, 4);
  CHECK(*word == expected_word);
  CHECK(reader.remaining() == 2);

  // Past the end: an error, and the cursor does not move.
  auto too_far = reader.read_obj<uint32_t>();
  REQUIRE_FALSE(too_far);
  CHECK(contains(too_far.error().message, "2 bytes left"));
  CHECK(reader.remaining() == 2);
  auto last = reader.read_obj<uint16_t>();
  REQUIRE(last);
  CHECK(reader.remaining() == 0);
  std::array<uint8_t, 1> one{};
  CHECK_FALSE(reader.read(one));
  CHECK(reader.read(std::span<uint8_t>()));  // reading nothing always works

  ChainWriter writer(f.mem, c);
  CHECK(writer.remaining() == 8);
  const std::array<uint8_t, 5> out{0xa0, 0xa1, 0xa2, 0xa3, 0xa4};
  REQUIRE(writer.write(out));
  CHECK(writer.consumed() == 5);
  auto iov = writer.take(3);  // the rest of the 6-byte descriptor, as one iovec
  REQUIRE(iov);
  REQUIRE(iov->size() == 1);
  CHECK(iov->at(0).iov_len == 3);
  CHECK_FALSE(writer.write_obj<uint8_t>(0xff));
  std::array<uint8_t, 2> a{};
  std::array<uint8_t, 3> b{};
  REQUIRE(f.mem.read(kBuffers + 0x300, a));
  REQUIRE(f.mem.read(kBuffers + 0x400, b));
  CHECK(a == std::array<uint8_t, 2>{0xa0, 0xa1});
  CHECK(b == std::array<uint8_t, 3>{0xa2, 0xa3, 0xa4});
}

TEST_CASE("chain io: take() returns one host view per descriptor touched", "[unit]") {
  Fixture f;
  f.driver.set_desc(0, kBuffers, 10, F_NEXT, 1);
  f.driver.set_desc(1, kBuffers + 0x80, 0, F_NEXT, 2);  // empty: no iovec of its own
  f.driver.set_desc(2, kBuffers + 0x100, 10);
  f.driver.publish(0);
  DescriptorChain c = f.pop_chain();
  ChainReader reader(f.mem, c);
  auto iov = reader.take(15);
  REQUIRE(iov);
  REQUIRE(iov->size() == 2);
  auto host = f.mem.slice(kBuffers, 10);
  REQUIRE(host);
  CHECK(iov->at(0).iov_base == host->data());
  CHECK(iov->at(0).iov_len == 10);
  CHECK(iov->at(1).iov_len == 5);
  CHECK_FALSE(reader.take(6));
  CHECK(reader.take(5));
  CHECK(ChainWriter(f.mem, c).remaining() == 0);  // no writable part
}

// --- hostile chains -------------------------------------------------------

TEST_CASE("queue: a chain that loops is refused", "[unit]") {
  Fixture f;
  f.driver.set_desc(0, kBuffers, 8, F_NEXT, 1);
  f.driver.set_desc(1, kBuffers, 8, F_NEXT, 0);
  f.driver.publish(0);
  CHECK(contains(f.pop_error(), "loops"));
}

TEST_CASE("queue: a descriptor that points at itself is refused", "[unit]") {
  Fixture f;
  f.driver.set_desc(2, kBuffers, 8, F_NEXT, 2);
  f.driver.publish(2);
  CHECK(contains(f.pop_error(), "loops"));
}

TEST_CASE("queue: a chain longer than the queue is refused", "[unit]") {
  Fixture f(4);
  // Every descriptor in turn, then around again: 5 and more descriptors.
  for (uint16_t i = 0; i < 4; ++i) f.driver.set_desc(i, kBuffers, 8, F_NEXT, (i + 1) % 4);
  f.driver.publish(1);
  CHECK(contains(f.pop_error(), "longer than the queue"));
}

TEST_CASE("queue: a next index past the queue size is refused", "[unit]") {
  Fixture f(8);
  f.driver.set_desc(0, kBuffers, 8, F_NEXT, 8);
  f.driver.publish(0);
  CHECK(contains(f.pop_error(), "descriptor index 8 is past the queue size 8"));
}

TEST_CASE("queue: a head index past the queue size is refused", "[unit]") {
  Fixture f(8);
  f.driver.publish(8);
  CHECK(contains(f.pop_error(), "past the queue size"));
  f.driver.publish(0xffff);
  CHECK(contains(f.pop_error(), "descriptor index 65535"));
}

TEST_CASE("queue: buffers outside guest memory are refused", "[unit]") {
  Fixture f;
  SECTION("entirely outside") { f.driver.set_desc(0, 2 * kMemSize, 8); }
  SECTION("straddling the end") { f.driver.set_desc(0, kMemSize - 8, 16); }
  SECTION("one byte past the end") { f.driver.set_desc(0, kMemSize, 1); }
  SECTION("length past the end") { f.driver.set_desc(0, kBuffers, 0xffffffff); }
  SECTION("wrapping around 2^64") { f.driver.set_desc(0, UINT64_MAX - 7, 16); }
  SECTION("a later, writable one") {
    f.driver.set_desc(0, kBuffers, 8, F_NEXT, 1);
    f.driver.set_desc(1, UINT64_MAX, 2, F_WRITE);
  }
  f.driver.publish(0);
  CHECK(contains(f.pop_error(), "outside guest memory"));
}

TEST_CASE("queue: a buffer ending exactly at the end of memory is fine", "[unit]") {
  Fixture f;
  f.driver.set_desc(0, kMemSize - 16, 16, F_WRITE);
  f.driver.publish(0);
  CHECK(f.pop_chain().descriptors.at(0).len == 16);
}

TEST_CASE("queue: an avail index that jumps by more than the size is refused", "[unit]") {
  Fixture f(8);
  f.driver.set_desc(0, kBuffers, 8);
  SECTION("size + 1 ahead") {
    f.driver.set_avail_idx(9);
    CHECK(contains(f.pop_error(), "moved by 9"));
  }
  SECTION("behind the device (wraps to 65535 ahead)") {
    f.driver.publish(0);
    f.pop_chain();
    f.driver.set_avail_idx(0);
    CHECK(contains(f.pop_error(), "moved by 65535"));
  }
  SECTION("exactly size ahead is a full ring, not an error") {
    for (int i = 0; i < 8; ++i) f.driver.publish(0);
    for (int i = 0; i < 8; ++i) f.pop_chain();
    auto r = f.queue.pop(f.mem);
    REQUIRE(r);
    CHECK_FALSE(r->has_value());
  }
}

TEST_CASE("queue: a readable descriptor after a writable one is refused", "[unit]") {
  Fixture f;
  f.driver.set_desc(0, kBuffers, 8, F_WRITE | F_NEXT, 1);
  f.driver.set_desc(1, kBuffers + 0x100, 8);
  f.driver.publish(0);
  CHECK(contains(f.pop_error(), "device-readable descriptor follows a device-writable"));
}

TEST_CASE("queue: rings outside guest memory fail instead of being read", "[unit]") {
  // pop() on a queue whose rings were never validated: errors, no crash.
  auto mem = GuestMemory::create({{0, 0x10000}});
  REQUIRE(mem);
  Queue q(8);
  q.set_size(8);
  q.set_avail_ring(0x20000);
  // Not ready: nothing to pop, nothing read.
  auto idle = q.pop(*mem);
  REQUIRE(idle);
  CHECK_FALSE(idle->has_value());
  CHECK_FALSE(q.add_used(*mem, 0, 0));
  q.set_ready(true);
  CHECK_FALSE(q.pop(*mem));
  q.set_avail_ring(UINT64_MAX - 3);  // avail->idx straddles 2^64
  CHECK_FALSE(q.pop(*mem));
  q.set_used_ring(0x20000);
  CHECK_FALSE(q.add_used(*mem, 0, 0));
}

// --- indirect descriptors -------------------------------------------------

TEST_CASE("queue: a valid indirect table", "[unit]") {
  Fixture f;
  const std::array<RawDescriptor, 3> table{{
      {kBuffers, 16, F_NEXT, 2},             // out of table order: 0 -> 2 -> 1
      {kBuffers + 0x200, 256, F_WRITE, 0},
      {kBuffers + 0x100, 32, F_NEXT, 1},
  }};
  f.driver.write_indirect(kTable, table);
  f.driver.set_desc(4, kTable, 16 * table.size(), F_INDIRECT);
  f.driver.publish(4);
  DescriptorChain c = f.pop_chain();
  CHECK(c.head == 4);
  REQUIRE(c.descriptors.size() == 3);
  CHECK(c.descriptors[0].addr == kBuffers);
  CHECK(c.descriptors[1].addr == kBuffers + 0x100);
  CHECK(c.descriptors[1].len == 32);
  CHECK(c.descriptors[2].addr == kBuffers + 0x200);
  CHECK(c.descriptors[2].device_writable);
  CHECK(ChainReader(f.mem, c).remaining() == 48);
  CHECK(ChainWriter(f.mem, c).remaining() == 256);
}

TEST_CASE("queue: an indirect table as long as the queue is accepted", "[unit]") {
  Fixture f(4);
  std::array<RawDescriptor, 4> table{};
  for (uint16_t i = 0; i < 4; ++i) table[i] = {kBuffers + 0x10 * i, 16, F_NEXT, static_cast<uint16_t>(i + 1)};
  table[3].flags = 0;
  f.driver.write_indirect(kTable, table);
  f.driver.set_desc(0, kTable, 64, F_INDIRECT);
  f.driver.publish(0);
  CHECK(f.pop_chain().descriptors.size() == 4);
}

TEST_CASE("queue: hostile indirect descriptors are refused", "[unit]") {
  Fixture f(4);
  std::string expected;
  SECTION("nested indirect") {
    const std::array<RawDescriptor, 2> table{{{kBuffers, 8, F_NEXT, 1}, {kTable + 0x100, 16, F_INDIRECT, 0}}};
    f.driver.write_indirect(kTable, table);
    f.driver.set_desc(0, kTable, 32, F_INDIRECT);
    expected = "nested indirect";
  }
  SECTION("table length not a multiple of 16") {
    f.driver.set_desc(0, kTable, 20, F_INDIRECT);
    expected = "not a multiple of 16";
  }
  SECTION("empty table") {
    f.driver.set_desc(0, kTable, 0, F_INDIRECT);
    expected = "not a multiple of 16";
  }
  SECTION("table outside guest memory") {
    f.driver.set_desc(0, kMemSize - 16, 32, F_INDIRECT);
    expected = "indirect table";
  }
  SECTION("table wrapping around 2^64") {
    f.driver.set_desc(0, UINT64_MAX - 15, 32, F_INDIRECT);
    expected = "outside guest memory";
  }
  SECTION("indirect with NEXT") {
    f.driver.write_indirect(kTable, std::array<RawDescriptor, 1>{{{kBuffers, 8, 0, 0}}});
    f.driver.set_desc(0, kTable, 16, F_INDIRECT | F_NEXT, 1);
    f.driver.set_desc(1, kBuffers, 8);
    expected = "only one in its chain";
  }
  SECTION("indirect after a direct descriptor") {
    f.driver.write_indirect(kTable, std::array<RawDescriptor, 1>{{{kBuffers, 8, 0, 0}}});
    f.driver.set_desc(0, kBuffers, 8, F_NEXT, 1);
    f.driver.set_desc(1, kTable, 16, F_INDIRECT);
    expected = "only one in its chain";
  }
  SECTION("loop inside the table") {
    const std::array<RawDescriptor, 2> table{{{kBuffers, 8, F_NEXT, 1}, {kBuffers, 8, F_NEXT, 0}}};
    f.driver.write_indirect(kTable, table);
    f.driver.set_desc(0, kTable, 32, F_INDIRECT);
    expected = "loops";
  }
  SECTION("next past the table") {
    const std::array<RawDescriptor, 2> table{{{kBuffers, 8, F_NEXT, 2}, {kBuffers, 8, 0, 0}}};
    f.driver.write_indirect(kTable, table);
    f.driver.set_desc(0, kTable, 32, F_INDIRECT);
    expected = "past the table";
  }
  SECTION("table longer than the queue") {
    std::array<RawDescriptor, 5> table{};
    for (uint16_t i = 0; i < 5; ++i) table[i] = {kBuffers, 8, F_NEXT, static_cast<uint16_t>(i + 1)};
    table[4].flags = 0;
    f.driver.write_indirect(kTable, table);
    f.driver.set_desc(0, kTable, 16 * 5, F_INDIRECT);
    expected = "exceeds the queue size";
  }
  SECTION("buffer outside guest memory") {
    f.driver.write_indirect(kTable, std::array<RawDescriptor, 1>{{{kMemSize - 4, 8, 0, 0}}});
    f.driver.set_desc(0, kTable, 16, F_INDIRECT);
    expected = "outside guest memory";
  }
  SECTION("readable after writable") {
    const std::array<RawDescriptor, 2> table{{{kBuffers, 8, F_WRITE | F_NEXT, 1}, {kBuffers, 8, 0, 0}}};
    f.driver.write_indirect(kTable, table);
    f.driver.set_desc(0, kTable, 32, F_INDIRECT);
    expected = "device-readable descriptor follows";
  }
  f.driver.publish(0);
  const std::string error = f.pop_error();
  INFO(error);
  CHECK(contains(error, expected));
}

// --- used ring and interrupts ---------------------------------------------

TEST_CASE("queue: add_used writes the element, then the index", "[unit]") {
  Fixture f(4);
  for (uint16_t i = 0; i < 4; ++i) f.driver.set_desc(i, kBuffers + 0x100 * i, 64, F_WRITE);
  f.driver.publish(2);
  f.driver.publish(0);
  f.driver.publish(3);
  const uint16_t a = f.pop_chain().head;
  const uint16_t b = f.pop_chain().head;
  const uint16_t c = f.pop_chain().head;
  CHECK(f.queue.in_flight() == 3);
  // Completion order is the device's choice, not the avail order.
  REQUIRE(f.queue.add_used(f.mem, b, 10));
  CHECK(f.driver.used_idx() == 1);
  REQUIRE(f.queue.add_used(f.mem, c, 0));
  REQUIRE(f.queue.add_used(f.mem, a, 64));
  CHECK(f.driver.used_idx() == 3);
  CHECK(f.queue.in_flight() == 0);
  CHECK(f.driver.used_elem(0).id == 0);
  CHECK(f.driver.used_elem(0).len == 10);
  CHECK(f.driver.used_elem(1).id == 3);
  CHECK(f.driver.used_elem(1).len == 0);
  CHECK(f.driver.used_elem(2).id == 2);
  CHECK(f.driver.used_elem(2).len == 64);
  CHECK(f.driver.used_flags() == 0);

  // Slots wrap modulo the size: the fifth element lands in slot 0.
  for (int i = 0; i < 2; ++i) {
    f.driver.publish(1);
    REQUIRE(f.queue.add_used(f.mem, f.pop_chain().head, 7));
  }
  CHECK(f.driver.used_idx() == 5);
  CHECK(f.driver.used_elem(3).id == 1);
  CHECK(f.driver.used_elem(0).id == 1);
  CHECK(f.driver.used_elem(0).len == 7);
}

TEST_CASE("queue: add_used refuses an id past the queue size", "[unit]") {
  Fixture f(4);
  auto r = f.queue.add_used(f.mem, 4, 0);
  REQUIRE_FALSE(r);
  CHECK(contains(r.error().message, "used id 4"));
  CHECK(f.driver.used_idx() == 0);
}

TEST_CASE("queue: interrupts without EVENT_IDX follow VRING_AVAIL_F_NO_INTERRUPT", "[unit]") {
  Fixture f(4);
  f.driver.set_desc(0, kBuffers, 8, F_WRITE);
  auto complete_one = [&] {
    f.driver.publish(0);
    REQUIRE(f.queue.add_used(f.mem, f.pop_chain().head, 8));
  };
  auto needs = [&] {
    auto r = f.queue.needs_interrupt(f.mem);
    REQUIRE(r);
    return *r;
  };
  CHECK_FALSE(needs());  // nothing used yet
  complete_one();
  CHECK(needs());
  CHECK_FALSE(needs());  // nothing new since
  f.driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
  complete_one();
  CHECK_FALSE(needs());
  f.driver.set_avail_flags(0);
  CHECK_FALSE(needs());  // the suppressed one is not signalled late
  complete_one();
  complete_one();
  CHECK(needs());
  f.driver.set_used_event(0);  // ignored without EVENT_IDX
  complete_one();
  CHECK(needs());
}

TEST_CASE("queue: interrupts with EVENT_IDX follow used_event like vring_need_event", "[unit]") {
  Fixture f(8);
  f.queue.set_event_idx(true);
  f.driver.set_desc(0, kBuffers, 8, F_WRITE);
  auto needs = [&] {
    auto r = f.queue.needs_interrupt(f.mem);
    REQUIRE(r);
    return *r;
  };
  auto complete = [&](int n) {
    for (int i = 0; i < n; ++i) {
      f.driver.publish(0);
      REQUIRE(f.queue.add_used(f.mem, f.pop_chain().head, 8));
    }
  };

  SECTION("the driver asks for the entry at used_event") {
    f.driver.set_used_event(2);
    complete(1);  // used idx 1: event 2 not reached
    CHECK_FALSE(needs());
    complete(1);  // idx 2: still not past used_event
    CHECK_FALSE(needs());
    complete(1);  // idx 3: the entry at index 2 was used
    CHECK(needs());
    complete(1);
    CHECK_FALSE(needs());
  }
  SECTION("a batch that jumps over used_event signals once") {
    f.driver.set_used_event(1);
    complete(5);
    CHECK(needs());
    complete(1);
    CHECK_FALSE(needs());
  }
  SECTION("NO_INTERRUPT is not what decides under EVENT_IDX") {
    f.driver.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
    f.driver.set_used_event(0);
    complete(1);
    CHECK(needs());
  }
  SECTION("matches vring_need_event across the u16 wrap") {
    // Drive the used index around 2^16 in uneven batches, with used_event
    // placed before, inside and after each batch, and compare with the
    // kernel's own formula.
    uint16_t old_used = 0;
    uint16_t used = 0;
    int signalled = 0;
    for (uint32_t step = 0; step < 40000; ++step) {
      const int batch = 1 + static_cast<int>(step % 3);
      const uint16_t event = static_cast<uint16_t>(used + (step % 5) - 1);
      f.driver.set_used_event(event);
      complete(batch);
      used = static_cast<uint16_t>(used + batch);
      const bool expected = vring_need_event(event, used, old_used) != 0;
      REQUIRE(needs() == expected);
      signalled += expected ? 1 : 0;
      old_used = used;
    }
    CHECK(used < 40000);  // it did wrap
    CHECK(signalled > 0);
    // Right at the wrap: old 0xfffe, new 0x0001, event 0xffff in between.
    // (Reached by continuing until the next wrap point.)
    while (used != 0xfffe) {
      complete(1);
      used = static_cast<uint16_t>(used + 1);
    }
    (void)needs();
    f.driver.set_used_event(0xffff);
    complete(3);
    CHECK(needs());
    f.driver.set_used_event(0xfffe);  // behind the batch 0x0001..0x0003
    complete(2);
    CHECK_FALSE(needs());
  }
}

TEST_CASE("queue: with EVENT_IDX an empty pop publishes avail_event", "[unit]") {
  Fixture f(8);
  f.queue.set_event_idx(true);
  f.driver.set_desc(0, kBuffers, 8);
  for (int i = 0; i < 3; ++i) f.driver.publish(0);
  for (int i = 0; i < 3; ++i) f.pop_chain();
  auto r = f.queue.pop(f.mem);
  REQUIRE(r);
  CHECK_FALSE(r->has_value());
  CHECK(f.driver.avail_event() == 3);  // "notify me when entry 3 is made available"
}

TEST_CASE("queue: without EVENT_IDX avail_event is left alone", "[unit]") {
  Fixture f(8);
  f.driver.set_desc(0, kBuffers, 8);
  f.driver.publish(0);
  f.pop_chain();
  REQUIRE(f.queue.pop(f.mem));
  CHECK(f.driver.avail_event() == 0);
}

// --- validate() and reset() -----------------------------------------------

TEST_CASE("queue: validate checks size and ring placement", "[unit]") {
  auto mem = GuestMemory::create({{0, kMemSize}});
  REQUIRE(mem);
  Queue q(16);
  VirtqDriver d(*mem, 16, kRings);
  d.configure(q);
  REQUIRE(q.validate(*mem));

  auto refused = [&](const std::string& part) {
    auto r = q.validate(*mem);
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(contains(r.error().message, part));
  };
  SECTION("size 0") {
    q.set_size(0);
    refused("queue size 0");
  }
  SECTION("size not a power of two") {
    q.set_size(12);
    refused("queue size 12");
  }
  SECTION("size above the maximum") {
    q.set_size(32);
    refused("queue size 32");
  }
  SECTION("smaller powers of two are fine") {
    for (uint16_t s : {1, 2, 4, 8}) {
      q.set_size(s);
      CHECK(q.validate(*mem));
    }
  }
  SECTION("misaligned descriptor table") {
    q.set_desc_table(kRings + 8);
    refused("descriptor table");
  }
  SECTION("descriptor table outside memory") {
    q.set_desc_table(kMemSize - 16 * 8);
    refused("descriptor table");
  }
  SECTION("descriptor table wrapping around 2^64") {
    q.set_desc_table(UINT64_MAX - 15);
    refused("descriptor table");
  }
  SECTION("misaligned available ring") {
    q.set_avail_ring(d.avail_ring() + 1);
    refused("available ring");
  }
  SECTION("available ring whose used_event lies outside memory") {
    q.set_avail_ring(kMemSize - (4 + 2 * 16));  // the ring fits, used_event does not
    refused("available ring");
  }
  SECTION("misaligned used ring") {
    q.set_used_ring(d.used_ring() + 2);
    refused("used ring");
  }
  SECTION("used ring whose avail_event lies outside memory") {
    q.set_used_ring(kMemSize - (4 + 8 * 16));
    refused("used ring");
  }
  SECTION("used ring far outside memory") {
    q.set_used_ring(0x100000000);
    refused("used ring");
  }
}

TEST_CASE("queue: reset returns to the power-on state", "[unit]") {
  Fixture f(8, 16);
  f.queue.set_event_idx(true);
  f.driver.set_desc(0, kBuffers, 8);
  f.driver.publish(0);
  f.driver.publish(0);
  f.pop_chain();
  CHECK(f.queue.in_flight() == 1);

  f.queue.reset();
  CHECK(f.queue.size() == 16);
  CHECK(f.queue.max_size() == 16);
  CHECK_FALSE(f.queue.ready());
  CHECK(f.queue.desc_table() == 0);
  CHECK(f.queue.avail_ring() == 0);
  CHECK(f.queue.used_ring() == 0);
  CHECK(f.queue.in_flight() == 0);

  // A driver starting over from index 0 is served from index 0.
  VirtqDriver fresh(f.mem, 8, kRings);
  fresh.configure(f.queue);
  REQUIRE(f.queue.validate(f.mem));
  fresh.set_desc(5, kBuffers, 8);
  fresh.publish(5);
  auto r = f.queue.pop(f.mem);
  REQUIRE(r);
  REQUIRE(r->has_value());
  CHECK((*r)->head == 5);
  auto none = f.queue.pop(f.mem);
  REQUIRE(none);
  CHECK_FALSE(none->has_value());
  CHECK(fresh.avail_event() == 0);  // EVENT_IDX was switched off by the reset
}
