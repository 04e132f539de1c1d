// libFuzzer target for the split virtqueue and its chain readers
// (runtime/devices/virtio/queue.h, chain_io.h): the input is what a hostile
// guest controls, namely the queue registers and the contents of guest
// memory (rings, descriptor tables, indirect tables). The device side then
// does what a device does: pop chains, read the readable part, write the
// writable part, return them on the used ring and ask whether to interrupt.
// Nothing here may crash, read or write outside guest memory, or hang; the
// sanitizers catch the first two, libFuzzer's timeout the third.
//
// Input: a FuzzHeader, then the bytes of guest memory from address 0.
// Build and run: `make fuzz` (CMake option HUSK_FUZZ, clang only).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "runtime/devices/virtio/chain_io.h"
#include "runtime/devices/virtio/queue.h"
#include "runtime/memory/guest_memory.h"

namespace {

using husk::GuestAddress;
using husk::GuestMemory;
using husk::virtio::ChainReader;
using husk::virtio::ChainWriter;
using husk::virtio::DescriptorChain;
using husk::virtio::Queue;

// Two regions with a hole between them, so that buffers can straddle the
// end of a region and fall into unmapped guest-physical space.
constexpr GuestAddress kLowBase = 0;
constexpr uint64_t kLowSize = 0x4000;
constexpr GuestAddress kHighBase = 0x5000;
constexpr uint64_t kHighSize = 0x1000;

// Little-endian, packed by hand so seeds are easy to write (see
// tests/fuzz/make_seeds.py).
struct FuzzHeader {
  uint16_t queue_size;   // QueueNum as the driver wrote it
  uint16_t max_size;     // QueueNumMax of the device; 0 means 256
  uint32_t desc_table;   // ring addresses; bit 31 set means "sign-extend",
  uint32_t avail_ring;   // so addresses near 2^64 are reachable too
  uint32_t used_ring;
  uint8_t event_idx;     // bit 0: VIRTIO_RING_F_EVENT_IDX negotiated
  uint8_t rounds;        // how many chains the device tries to pop
  uint8_t read_chunk;    // ChainReader read size per step (0 reads all at once)
  uint8_t write_chunk;   // ChainWriter write size per step (0 writes all at once)
  uint32_t used_len_bias;  // added to the "written" length in add_used
  uint16_t bogus_head;   // also returned on the used ring when bit 1 of event_idx is set
  uint8_t reserved[6];
};
static_assert(sizeof(FuzzHeader) == 32);

// Chains can add up to megabytes (many descriptors over the same bytes);
// reads and writes go in pieces of at most this much.
constexpr uint64_t kMaxBuffer = 0x10000;

#define FUZZ_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                        \
    }                                                                      \
  } while (0)

GuestAddress widen(uint32_t v) {
  return (v & 0x80000000u) ? (uint64_t{0xffffffff00000000} | v) : v;
}

const GuestMemory& memory() {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{kLowBase, kLowSize}, {kHighBase, kHighSize}});
    FUZZ_CHECK(m.has_value());
    return new GuestMemory(std::move(*m));
  }();
  return *mem;
}

// What pop() promised about a chain it returned.
void check_chain(const GuestMemory& mem, const Queue& q, const DescriptorChain& chain) {
  FUZZ_CHECK(chain.head < q.size());
  FUZZ_CHECK(chain.descriptors.size() <= q.size());
  bool seen_writable = false;
  for (const auto& d : chain.descriptors) {
    FUZZ_CHECK(mem.valid_range(d.addr, d.len));
    FUZZ_CHECK(d.device_writable || !seen_writable);
    seen_writable |= d.device_writable;
  }
}

void consume_readable(const GuestMemory& mem, const DescriptorChain& chain, uint8_t chunk) {
  ChainReader reader(mem, chain);
  const uint64_t total = reader.remaining();
  std::vector<uint8_t> buf(chunk == 0 ? std::min<uint64_t>(total, kMaxBuffer) : chunk);
  while (reader.remaining() > 0) {
    const uint64_t n = std::min<uint64_t>(buf.size(), reader.remaining());
    FUZZ_CHECK(reader.read(std::span<uint8_t>(buf.data(), n)).has_value());
    FUZZ_CHECK(reader.consumed() + reader.remaining() == total);
  }
  // Past the end: refused, and the cursor stays put.
  FUZZ_CHECK(!reader.read_obj<uint8_t>().has_value());
  FUZZ_CHECK(reader.consumed() == total);
}

uint32_t fill_writable(const GuestMemory& mem, const DescriptorChain& chain, uint8_t chunk) {
  ChainWriter writer(mem, chain);
  const uint64_t total = writer.remaining();
  std::vector<uint8_t> buf(chunk == 0 ? std::min<uint64_t>(total, kMaxBuffer) : chunk, 0x5a);
  while (writer.remaining() > 0) {
    const uint64_t n = std::min<uint64_t>(buf.size(), writer.remaining());
    FUZZ_CHECK(writer.write(std::span<const uint8_t>(buf.data(), n)).has_value());
  }
  FUZZ_CHECK(!writer.write_obj<uint8_t>(0).has_value());
  FUZZ_CHECK(writer.consumed() == total);
  return static_cast<uint32_t>(total);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < sizeof(FuzzHeader)) return -1;  // not added to the corpus
  FuzzHeader h;
  std::memcpy(&h, data, sizeof h);
  const GuestMemory& mem = memory();

  // Guest memory: the rest of the input from address 0, zeroes elsewhere.
  (void)mem.fill(kLowBase, 0, kLowSize);
  (void)mem.fill(kHighBase, 0, kHighSize);
  const size_t image = std::min<size_t>(size - sizeof h, kLowSize);
  FUZZ_CHECK(mem.write(kLowBase, std::span<const uint8_t>(data + sizeof h, image)).has_value());

  Queue q(h.max_size == 0 ? 256 : h.max_size);
  q.set_size(h.queue_size);
  q.set_desc_table(widen(h.desc_table));
  q.set_avail_ring(widen(h.avail_ring));
  q.set_used_ring(widen(h.used_ring));
  q.set_event_idx(h.event_idx & 1);
  // The transport never uses a queue that fails validation.
  if (!q.validate(mem)) return 0;
  q.set_ready(true);

  for (unsigned round = 0; round < h.rounds; ++round) {
    auto popped = q.pop(mem);
    if (!popped) continue;  // a guest error: the transport would stop here, we keep poking
    if (!popped->has_value()) break;
    const DescriptorChain& chain = **popped;
    check_chain(mem, q, chain);
    consume_readable(mem, chain, h.read_chunk);
    const uint32_t written = fill_writable(mem, chain, h.write_chunk);
    FUZZ_CHECK(q.add_used(mem, chain.head, written + h.used_len_bias).has_value());
    if (h.event_idx & 2) (void)q.add_used(mem, h.bogus_head, 0);
    (void)q.needs_interrupt(mem);
  }
  (void)q.needs_interrupt(mem);
  q.reset();
  return 0;
}
