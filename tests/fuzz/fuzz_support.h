// What the libFuzzer targets under tests/fuzz share: an input reader, an
// invariant check that aborts (so libFuzzer saves the input), a guest driver
// for split virtqueues and the virtio-mmio registers that uses only the
// transport's bus interface (read/write of register offsets, notify), a
// deterministic single-threaded way to run the device event loop, and a
// scratch folder that lives as long as the fuzzing process.
//
// Nothing here may depend on a device's internals: devices are being
// refactored, and a target that reaches past the transport's registers, a
// device's constructor and GuestMemory would test yesterday's code.
#pragma once

#include <dirent.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "runtime/common/event_loop.h"
#include "runtime/common/unique_fd.h"
#include "runtime/devices/interrupt.h"
#include "runtime/devices/virtio/mmio_transport.h"
#include "runtime/devices/virtio/virtio_ring_uapi.h"
#include "runtime/memory/guest_memory.h"
#include "tests/support/temp_dir.h"

// A broken invariant: print it and abort, so libFuzzer keeps the input.
#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "invariant broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

// What a target does, step by step, when HUSK_FUZZ_TRACE is set: for
// reading a seed or a crash input (tests/fuzz/README.md).
#define FUZZ_TRACE(...)                                               \
  do {                                                                \
    if (::husk::fuzz::tracing()) std::fprintf(stderr, __VA_ARGS__);  \
  } while (0)

namespace husk::fuzz {

inline bool tracing() {
  static const bool on = std::getenv("HUSK_FUZZ_TRACE") != nullptr;
  return on;
}

// HUSK_FUZZ_NO_SKIP turns off what the targets do to step around known,
// unfixed bugs (tests/fuzz/README.md, "findings"), so their reproducers in
// tests/fuzz/crashes/ fail again, and a fix can be checked.
inline bool no_skip() {
  static const bool on = std::getenv("HUSK_FUZZ_NO_SKIP") != nullptr;
  return on;
}

// Reads the input front to back, little-endian; past its end every read
// gives zeros, so any input is a complete program. (libFuzzer's
// FuzzedDataProvider takes integers from the back, which makes seeds hard
// to write by hand; tests/fuzz/make_seeds.py writes them front to back.)
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  [[nodiscard]] bool empty() const { return pos_ >= size_; }
  [[nodiscard]] size_t left() const { return empty() ? 0 : size_ - pos_; }

  uint8_t u8() { return static_cast<uint8_t>(take(1)); }
  uint16_t u16() { return static_cast<uint16_t>(take(2)); }
  uint32_t u32() { return static_cast<uint32_t>(take(4)); }
  uint64_t u64() { return take(8); }
  bool flag() { return (u8() & 1) != 0; }

  // Up to n bytes (fewer at the end of the input).
  std::span<const uint8_t> bytes(size_t n) {
    n = std::min(n, left());
    std::span<const uint8_t> out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  // A string of at most `max` bytes, its length in the byte before it.
  std::string string(size_t max = 255) {
    const size_t n = std::min<size_t>(u8(), max);
    const auto b = bytes(n);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  // Everything not read yet.
  std::span<const uint8_t> rest() { return bytes(left()); }

 private:
  uint64_t take(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && pos_ < size_; ++i, ++pos_) v |= uint64_t{data_[pos_]} << (8 * i);
    if (pos_ >= size_) pos_ = size_;
    return v;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Device errors are logged by the runtime; millions of them would make the
// fuzzer I/O-bound.
inline void quiet_logs() { spdlog::set_level(spdlog::level::off); }

// Scratch files (disk images, copy-on-write overlays, sockets) go to a
// tmpfs when there is one: fdatasync on a real disk costs milliseconds.
inline void prefer_tmpfs() {
  const char* tmp = std::getenv("TMPDIR");
  if ((tmp == nullptr || *tmp == '\0') && ::access("/dev/shm", W_OK) == 0) ::setenv("TMPDIR", "/dev/shm", 1);
}

// An interrupt line that only counts (the real one is an irqfd).
class CountingInterrupt final : public devices::InterruptLine {
 public:
  void trigger() override { ++count; }
  uint64_t count = 0;
};

// One folder for the whole fuzzing process (disk images, sockets); removed
// at normal exit. Short, because Unix socket paths are at most 107 bytes.
inline const test::TempDir& scratch() {
  static test::TempDir* dir = [] {
    auto* d = new test::TempDir();
    FUZZ_CHECK(!d->path().empty());
    return d;
  }();
  return *dir;
}

// Runs the handlers of every fd that is ready now, then returns: the stop
// fd passed to EventLoop::run is an eventfd that is already readable. epoll
// lists an fd that is ready when it is added after the fds that were ready
// before it, so run() dispatches those first and stops at the stop fd.
// Closing the stop fd takes it out of the epoll set again. Single-threaded
// and deterministic, which a fuzz target needs; check_poll_once() proves
// the assumption at start-up.
inline void poll_once(EventLoop& loop) {
  UniqueFd stop(::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));
  FUZZ_CHECK(stop.valid());
  FUZZ_CHECK(loop.run(stop.get()).has_value());
}

inline void check_poll_once();

// What every target's LLVMFuzzerInitialize does first.
inline void init_target() {
  quiet_logs();
  prefer_tmpfs();
  check_poll_once();
}

inline void check_poll_once() {
  auto loop = EventLoop::create();
  FUZZ_CHECK(loop.has_value());
  UniqueFd ready(::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));
  int calls = 0;
  FUZZ_CHECK(loop->add(ready.get(), EPOLLIN, [&](uint32_t) { ++calls; }).has_value());
  poll_once(*loop);
  if (calls != 1) {
    std::fprintf(stderr, "poll_once: EventLoop::run no longer dispatches fds that were ready before the "
                         "stop fd (%d calls); the fuzz targets' event-loop stepping needs rework\n", calls);
    std::abort();
  }
  loop->remove(ready.get());
}

// Open file descriptors of this process (to catch leaks per iteration).
inline size_t open_fd_count() {
  size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

// --- virtio-mmio, as a guest driver sees it: 32-bit register accesses. ---

inline uint32_t reg_read(virtio::MmioTransport& t, uint64_t offset) {
  uint32_t v = 0;
  // Safe: a 4-byte view of a local.
  t.read(offset, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
  return v;
}

inline void reg_write(virtio::MmioTransport& t, uint64_t offset, uint32_t v) {
  t.write(offset, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
}

// The status register holds a prefix of the init sequence (3.1.1) plus
// FAILED and DEVICE_NEEDS_RESET; nothing else is ever reported.
inline bool plausible_status(uint32_t s) {
  constexpr uint32_t kInit[] = {0, VIRTIO_CONFIG_S_ACKNOWLEDGE,
                                VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
                                VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK,
                                VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
                                    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK};
  const uint32_t steps = s & ~(VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET);
  for (uint32_t k : kInit) {
    if (steps == k) return true;
  }
  return false;
}

// One split virtqueue laid out the way Linux does (2.7): descriptor table,
// available ring (used_event at its end), used ring (avail_event at its
// end) at 4-byte alignment. Descriptors are handed out from a free list and
// come back when the device returns their chain.
class Ring {
 public:
  static constexpr uint64_t footprint(uint16_t size) {
    return ((16ull * size + 6 + 2ull * size + 3) & ~3ull) + 6 + 8ull * size;
  }

  Ring(const GuestMemory& mem, uint16_t size, GuestAddress base) : mem_(mem), size_(size) {
    desc_ = base;
    avail_ = desc_ + 16ull * size;
    used_ = (avail_ + 6 + 2ull * size + 3) & ~3ull;
    FUZZ_CHECK(mem_.fill(base, 0, footprint(size)).has_value());
    for (uint16_t i = 0; i < size; ++i) free_.push_back(static_cast<uint16_t>(size - 1 - i));
    chains_.resize(size);
  }

  [[nodiscard]] uint16_t size() const { return size_; }
  [[nodiscard]] GuestAddress desc_table() const { return desc_; }
  [[nodiscard]] GuestAddress avail_ring() const { return avail_; }
  [[nodiscard]] GuestAddress used_ring() const { return used_; }
  [[nodiscard]] size_t free_count() const { return free_.size(); }
  [[nodiscard]] size_t in_flight() const { return in_flight_; }

  struct Buffer {
    GuestAddress addr;
    uint32_t len;
    bool writable;
  };

  // Writes `bufs` as one chain of free descriptors (or, when `indirect` is
  // set, one descriptor pointing at a table written at `indirect_table`) and
  // returns its head; -1 when there are not enough free descriptors.
  int add_chain(std::span<const Buffer> bufs, bool indirect = false, GuestAddress indirect_table = 0) {
    if (bufs.empty()) return -1;
    const size_t need = indirect ? 1 : bufs.size();
    if (free_.size() < need || bufs.size() > size_) return -1;
    if (indirect) {
      for (size_t i = 0; i < bufs.size(); ++i) {
        const uint16_t flags = static_cast<uint16_t>((bufs[i].writable ? VRING_DESC_F_WRITE : 0) |
                                                     (i + 1 < bufs.size() ? VRING_DESC_F_NEXT : 0));
        write_desc(indirect_table + 16 * i, bufs[i].addr, bufs[i].len, flags, static_cast<uint16_t>(i + 1));
      }
      const uint16_t head = take();
      write_desc(desc_ + 16ull * head, indirect_table, static_cast<uint32_t>(16 * bufs.size()),
                 VRING_DESC_F_INDIRECT, 0);
      chains_[head] = {head};
      ++in_flight_;
      return head;
    }
    std::vector<uint16_t> ids;
    for (size_t i = 0; i < bufs.size(); ++i) ids.push_back(take());
    for (size_t i = 0; i < bufs.size(); ++i) {
      const bool last = i + 1 == bufs.size();
      const uint16_t flags = static_cast<uint16_t>((bufs[i].writable ? VRING_DESC_F_WRITE : 0) |
                                                   (last ? 0 : VRING_DESC_F_NEXT));
      write_desc(desc_ + 16ull * ids[i], bufs[i].addr, bufs[i].len, flags, last ? 0 : ids[i + 1]);
    }
    const uint16_t head = ids[0];
    chains_[head] = std::move(ids);
    ++in_flight_;
    return head;
  }

  // Makes chain `head` available (2.7.13) without notifying.
  void publish(uint16_t head) {
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head).has_value());
    ++avail_idx_;
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 2, avail_idx_).has_value());
  }
  // A hostile driver: descriptor `i` written as given (flags, next and all),
  // and the avail index moved without entries behind it.
  void write_raw_desc(uint16_t i, GuestAddress addr, uint32_t len, uint16_t flags, uint16_t next) const {
    write_desc(desc_ + 16ull * (i % size_), addr, len, flags, next);
  }
  void publish_raw(uint16_t head) {
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head).has_value());
    ++avail_idx_;
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 2, avail_idx_).has_value());
  }
  void jump_avail_idx(uint16_t by) {
    avail_idx_ = static_cast<uint16_t>(avail_idx_ + by);
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 2, avail_idx_).has_value());
  }

  void set_used_event(uint16_t idx) const {
    FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_ + 4 + 2ull * size_, idx).has_value());
  }
  void set_avail_flags(uint16_t flags) const { FUZZ_CHECK(mem_.write_obj<uint16_t>(avail_, flags).has_value()); }

  struct Used {
    uint16_t head;
    uint32_t len;
  };
  // The used elements the device added since the last call; their
  // descriptors go back to the free list. When `strict`, a used element that
  // names no chain in flight is a device bug; a target whose guest also
  // scribbles over the rings passes false and skips such elements.
  std::vector<Used> take_used(bool strict = true) {
    std::vector<Used> out;
    const uint16_t idx = read<uint16_t>(used_ + 2);
    // The device may never put more chains on the used ring than it took.
    if (strict) FUZZ_CHECK(static_cast<uint16_t>(idx - used_seen_) <= in_flight_);
    for (unsigned n = 0; used_seen_ != idx && n < size_; ++n) {
      const uint32_t id = read<uint32_t>(used_ + 4 + 8ull * (used_seen_ % size_));
      const uint32_t len = read<uint32_t>(used_ + 8 + 8ull * (used_seen_ % size_));
      ++used_seen_;
      const bool known = id < size_ && !chains_[id].empty();
      if (strict) FUZZ_CHECK(known);
      if (!known) continue;
      give_back(static_cast<uint16_t>(id));
      out.push_back(Used{static_cast<uint16_t>(id), len});
    }
    return out;
  }

  // The queue's registers, as a driver writes them (4.2.3.2).
  void setup(virtio::MmioTransport& t, uint32_t index) const {
    reg_write(t, VIRTIO_MMIO_QUEUE_SEL, index);
    reg_write(t, VIRTIO_MMIO_QUEUE_NUM, size_);
    reg_write(t, VIRTIO_MMIO_QUEUE_DESC_LOW, static_cast<uint32_t>(desc_));
    reg_write(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, static_cast<uint32_t>(desc_ >> 32));
    reg_write(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, static_cast<uint32_t>(avail_));
    reg_write(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, static_cast<uint32_t>(avail_ >> 32));
    reg_write(t, VIRTIO_MMIO_QUEUE_USED_LOW, static_cast<uint32_t>(used_));
    reg_write(t, VIRTIO_MMIO_QUEUE_USED_HIGH, static_cast<uint32_t>(used_ >> 32));
    reg_write(t, VIRTIO_MMIO_QUEUE_READY, 1);
  }

 private:
  void write_desc(GuestAddress at, GuestAddress addr, uint32_t len, uint16_t flags, uint16_t next) const {
    uint8_t raw[16];
    std::memcpy(raw, &addr, 8);
    std::memcpy(raw + 8, &len, 4);
    std::memcpy(raw + 12, &flags, 2);
    std::memcpy(raw + 14, &next, 2);
    FUZZ_CHECK(mem_.write(at, std::span<const uint8_t>(raw, 16)).has_value());
  }
  uint16_t take() {
    const uint16_t id = free_.back();
    free_.pop_back();
    return id;
  }
  void give_back(uint16_t head) {
    for (uint16_t id : chains_[head]) free_.push_back(id);
    chains_[head].clear();
    --in_flight_;
  }
  template <typename T>
  T read(GuestAddress gpa) const {
    auto v = mem_.read_obj<T>(gpa);
    FUZZ_CHECK(v.has_value());
    return *v;
  }

  const GuestMemory& mem_;
  uint16_t size_;
  GuestAddress desc_ = 0;
  GuestAddress avail_ = 0;
  GuestAddress used_ = 0;
  uint16_t avail_idx_ = 0;
  uint16_t used_seen_ = 0;
  size_t in_flight_ = 0;
  std::vector<uint16_t> free_;
  std::vector<std::vector<uint16_t>> chains_;  // by head: the chain's descriptors, empty when free
};

// Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, the queues, DRIVER_OK
// (3.1.1). Returns the status register at the end.
inline uint32_t driver_init(virtio::MmioTransport& t, uint64_t features, std::span<Ring* const> rings) {
  reg_write(t, VIRTIO_MMIO_STATUS, 0);
  reg_write(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  reg_write(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
  reg_write(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  reg_write(t, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features));
  reg_write(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  reg_write(t, VIRTIO_MMIO_DRIVER_FEATURES, static_cast<uint32_t>(features >> 32));
  reg_write(t, VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
  if ((reg_read(t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK) == 0) return reg_read(t, VIRTIO_MMIO_STATUS);
  for (size_t i = 0; i < rings.size(); ++i) rings[i]->setup(t, static_cast<uint32_t>(i));
  reg_write(t, VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
                VIRTIO_CONFIG_S_DRIVER_OK);
  return reg_read(t, VIRTIO_MMIO_STATUS);
}

// The device's features as the driver reads them.
inline uint64_t device_features(virtio::MmioTransport& t) {
  reg_write(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  const uint64_t high = reg_read(t, VIRTIO_MMIO_DEVICE_FEATURES);
  reg_write(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  return high << 32 | reg_read(t, VIRTIO_MMIO_DEVICE_FEATURES);
}

}  // namespace husk::fuzz
