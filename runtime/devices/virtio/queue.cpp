#include "runtime/devices/virtio/queue.h"

#include "runtime/devices/virtio/virtio_ring_uapi.h"

#include <atomic>

#include <fmt/format.h>

namespace husk::virtio {

namespace {

// Offsets inside the rings (virtio 1.2, 2.7.2 and following).
constexpr uint64_t kDescSize = 16;
constexpr uint64_t kAvailFlags = 0;
constexpr uint64_t kAvailIdx = 2;
constexpr uint64_t kAvailRing = 4;
constexpr uint64_t kUsedIdx = 2;
constexpr uint64_t kUsedRing = 4;
constexpr uint64_t kUsedElemSize = 8;

struct RawDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDesc) == kDescSize);

struct UsedElem {
  uint32_t id;
  uint32_t len;
};
static_assert(sizeof(UsedElem) == kUsedElemSize);

bool is_power_of_two(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Appends one descriptor after checking its buffer lies in guest memory and
// that no device-readable buffer follows a device-writable one (2.7.4.2).
Result<void> append(const GuestMemory& memory, const RawDesc& d, DescriptorChain& chain) {
  const bool writable = (d.flags & VRING_DESC_F_WRITE) != 0;
  if (!memory.valid_range(d.addr, d.len)) {
    return fail(fmt::format("descriptor buffer {:#x}+{:#x} is outside guest memory", d.addr, d.len));
  }
  if (!writable && !chain.descriptors.empty() && chain.descriptors.back().device_writable) {
    return fail("a device-readable descriptor follows a device-writable one");
  }
  chain.descriptors.push_back(Descriptor{d.addr, d.len, writable});
  return {};
}

}  // namespace

Result<void> Queue::validate(const GuestMemory& memory) const {
  if (s_.size == 0 || s_.size > max_size_ || !is_power_of_two(s_.size)) {
    return fail(fmt::format("queue size {} is not a power of two in 1..{}", s_.size, max_size_));
  }
  const uint64_t n = s_.size;
  // Alignment and sizes from 2.7 (Virtqueue alignment table); the event
  // words at the end of each ring are included whether or not EVENT_IDX is
  // negotiated, as the driver lays them out anyway.
  if (s_.desc_table % 16 != 0 || !memory.valid_range(s_.desc_table, kDescSize * n)) {
    return fail(fmt::format("descriptor table at {:#x} is misaligned or outside guest memory", s_.desc_table));
  }
  if (s_.avail_ring % 2 != 0 || !memory.valid_range(s_.avail_ring, kAvailRing + 2 * n + 2)) {
    return fail(fmt::format("available ring at {:#x} is misaligned or outside guest memory", s_.avail_ring));
  }
  if (s_.used_ring % 4 != 0 || !memory.valid_range(s_.used_ring, kUsedRing + kUsedElemSize * n + 2)) {
    return fail(fmt::format("used ring at {:#x} is misaligned or outside guest memory", s_.used_ring));
  }
  return {};
}

Result<void> Queue::read_indirect(const GuestMemory& memory, GuestAddress table, uint32_t table_len,
                                  DescriptorChain& chain) const {
  if (table_len == 0 || table_len % kDescSize != 0) {
    return fail(fmt::format("indirect table length {} is not a multiple of {}", table_len, kDescSize));
  }
  const uint32_t count = table_len / kDescSize;
  // A chain may not be longer than the queue (2.7.5.3.1), indirect or not.
  if (count > s_.size) {
    return fail(fmt::format("indirect table of {} descriptors exceeds the queue size {}", count, s_.size));
  }
  if (!memory.valid_range(table, table_len)) {
    return fail(fmt::format("indirect table {:#x}+{:#x} is outside guest memory", table, table_len));
  }
  uint32_t index = 0;
  for (uint32_t seen = 0;; ++seen) {
    // Every step moves to a new descriptor, so more steps than entries
    // means a loop.
    if (seen >= count) return fail("indirect descriptor chain loops");
    HUSK_TRY_ASSIGN(RawDesc d, memory.read_obj<RawDesc>(table + uint64_t{index} * kDescSize));
    if (d.flags & VRING_DESC_F_INDIRECT) return fail("nested indirect descriptor");
    HUSK_TRY(append(memory, d, chain));
    if (!(d.flags & VRING_DESC_F_NEXT)) return {};
    if (d.next >= count) {
      return fail(fmt::format("indirect descriptor next {} is past the table of {}", d.next, count));
    }
    index = d.next;
  }
}

Result<DescriptorChain> Queue::read_chain(const GuestMemory& memory, uint16_t head) const {
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  for (uint32_t seen = 0;; ++seen) {
    if (index >= s_.size) {
      return fail(fmt::format("descriptor index {} is past the queue size {}", index, s_.size));
    }
    if (seen >= s_.size) return fail("descriptor chain loops or is longer than the queue");
    HUSK_TRY_ASSIGN(RawDesc d, memory.read_obj<RawDesc>(s_.desc_table + uint64_t{index} * kDescSize));
    if (d.flags & VRING_DESC_F_INDIRECT) {
      // Linux puts an indirect table alone in its chain; anything else is
      // refused rather than guessed at (2.7.5.3.1: no INDIRECT with NEXT).
      if ((d.flags & VRING_DESC_F_NEXT) || seen != 0) {
        return fail("an indirect descriptor must be the only one in its chain");
      }
      HUSK_TRY(read_indirect(memory, d.addr, d.len, chain));
      return chain;
    }
    HUSK_TRY(append(memory, d, chain));
    if (!(d.flags & VRING_DESC_F_NEXT)) return chain;
    index = d.next;
  }
}

Result<std::optional<DescriptorChain>> Queue::pop(const GuestMemory& memory) {
  // Devices may poll a queue the driver never enabled (vsock reads its rx
  // queue when a host socket has data): such a queue simply has nothing.
  if (!s_.ready || s_.size == 0) return std::optional<DescriptorChain>();
  HUSK_TRY_ASSIGN(uint16_t avail_idx, memory.read_obj<uint16_t>(s_.avail_ring + kAvailIdx));
  if (avail_idx == s_.next_avail && s_.event_idx) {
    // Ask for a notification at the next entry, then look again: the
    // driver may have added one between the read and the write (2.7.10).
    HUSK_TRY(memory.write_obj<uint16_t>(s_.used_ring + kUsedRing + kUsedElemSize * s_.size, s_.next_avail));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    HUSK_TRY_ASSIGN(avail_idx, memory.read_obj<uint16_t>(s_.avail_ring + kAvailIdx));
  }
  const uint16_t pending = static_cast<uint16_t>(avail_idx - s_.next_avail);
  if (pending == 0) return std::optional<DescriptorChain>();
  if (pending > s_.size) {
    return fail(fmt::format("available index moved by {}, more than the queue size {}", pending, s_.size));
  }
  // The ring entries are read only after the index that published them.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t slot = s_.next_avail % s_.size;
  HUSK_TRY_ASSIGN(uint16_t head, memory.read_obj<uint16_t>(s_.avail_ring + kAvailRing + 2 * slot));
  ++s_.next_avail;
  HUSK_TRY_ASSIGN(DescriptorChain chain, read_chain(memory, head));
  return std::optional<DescriptorChain>(std::move(chain));
}

Result<uint16_t> Queue::avail_index(const GuestMemory& memory) const {
  if (!s_.ready || s_.size == 0) return fail("the available index of a queue that is not ready");
  return memory.read_obj<uint16_t>(s_.avail_ring + kAvailIdx);
}

Result<void> Queue::notify_after(const GuestMemory& memory, uint16_t idx) const {
  if (!s_.ready || s_.size == 0 || !s_.event_idx) return {};
  return memory.write_obj<uint16_t>(s_.used_ring + kUsedRing + kUsedElemSize * s_.size, idx);
}

Result<void> Queue::add_used(const GuestMemory& memory, uint16_t head, uint32_t written) {
  if (!s_.ready || s_.size == 0) return fail("used buffer on a queue that is not ready");
  if (head >= s_.size) return fail(fmt::format("used id {} is past the queue size {}", head, s_.size));
  const uint64_t slot = s_.next_used % s_.size;
  HUSK_TRY(memory.write_obj(s_.used_ring + kUsedRing + kUsedElemSize * slot, UsedElem{head, written}));
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++s_.next_used;
  HUSK_TRY(memory.write_obj<uint16_t>(s_.used_ring + kUsedIdx, s_.next_used));
  return {};
}

Result<bool> Queue::needs_interrupt(const GuestMemory& memory) {
  if (!s_.ready || s_.size == 0) return false;
  // Our used index must be visible before we read what the driver wants.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_used = s_.signalled_used;
  const uint16_t new_used = s_.next_used;
  if (old_used == new_used) return false;
  s_.signalled_used = new_used;
  if (s_.event_idx) {
    HUSK_TRY_ASSIGN(uint16_t used_event, memory.read_obj<uint16_t>(s_.avail_ring + kAvailRing + 2ull * s_.size));
    // vring_need_event() from "runtime/devices/virtio/virtio_ring_uapi.h", 2.7.10.
    return static_cast<uint16_t>(new_used - used_event - 1) < static_cast<uint16_t>(new_used - old_used);
  }
  HUSK_TRY_ASSIGN(uint16_t flags, memory.read_obj<uint16_t>(s_.avail_ring + kAvailFlags));
  return (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
}

void Queue::reset() { s_ = QueueState{.size = max_size_}; }

void Queue::undo_pop() {
  // Only the index moves back: the chain is read again from the ring, which
  // the driver may not touch while the entry is still available (2.7.13).
  --s_.next_avail;
}

Result<Queue> Queue::restore(uint16_t max_size, const QueueState& state) {
  if (state.size > max_size) {
    return fail(fmt::format("saved queue size {} is above its maximum {}", state.size, max_size));
  }
  Queue q(max_size);
  q.s_ = state;
  return q;
}

}  // namespace husk::virtio
