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
  if (size_ == 0 || size_ > max_size_ || !is_power_of_two(size_)) {
    return fail(fmt::format("queue size {} is not a power of two in 1..{}", size_, max_size_));
  }
  const uint64_t n = size_;
  // Alignment and sizes from 2.7 (Virtqueue alignment table); the event
  // words at the end of each ring are included whether or not EVENT_IDX is
  // negotiated, as the driver lays them out anyway.
  if (desc_table_ % 16 != 0 || !memory.valid_range(desc_table_, kDescSize * n)) {
    return fail(fmt::format("descriptor table at {:#x} is misaligned or outside guest memory", desc_table_));
  }
  if (avail_ring_ % 2 != 0 || !memory.valid_range(avail_ring_, kAvailRing + 2 * n + 2)) {
    return fail(fmt::format("available ring at {:#x} is misaligned or outside guest memory", avail_ring_));
  }
  if (used_ring_ % 4 != 0 || !memory.valid_range(used_ring_, kUsedRing + kUsedElemSize * n + 2)) {
    return fail(fmt::format("used ring at {:#x} is misaligned or outside guest memory", used_ring_));
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
  if (count > size_) {
    return fail(fmt::format("indirect table of {} descriptors exceeds the queue size {}", count, size_));
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
    if (index >= size_) {
      return fail(fmt::format("descriptor index {} is past the queue size {}", index, size_));
    }
    if (seen >= size_) return fail("descriptor chain loops or is longer than the queue");
    HUSK_TRY_ASSIGN(RawDesc d, memory.read_obj<RawDesc>(desc_table_ + uint64_t{index} * kDescSize));
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
  if (!ready_ || size_ == 0) return std::optional<DescriptorChain>();
  HUSK_TRY_ASSIGN(uint16_t avail_idx, memory.read_obj<uint16_t>(avail_ring_ + kAvailIdx));
  if (avail_idx == next_avail_ && event_idx_) {
    // Ask for a notification at the next entry, then look again: the
    // driver may have added one between the read and the write (2.7.10).
    HUSK_TRY(memory.write_obj<uint16_t>(used_ring_ + kUsedRing + kUsedElemSize * size_, next_avail_));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    HUSK_TRY_ASSIGN(avail_idx, memory.read_obj<uint16_t>(avail_ring_ + kAvailIdx));
  }
  const uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending == 0) return std::optional<DescriptorChain>();
  if (pending > size_) {
    return fail(fmt::format("available index moved by {}, more than the queue size {}", pending, size_));
  }
  // The ring entries are read only after the index that published them.
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t slot = next_avail_ % size_;
  HUSK_TRY_ASSIGN(uint16_t head, memory.read_obj<uint16_t>(avail_ring_ + kAvailRing + 2 * slot));
  ++next_avail_;
  HUSK_TRY_ASSIGN(DescriptorChain chain, read_chain(memory, head));
  return std::optional<DescriptorChain>(std::move(chain));
}

Result<void> Queue::add_used(const GuestMemory& memory, uint16_t head, uint32_t written) {
  if (!ready_ || size_ == 0) return fail("used buffer on a queue that is not ready");
  if (head >= size_) return fail(fmt::format("used id {} is past the queue size {}", head, size_));
  const uint64_t slot = next_used_ % size_;
  HUSK_TRY(memory.write_obj(used_ring_ + kUsedRing + kUsedElemSize * slot, UsedElem{head, written}));
  // The element must be visible before the index that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++next_used_;
  HUSK_TRY(memory.write_obj<uint16_t>(used_ring_ + kUsedIdx, next_used_));
  return {};
}

Result<bool> Queue::needs_interrupt(const GuestMemory& memory) {
  if (!ready_ || size_ == 0) return false;
  // Our used index must be visible before we read what the driver wants.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old_used = signalled_used_;
  const uint16_t new_used = next_used_;
  if (old_used == new_used) return false;
  signalled_used_ = new_used;
  if (event_idx_) {
    HUSK_TRY_ASSIGN(uint16_t used_event, memory.read_obj<uint16_t>(avail_ring_ + kAvailRing + 2ull * size_));
    // vring_need_event() from "runtime/devices/virtio/virtio_ring_uapi.h", 2.7.10.
    return static_cast<uint16_t>(new_used - used_event - 1) < static_cast<uint16_t>(new_used - old_used);
  }
  HUSK_TRY_ASSIGN(uint16_t flags, memory.read_obj<uint16_t>(avail_ring_ + kAvailFlags));
  return (flags & VRING_AVAIL_F_NO_INTERRUPT) == 0;
}

void Queue::reset() {
  size_ = max_size_;
  ready_ = false;
  event_idx_ = false;
  desc_table_ = avail_ring_ = used_ring_ = 0;
  next_avail_ = next_used_ = signalled_used_ = 0;
}

}  // namespace husk::virtio
