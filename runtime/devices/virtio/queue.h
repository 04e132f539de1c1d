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

class Queue {
 public:
  explicit Queue(uint16_t max_size) : max_size_(max_size), size_(max_size) {}

  // Driver-side configuration, written by the transport before activation.
  [[nodiscard]] uint16_t max_size() const { return max_size_; }
  [[nodiscard]] uint16_t size() const { return size_; }
  void set_size(uint16_t size) { size_ = size; }
  [[nodiscard]] bool ready() const { return ready_; }
  void set_ready(bool ready) { ready_ = ready; }
  [[nodiscard]] GuestAddress desc_table() const { return desc_table_; }
  [[nodiscard]] GuestAddress avail_ring() const { return avail_ring_; }
  [[nodiscard]] GuestAddress used_ring() const { return used_ring_; }
  void set_desc_table(GuestAddress a) { desc_table_ = a; }
  void set_avail_ring(GuestAddress a) { avail_ring_ = a; }
  void set_used_ring(GuestAddress a) { used_ring_ = a; }
  void set_event_idx(bool enabled) { event_idx_ = enabled; }

  // Checks size and ring placement (alignment, inside guest memory). Called
  // when the driver finishes set-up; an invalid queue is never used.
  [[nodiscard]] Result<void> validate(const GuestMemory& memory) const;

  // The next available chain, nullopt when the ring is empty.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop(const GuestMemory& memory);

  // Returns a chain to the driver with `written` bytes written into it.
  [[nodiscard]] Result<void> add_used(const GuestMemory& memory, uint16_t head, uint32_t written);

  // Whether the driver wants an interrupt for what was added to the used
  // ring since the last call (EVENT_IDX's used_event, or the NO_INTERRUPT
  // flag without it).
  [[nodiscard]] Result<bool> needs_interrupt(const GuestMemory& memory);

  // Back to the state after device reset.
  void reset();

  // How many chains the device has taken but not yet returned.
  [[nodiscard]] uint16_t in_flight() const { return static_cast<uint16_t>(next_avail_ - next_used_); }

 private:
  [[nodiscard]] Result<DescriptorChain> read_chain(const GuestMemory& memory, uint16_t head) const;
  [[nodiscard]] Result<void> read_indirect(const GuestMemory& memory, GuestAddress table,
                                           uint32_t table_len, DescriptorChain& chain) const;

  uint16_t max_size_;
  uint16_t size_;
  bool ready_ = false;
  bool event_idx_ = false;
  GuestAddress desc_table_ = 0;
  GuestAddress avail_ring_ = 0;
  GuestAddress used_ring_ = 0;
  uint16_t next_avail_ = 0;  // the avail ring index the device reads next
  uint16_t next_used_ = 0;   // the used ring index the device writes next
  uint16_t signalled_used_ = 0;  // next_used_ at the last interrupt
};

}  // namespace husk::virtio
