// ChainReader and ChainWriter: sequential access to the device-readable and
// the device-writable parts of a descriptor chain, so devices parse headers
// and move payloads without caring how the driver split them into buffers.
// Every descriptor was checked against guest memory when the chain was
// popped; these only ever touch those checked ranges.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/devices/virtio/queue.h"
#include "runtime/memory/guest_memory.h"

namespace husk::virtio {

class ChainCursor {
 public:
  ChainCursor(const GuestMemory& memory, const DescriptorChain& chain, bool writable);

  [[nodiscard]] uint64_t remaining() const { return remaining_; }
  [[nodiscard]] uint64_t consumed() const { return consumed_; }

  // Host views of the next `len` bytes (one per descriptor touched), for
  // readv/writev-style I/O straight to and from guest memory. Fails without
  // moving when fewer than `len` bytes remain.
  [[nodiscard]] Result<std::vector<iovec>> take(uint64_t len);

 protected:
  const GuestMemory& memory_;
  std::vector<Descriptor> parts_;
  size_t part_ = 0;
  uint64_t offset_ = 0;  // into parts_[part_]
  uint64_t remaining_ = 0;
  uint64_t consumed_ = 0;
};

class ChainReader : public ChainCursor {
 public:
  ChainReader(const GuestMemory& memory, const DescriptorChain& chain)
      : ChainCursor(memory, chain, false) {}

  [[nodiscard]] Result<void> read(std::span<uint8_t> out);

  template <typename T>
  [[nodiscard]] Result<T> read_obj() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    // Safe: T is trivially copyable; any bytes the guest wrote form a value
    // that the caller then validates field by field.
    HUSK_TRY(read(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
    return value;
  }
};

class ChainWriter : public ChainCursor {
 public:
  ChainWriter(const GuestMemory& memory, const DescriptorChain& chain)
      : ChainCursor(memory, chain, true) {}

  [[nodiscard]] Result<void> write(std::span<const uint8_t> data);

  template <typename T>
  [[nodiscard]] Result<void> write_obj(const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }
};

}  // namespace husk::virtio
