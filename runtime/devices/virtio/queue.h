// Queue: one split virtqueue as the device sees it (virtio 1.2, section 2.7
// "Split Virtqueues"), with every guest-controlled value checked.
//
// The driver fills in size and ring addresses through the transport; once
// the queue is activated the device pops descriptor chains from the
// available ring and returns them on the used ring. A guest that breaks the
// rules (indexes past the ring, a chain that loops or runs longer than the
// queue, buffers outside guest memory, an avail index that jumps by more
// than the queue size) gets an error value back: the transport then marks
// the device as needing reset. No guest value is ever used to index host
// memory without a check.
// Supported: VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_RING_F_EVENT_IDX.
// Not supported: packed virtqueues, VIRTIO_F_ORDER_PLATFORM semantics beyond
// the fences below (husk runs on x86 only).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/memory/guest_memory.h"

namespace husk::virtio {

// One guest buffer of a chain, already checked to lie inside guest memory.
struct Descriptor {
  GuestAddress addr;
  uint32_t len;
  bool device_writable;
};

struct DescriptorChain {
  uint16_t head = 0;  // what goes back on the used ring
  std::vector<Descriptor> descriptors;
};

// Everything a queue is, as plain data: the driver's configuration and the
// device's position in the rings. What a snapshot saves.
struct QueueState {
  uint16_t size = 0;
  bool ready = false;
  bool event_idx = false;
  GuestAddress desc_table = 0;
  GuestAddress avail_ring = 0;
  GuestAddress used_ring = 0;
  uint16_t next_avail = 0;      // the avail ring index the device reads next
  uint16_t next_used = 0;       // the used ring index the device writes next
  uint16_t signalled_used = 0;  // next_used at the last interrupt
};

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size) { s_.size = max_size; }
  // A queue from saved state; fails if the state does not fit `max_size`.
  [[nodiscard]] static Result<Queue> restore(uint16_t max_size, const QueueState& state);

  [[nodiscard]] const QueueState& state() const { return s_; }

  // Driver-side configuration, written by the transport before activation.
  [[nodiscard]] uint16_t max_size() const { return max_size_; }
  [[nodiscard]] uint16_t size() const { return s_.size; }
  void set_size(uint16_t size) { s_.size = size; }
  [[nodiscard]] bool ready() const { return s_.ready; }
  void set_ready(bool ready) { s_.ready = ready; }
  [[nodiscard]] GuestAddress desc_table() const { return s_.desc_table; }
  [[nodiscard]] GuestAddress avail_ring() const { return s_.avail_ring; }
  [[nodiscard]] GuestAddress used_ring() const { return s_.used_ring; }
  void set_desc_table(GuestAddress a) { s_.desc_table = a; }
  void set_avail_ring(GuestAddress a) { s_.avail_ring = a; }
  void set_used_ring(GuestAddress a) { s_.used_ring = a; }
  void set_event_idx(bool enabled) { s_.event_idx = enabled; }

  // Checks size and ring placement (alignment, inside guest memory). Called
  // when the driver finishes set-up; an invalid queue is never used.
  [[nodiscard]] Result<void> validate(const GuestMemory& memory) const;

  // The next available chain, nullopt when the ring is empty.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop(const GuestMemory& memory);

  // Gives back the chain the last pop() returned, unused: the next pop()
  // returns it again. For a device that took a buffer it cannot fill yet
  // (vsock with no data to put in it).
  void undo_pop();

  // Returns a chain to the driver with `written` bytes written into it.
  [[nodiscard]] Result<void> add_used(const GuestMemory& memory, uint16_t head, uint32_t written);

  // Whether the driver wants an interrupt for what was added to the used
  // ring since the last call (EVENT_IDX's used_event, or the NO_INTERRUPT
  // flag without it).
  [[nodiscard]] Result<bool> needs_interrupt(const GuestMemory& memory);

  // The driver's available index as it is now (what it has published).
  [[nodiscard]] Result<uint16_t> avail_index(const GuestMemory& memory) const;
  // With EVENT_IDX, asks the driver to notify once it publishes an entry
  // past `idx` (the used ring's avail_event); without it the driver
  // notifies anyway.
  [[nodiscard]] Result<void> notify_after(const GuestMemory& memory, uint16_t idx) const;

  // Back to the state after device reset.
  void reset();

  // How many chains the device has taken but not yet returned.
  [[nodiscard]] uint16_t in_flight() const { return static_cast<uint16_t>(s_.next_avail - s_.next_used); }

 private:
  [[nodiscard]] Result<DescriptorChain> read_chain(const GuestMemory& memory, uint16_t head) const;
  [[nodiscard]] Result<void> read_indirect(const GuestMemory& memory, GuestAddress table,
                                           uint32_t table_len, DescriptorChain& chain) const;

  uint16_t max_size_;
  QueueState s_;
};

}  // namespace husk::virtio
