// VirtqDriver and MmioDriver: the guest driver's side of a split virtqueue
// (virtio 1.2, 2.7) and of the virtio-mmio init sequence (3.1.1, 4.2.3), for
// unit tests of the device side.
//
// VirtqDriver lays the three rings out in real guest memory the way Linux
// does (descriptor table, then the available ring with used_event at its
// end, then the used ring with avail_event at its end, each at its required
// alignment) and writes and reads them with plain guest-memory accesses, so
// tests can build both well-formed and hostile rings. MmioDriver drives an
// MmioTransport through 32-bit register reads and writes only, as a guest
// would.
#pragma once

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/devices/virtio/queue.h"
#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "runtime/memory/guest_memory.h"

namespace husk::test {

// One descriptor as the driver writes it (struct vring_desc, little endian
// on x86).
struct RawDescriptor {
  uint64_t addr = 0;
  uint32_t len = 0;
  uint16_t flags = 0;
  uint16_t next = 0;
};
static_assert(sizeof(RawDescriptor) == sizeof(vring_desc));

struct UsedElement {
  uint32_t id = 0;
  uint32_t len = 0;
};
static_assert(sizeof(UsedElement) == sizeof(vring_used_elem));

inline constexpr uint64_t align_up(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

class VirtqDriver {
 public:
  // Ring sizes from 2.7 ("Virtqueue Alignment" table).
  static constexpr uint64_t desc_table_bytes(uint16_t size) { return 16ull * size; }
  static constexpr uint64_t avail_ring_bytes(uint16_t size) { return 6 + 2ull * size; }
  static constexpr uint64_t used_ring_bytes(uint16_t size) { return 6 + 8ull * size; }
  // How much guest memory a queue of `size` takes from its (16-aligned) base.
  static constexpr uint64_t footprint(uint16_t size) {
    return align_up(desc_table_bytes(size) + avail_ring_bytes(size), VRING_USED_ALIGN_SIZE) +
           used_ring_bytes(size);
  }

  // Lays out a queue of `size` entries at `base` and zeroes it.
  VirtqDriver(const GuestMemory& memory, uint16_t size, GuestAddress base)
      : memory_(memory), size_(size) {
    REQUIRE(base % VRING_DESC_ALIGN_SIZE == 0);
    desc_ = base;
    avail_ = desc_ + desc_table_bytes(size);
    used_ = align_up(avail_ + avail_ring_bytes(size), VRING_USED_ALIGN_SIZE);
    REQUIRE(memory_.fill(base, 0, footprint(size)));
  }

  [[nodiscard]] uint16_t size() const { return size_; }
  [[nodiscard]] GuestAddress desc_table() const { return desc_; }
  [[nodiscard]] GuestAddress avail_ring() const { return avail_; }
  [[nodiscard]] GuestAddress used_ring() const { return used_; }

  // Descriptor table entry `i` (not bounds-checked against the size, so that
  // tests can also write just past the table on purpose).
  void set_desc(uint16_t i, GuestAddress addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0) const {
    REQUIRE(memory_.write_obj(desc_ + 16ull * i, RawDescriptor{addr, len, flags, next}));
  }

  // An indirect descriptor table at `table` (2.7.5.3); point a descriptor
  // with VRING_DESC_F_INDIRECT and len 16 * entries.size() at it.
  void write_indirect(GuestAddress table, std::span<const RawDescriptor> entries) const {
    for (size_t i = 0; i < entries.size(); ++i) REQUIRE(memory_.write_obj(table + 16 * i, entries[i]));
  }

  // Puts `head` in the next avail ring slot and then bumps avail->idx, as
  // the driver does to make a chain available (2.7.13).
  void publish(uint16_t head) {
    REQUIRE(memory_.write_obj<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head));
    ++avail_idx_;
    set_avail_idx(avail_idx_);
  }
  // Writes avail->idx directly (hostile drivers jump it).
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    REQUIRE(memory_.write_obj<uint16_t>(avail_ + 2, idx));
  }
  [[nodiscard]] uint16_t avail_idx() const { return avail_idx_; }
  void set_avail_flags(uint16_t flags) const { REQUIRE(memory_.write_obj<uint16_t>(avail_, flags)); }
  // used_event: the avail ring's trailing word (EVENT_IDX).
  void set_used_event(uint16_t idx) const {
    REQUIRE(memory_.write_obj<uint16_t>(avail_ + 4 + 2ull * size_, idx));
  }

  [[nodiscard]] uint16_t used_flags() const { return read<uint16_t>(used_); }
  [[nodiscard]] uint16_t used_idx() const { return read<uint16_t>(used_ + 2); }
  [[nodiscard]] UsedElement used_elem(uint16_t slot) const {
    return read<UsedElement>(used_ + 4 + 8ull * slot);
  }
  // avail_event: the used ring's trailing word (EVENT_IDX).
  [[nodiscard]] uint16_t avail_event() const { return read<uint16_t>(used_ + 4 + 8ull * size_); }

  // What the transport would do at set-up: size, ring addresses, ready.
  void configure(virtio::Queue& q) const {
    q.set_size(size_);
    q.set_desc_table(desc_);
    q.set_avail_ring(avail_);
    q.set_used_ring(used_);
    q.set_ready(true);
  }

 private:
  template <typename T>
  T read(GuestAddress gpa) const {
    auto value = memory_.read_obj<T>(gpa);
    REQUIRE(value);
    return *value;
  }

  const GuestMemory& memory_;
  uint16_t size_;
  GuestAddress desc_ = 0;
  GuestAddress avail_ = 0;
  GuestAddress used_ = 0;
  uint16_t avail_idx_ = 0;
};

// The virtio-mmio side of a driver: 32-bit register accesses only.
class MmioDriver {
 public:
  explicit MmioDriver(virtio::MmioTransport& transport) : t_(transport) {}

  [[nodiscard]] uint32_t read(uint64_t offset) const {
    uint32_t value = 0;
    // Safe: a 4-byte view of a local uint32_t.
    t_.read(offset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), 4));
    return value;
  }
  void write(uint64_t offset, uint32_t value) const {
    t_.write(offset, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), 4));
  }

  [[nodiscard]] uint32_t status() const { return read(VIRTIO_MMIO_STATUS); }
  void set_status(uint32_t status) const { write(VIRTIO_MMIO_STATUS, status); }
  // Adds a status bit to what the device reports, as drivers do.
  void add_status(uint32_t bit) const { set_status(status() | bit); }

  [[nodiscard]] uint64_t device_features() const {
    write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const uint64_t high = read(VIRTIO_MMIO_DEVICE_FEATURES);
    write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    return high << 32 | read(VIRTIO_MMIO_DEVICE_FEATURES);
  }
  void set_driver_features(uint64_t features) const {
    write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    write(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features));
    write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    write(VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features >> 32));
  }

  // Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK (3.1.1 steps 1-6).
  // Returns whether the device kept FEATURES_OK set.
  bool negotiate(uint64_t features) const {
    set_status(0);
    add_status(VIRTIO_CONFIG_S_ACKNOWLEDGE);
    add_status(VIRTIO_CONFIG_S_DRIVER);
    set_driver_features(features);
    add_status(VIRTIO_CONFIG_S_FEATURES_OK);
    return (status() & VIRTIO_CONFIG_S_FEATURES_OK) != 0;
  }

  // Queue set-up (4.2.3.2): select, size, ring addresses, ready.
  void setup_queue(uint32_t index, const VirtqDriver& q) const {
    write(VIRTIO_MMIO_QUEUE_SEL, index);
    write(VIRTIO_MMIO_QUEUE_NUM, q.size());
    write(VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(q.desc_table()));
    write(VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(q.desc_table() >> 32));
    write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(q.avail_ring()));
    write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, static_cast<uint32_t>(q.avail_ring() >> 32));
    write(VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(q.used_ring()));
    write(VIRTIO_MMIO_QUEUE_USED_HIGH, static_cast<uint32_t>(q.used_ring() >> 32));
    write(VIRTIO_MMIO_QUEUE_READY, 1);
  }

  // The whole sequence up to DRIVER_OK, queue i set up from queues[i].
  // Returns the final status register.
  uint32_t init(uint64_t features, std::span<const VirtqDriver* const> queues) const {
    if (!negotiate(features)) return status();
    for (size_t i = 0; i < queues.size(); ++i) setup_queue(static_cast<uint32_t>(i), *queues[i]);
    add_status(VIRTIO_CONFIG_S_DRIVER_OK);
    return status();
  }

  void notify(uint32_t queue) const { write(VIRTIO_MMIO_QUEUE_NOTIFY, queue); }

 private:
  virtio::MmioTransport& t_;
};

}  // namespace husk::test
