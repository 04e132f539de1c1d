// GuestMemory: the guest's RAM as host mappings, with bounds-checked access by
// guest-physical address.
//
// A booted VM's RAM is one memfd, each region a shared mapping of its part
// (at the region's file offset: regions in address order, back to back),
// so a snapshot can write exactly the pages the guest touched (the memfd's
// data extents) with save(). The kernel and initrd are copied in
// (read_file()), not mapped from their files: under a mapping, every page
// the guest touched first would cost a guest exit and a 4 KiB page of
// second-level paging, and every page it wrote a copy-on-write fault;
// copied, they sit in the RAM's huge pages (but where they write only a
// few pages of a 2 MiB: fit_page_sizes()), and a file changed later does
// not change a running guest. A restored VM's RAM is a private mapping of
// the snapshot's memory file: pages come in on demand, on first touch, and
// a write copies the page (the file never changes), so a restore costs the
// same for 128 MiB as for 2 GiB.
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
#include "runtime/common/unique_fd.h"

namespace husk {

using GuestAddress = uint64_t;

// One mapping that backs a range of guest-physical memory.
class GuestRegion {
 public:
  // Maps [file_offset, file_offset + size) of `fd`: shared (a memfd of
  // husk's) or private (a snapshot's memory file, copy-on-write).
  static Result<GuestRegion> map(GuestAddress gpa, uint64_t size, int fd, uint64_t file_offset, bool shared);
  // Private anonymous memory at a 2 MiB aligned host address, advised for
  // transparent huge pages.
  static Result<GuestRegion> map_huge_anonymous(GuestAddress gpa, uint64_t size);
  ~GuestRegion();
  GuestRegion(GuestRegion&& other) noexcept;
  GuestRegion& operator=(GuestRegion&& other) noexcept;
  GuestRegion(const GuestRegion&) = delete;
  GuestRegion& operator=(const GuestRegion&) = delete;

  [[nodiscard]] GuestAddress gpa() const { return gpa_; }
  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] uint8_t* host() const { return host_; }
  [[nodiscard]] uint64_t file_offset() const { return file_offset_; }
  [[nodiscard]] bool contains(GuestAddress gpa, uint64_t len) const;

 private:
  GuestRegion(GuestAddress gpa, uint64_t size, uint8_t* host, uint64_t file_offset)
      : gpa_(gpa), size_(size), host_(host), file_offset_(file_offset) {}
  GuestAddress gpa_ = 0;
  uint64_t size_ = 0;
  uint8_t* host_ = nullptr;
  uint64_t file_offset_ = 0;
};

struct RegionSpec {
  GuestAddress gpa;
  uint64_t size;
};

// A range of guest memory that a load writes.
struct GuestExtent {
  GuestAddress gpa;
  uint64_t len;
};

// What GuestMemory::read_file may assume of the memory it writes to.
enum class Destination : uint8_t {
  kAny,     // anything: every byte of the range is written
  kZeroed,  // it reads as zero (memory of a VM being built, which no one has written yet)
};

class GuestMemory {
 public:
  // How a booted VM's RAM is backed.
  enum class Backing {
    // One memfd: save() can write exactly the pages the guest touched.
    kMemfd,
    // Private anonymous memory, each region 2 MiB aligned and advised for
    // transparent huge pages (MADV_HUGEPAGE; the host's THP setting
    // decides): a guest's first touch of 2 MiB costs one fault and one
    // nested page table entry instead of 512. Such memory cannot be
    // saved: VMs that may be snapshotted get kMemfd.
    kHugeAnonymous,
  };
  // Regions must be page aligned, non-empty and must not overlap. The RAM
  // is new and all zero.
  static Result<GuestMemory> create(const std::vector<RegionSpec>& specs, Backing backing = Backing::kMemfd);
  // The RAM a snapshot's memory file `fd` holds (save()'s layout), mapped
  // privately: the file is never written. Its size must be the regions'.
  static Result<GuestMemory> map_snapshot(const std::vector<RegionSpec>& specs, int fd);

  // Writes every page the guest has touched into `fd` at its file offset
  // (the rest stays a hole; `fd` is truncated to the RAM's size first).
  // Only for memory from create(); call with the vCPUs paused. Returns the
  // bytes written.
  [[nodiscard]] Result<uint64_t> save(int fd) const;

  [[nodiscard]] const std::vector<GuestRegion>& regions() const { return regions_; }
  [[nodiscard]] uint64_t total_size() const;

  // The host view of [gpa, gpa+len), which must lie inside one region.
  [[nodiscard]] Result<std::span<uint8_t>> slice(GuestAddress gpa, uint64_t len) const;
  [[nodiscard]] bool valid_range(GuestAddress gpa, uint64_t len) const;

  [[nodiscard]] Result<void> write(GuestAddress gpa, std::span<const uint8_t> data) const;
  // Copies `len` bytes at `file_offset` of the file `fd` to `gpa` with
  // pread, no mapping of the file on the way: a file that ends early is an
  // error (what was read stays), as is a range outside one region. With
  // Destination::kZeroed the file's holes (SEEK_HOLE) are not read at all:
  // a vmlinux has megabytes of them (alignment padding), and skipping them
  // saves their copy and, for whole huge pages, their first touch.
  [[nodiscard]] Result<void> read_file(GuestAddress gpa, int fd, uint64_t file_offset, uint64_t len,
                                       Destination dest = Destination::kAny) const;
  // What read_file(gpa, fd, file_offset, len, Destination::kZeroed) writes:
  // the file's data extents in that range (all of it where the file system
  // cannot tell data from holes), as guest ranges.
  [[nodiscard]] static Result<std::vector<GuestExtent>> data_extents(GuestAddress gpa, int fd, uint64_t file_offset,
                                                                     uint64_t len);
  // Before a load into a new VM's RAM of Backing::kHugeAnonymous, with
  // every range the load will write: each 2 MiB of RAM that they touch
  // with less than kFewBytes gets 4 KiB pages (MADV_NOHUGEPAGE). A huge
  // page's first touch clears all of its 2 MiB, a cost out of all
  // proportion to a few pages written (a vmlinux's entry text, alone in its
  // 2 MiB; the code after it, alone in the next). Where a load writes more
  // the huge page stays: the guest runs its kernel from it, and gets the
  // rest back as RAM. Advice only: pages already touched stay as they are,
  // and the other backings ignore it.
  void fit_page_sizes(std::span<const GuestExtent> writes) const;
  static constexpr uint64_t kFewBytes = 64 * 1024;

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
  GuestMemory(std::vector<GuestRegion> regions, UniqueFd memfd, bool huge_pages = false)
      : regions_(std::move(regions)), memfd_(std::move(memfd)), huge_pages_(huge_pages) {}
  // The regions in address order, checked not to overlap.
  static Result<std::vector<RegionSpec>> sorted_regions(const std::vector<RegionSpec>& specs);
  static Result<GuestMemory> map_all(const std::vector<RegionSpec>& specs, int fd, bool shared, UniqueFd owned);
  [[nodiscard]] const GuestRegion* find(GuestAddress gpa, uint64_t len) const;

  std::vector<GuestRegion> regions_;
  UniqueFd memfd_;  // create()'s with Backing::kMemfd; empty otherwise
  bool huge_pages_ = false;  // create()'s with Backing::kHugeAnonymous
};

}  // namespace husk
