// GuestMemory: the guest's RAM as host mappings, with bounds-checked access by
// guest-physical address.
//
// Every access from the VMM to guest memory goes through here. An address or
// length that falls outside a region (or wraps around) is an error value,
// never a host access out of bounds. An access may not straddle two regions:
// real guest structures never span the MMIO gap, and refusing them keeps the
// check simple.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "runtime/common/result.h"

namespace husk {

using GuestAddress = uint64_t;

// One anonymous mapping that backs a range of guest-physical memory.
class GuestRegion {
 public:
  static Result<GuestRegion> allocate(GuestAddress gpa, uint64_t size);
  ~GuestRegion();
  GuestRegion(GuestRegion&& other) noexcept;
  GuestRegion& operator=(GuestRegion&& other) noexcept;
  GuestRegion(const GuestRegion&) = delete;
  GuestRegion& operator=(const GuestRegion&) = delete;

  [[nodiscard]] GuestAddress gpa() const { return gpa_; }
  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] uint8_t* host() const { return host_; }
  [[nodiscard]] bool contains(GuestAddress gpa, uint64_t len) const;

 private:
  GuestRegion(GuestAddress gpa, uint64_t size, uint8_t* host)
      : gpa_(gpa), size_(size), host_(host) {}
  GuestAddress gpa_ = 0;
  uint64_t size_ = 0;
  uint8_t* host_ = nullptr;
};

struct RegionSpec {
  GuestAddress gpa;
  uint64_t size;
};

class GuestMemory {
 public:
  // Regions must be page aligned, non-empty and must not overlap.
  static Result<GuestMemory> create(const std::vector<RegionSpec>& specs);

  [[nodiscard]] const std::vector<GuestRegion>& regions() const { return regions_; }
  [[nodiscard]] uint64_t total_size() const;

  // The host view of [gpa, gpa+len), which must lie inside one region.
  [[nodiscard]] Result<std::span<uint8_t>> slice(GuestAddress gpa, uint64_t len) const;
  [[nodiscard]] bool valid_range(GuestAddress gpa, uint64_t len) const;

  [[nodiscard]] Result<void> write(GuestAddress gpa, std::span<const uint8_t> data) const;
  [[nodiscard]] Result<void> read(GuestAddress gpa, std::span<uint8_t> out) const;
  [[nodiscard]] Result<void> fill(GuestAddress gpa, uint8_t value, uint64_t len) const;

  template <typename T>
  [[nodiscard]] Result<void> write_obj(GuestAddress gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  template <typename T>
  [[nodiscard]] Result<T> read_obj(GuestAddress gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    // Safe: T is trivially copyable, so any byte pattern the guest left there
    // is a valid object representation to copy out.
    HUSK_TRY(read(gpa, std::span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
    return value;
  }

 private:
  explicit GuestMemory(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {}
  [[nodiscard]] const GuestRegion* find(GuestAddress gpa, uint64_t len) const;

  std::vector<GuestRegion> regions_;
};

}  // namespace husk
