#include "runtime/memory/guest_memory.h"

#include <sys/mman.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <map>

#include <fmt/format.h>

#include "runtime/common/file.h"

namespace husk {

namespace {
constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHugePage = 2u << 20;
// Large copies (a kernel, an initrd) fault their destination in with one
// madvise instead of one page fault per page: several times faster where
// page faults are expensive (nested virtualization).
constexpr size_t kPrefaultThreshold = 256 * 1024;

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it (harmless)
#endif

void prefault(std::span<uint8_t> range) {
  const auto start = reinterpret_cast<uintptr_t>(range.data()) & ~(kPageSize - 1);
  const auto end = reinterpret_cast<uintptr_t>(range.data()) + range.size();
  ::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
}
}

Result<GuestRegion> GuestRegion::map(GuestAddress gpa, uint64_t size, int fd, uint64_t file_offset, bool shared) {
  if (size == 0 || size % kPageSize != 0 || gpa % kPageSize != 0) {
    return fail(fmt::format("guest region {:#x}+{:#x} is not page aligned", gpa, size));
  }
  if (gpa + size < gpa) {
    return fail(fmt::format("guest region {:#x}+{:#x} wraps around", gpa, size));
  }
  // MAP_NORESERVE: guest RAM is touched lazily, so a 4 GiB guest that uses
  // 20 MiB costs 20 MiB.
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_NORESERVE, fd,
                   static_cast<off_t>(file_offset));
  if (p == MAP_FAILED) {
    return fail_errno(fmt::format("mmap {} MiB of guest memory", size >> 20));
  }
  ::madvise(p, size, MADV_DONTDUMP);
  return GuestRegion(gpa, size, static_cast<uint8_t*>(p), file_offset);
}

Result<GuestRegion> GuestRegion::map_huge_anonymous(GuestAddress gpa, uint64_t size) {
  if (size == 0 || size % kPageSize != 0 || gpa % kPageSize != 0 || gpa + size < gpa) {
    return fail(fmt::format("guest region {:#x}+{:#x} is not page aligned or wraps around", gpa, size));
  }
  // A huge page backs guest memory only where the host address and the
  // guest address agree modulo 2 MiB: map 2 MiB more, keep an aligned
  // window and give back the slack on both sides.
  const uint64_t span = size + kHugePage;
  void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return fail_errno(fmt::format("mmap {} MiB of guest memory", size >> 20));
  const auto base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t start = ((base + kHugePage - 1) & ~(kHugePage - 1)) + (gpa & (kHugePage - 1));
  const uintptr_t fit = start + size <= base + span ? start : start - kHugePage;
  if (fit > base) ::munmap(p, fit - base);
  if (base + span > fit + size) ::munmap(reinterpret_cast<void*>(fit + size), base + span - (fit + size));
  auto* host = reinterpret_cast<uint8_t*>(fit);
  // Refused where THP is compiled out: then it is plain memory.
  ::madvise(host, size, MADV_HUGEPAGE);
  ::madvise(host, size, MADV_DONTDUMP);
  return GuestRegion(gpa, size, host, 0);
}

GuestRegion::~GuestRegion() {
  if (host_ != nullptr) ::munmap(host_, size_);
}

GuestRegion::GuestRegion(GuestRegion&& other) noexcept
    : gpa_(other.gpa_),
      size_(other.size_),
      host_(std::exchange(other.host_, nullptr)),
      file_offset_(other.file_offset_) {}

GuestRegion& GuestRegion::operator=(GuestRegion&& other) noexcept {
  if (this != &other) {
    if (host_ != nullptr) ::munmap(host_, size_);
    gpa_ = other.gpa_;
    size_ = other.size_;
    host_ = std::exchange(other.host_, nullptr);
    file_offset_ = other.file_offset_;
  }
  return *this;
}

bool GuestRegion::contains(GuestAddress gpa, uint64_t len) const {
  // Written without gpa + len so that no sum can wrap.
  if (gpa < gpa_) return false;
  const uint64_t offset = gpa - gpa_;
  return offset <= size_ && len <= size_ - offset;
}

Result<std::vector<RegionSpec>> GuestMemory::sorted_regions(const std::vector<RegionSpec>& specs) {
  std::vector<RegionSpec> sorted = specs;
  std::sort(sorted.begin(), sorted.end(),
            [](const RegionSpec& a, const RegionSpec& b) { return a.gpa < b.gpa; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i - 1].gpa + sorted[i - 1].size > sorted[i].gpa) {
      return fail(fmt::format("guest regions at {:#x} and {:#x} overlap", sorted[i - 1].gpa,
                              sorted[i].gpa));
    }
  }
  return sorted;
}

Result<GuestMemory> GuestMemory::map_all(const std::vector<RegionSpec>& specs, int fd, bool shared,
                                         UniqueFd owned) {
  HUSK_TRY_ASSIGN(const std::vector<RegionSpec> sorted, sorted_regions(specs));
  std::vector<GuestRegion> regions;
  uint64_t offset = 0;
  for (const RegionSpec& spec : sorted) {
    HUSK_TRY_ASSIGN(GuestRegion region, GuestRegion::map(spec.gpa, spec.size, fd, offset, shared));
    offset += spec.size;
    regions.push_back(std::move(region));
  }
  // Shared: husk's own memfd, a booted VM's; private: a snapshot's file.
  return GuestMemory(std::move(regions), std::move(owned));
}

namespace {
uint64_t total_of(const std::vector<RegionSpec>& specs) {
  uint64_t total = 0;
  for (const RegionSpec& s : specs) total += s.size;
  return total;
}
}  // namespace

Result<GuestMemory> GuestMemory::create(const std::vector<RegionSpec>& specs, Backing backing) {
  if (backing == Backing::kHugeAnonymous) {
    HUSK_TRY_ASSIGN(const std::vector<RegionSpec> sorted, sorted_regions(specs));
    std::vector<GuestRegion> regions;
    for (const RegionSpec& spec : sorted) {
      HUSK_TRY_ASSIGN(GuestRegion region, GuestRegion::map_huge_anonymous(spec.gpa, spec.size));
      regions.push_back(std::move(region));
    }
    return GuestMemory(std::move(regions), UniqueFd(), true);
  }
  UniqueFd memfd(::memfd_create("husk-guest-ram", MFD_CLOEXEC));
  if (!memfd) return fail_errno("memfd_create for guest memory");
  const uint64_t total = total_of(specs);
  if (::ftruncate(memfd.get(), static_cast<off_t>(total)) < 0) {
    return fail_errno(fmt::format("size the guest memory file to {} MiB", total >> 20));
  }
  const int fd = memfd.get();
  return map_all(specs, fd, true, std::move(memfd));
}

Result<GuestMemory> GuestMemory::map_snapshot(const std::vector<RegionSpec>& specs, int fd) {
  struct stat st{};
  if (::fstat(fd, &st) < 0) return fail_errno("stat the snapshot's memory file");
  const uint64_t total = total_of(specs);
  if (static_cast<uint64_t>(st.st_size) != total) {
    return fail(fmt::format("the snapshot's memory file holds {} bytes, the VM has {} bytes of memory",
                            st.st_size, total));
  }
  return map_all(specs, fd, false, UniqueFd());
}

Result<uint64_t> GuestMemory::save(int fd) const {
  if (!memfd_) return fail("only a booted VM's memory file can be saved (this memory is a snapshot's, or anonymous)");
  if (::ftruncate(fd, 0) < 0 || ::ftruncate(fd, static_cast<off_t>(total_size())) < 0) {
    return fail_errno("size the snapshot's memory file");
  }
  uint64_t written = 0;
  for (const GuestRegion& r : regions_) {
    const auto begin = static_cast<off_t>(r.file_offset());
    const auto end = static_cast<off_t>(r.file_offset() + r.size());
    off_t pos = begin;
    // The memfd's data extents are the pages the guest (or the loader)
    // touched; holes are pages never written, zero in the file too.
    while (pos < end) {
      const off_t data = ::lseek(memfd_.get(), pos, SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;
      if (data < 0) return fail_errno("find the guest memory's data (SEEK_DATA)");
      if (data >= end) break;
      off_t hole = ::lseek(memfd_.get(), data, SEEK_HOLE);
      if (hole < 0) return fail_errno("find the guest memory's holes (SEEK_HOLE)");
      hole = std::min(hole, end);
      for (off_t at = data; at < hole;) {
        const size_t chunk = static_cast<size_t>(std::min<off_t>(hole - at, 1 << 20));
        const ssize_t n = ::pwrite(fd, r.host() + (at - begin), chunk, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("write the snapshot's memory file");
        at += n;
        written += static_cast<uint64_t>(n);
      }
      pos = hole;
    }
  }
  return written;
}

Result<std::vector<GuestExtent>> GuestMemory::data_extents(GuestAddress gpa, int fd, uint64_t file_offset,
                                                          uint64_t len) {
  struct stat st{};
  if (::fstat(fd, &st) < 0) return fail_errno("stat a file to read into guest memory");
  const uint64_t size = static_cast<uint64_t>(std::max<off_t>(st.st_size, 0));
  if (file_offset > size || len > size - file_offset) {
    return fail(fmt::format("the file ends {} bytes short of what goes into guest memory",
                            file_offset + len - std::min(size, file_offset + len)));
  }
  std::vector<GuestExtent> extents;
  const uint64_t end = file_offset + len;
  for (uint64_t at = file_offset; at < end;) {
    const off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // a hole up to the end of the file
    if (data < 0) {  // a file system without SEEK_DATA: all that is left
      extents.push_back({gpa + (at - file_offset), end - at});
      break;
    }
    if (static_cast<uint64_t>(data) >= end) break;
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    const uint64_t stop = hole < 0 ? end : std::min<uint64_t>(static_cast<uint64_t>(hole), end);
    extents.push_back({gpa + (static_cast<uint64_t>(data) - file_offset), stop - static_cast<uint64_t>(data)});
    at = stop;
  }
  return extents;
}

Result<void> GuestMemory::read_file(GuestAddress gpa, int fd, uint64_t file_offset, uint64_t len,
                                    Destination dest) const {
  HUSK_TRY_ASSIGN(std::span<uint8_t> dst, slice(gpa, len));
  // Safe: slice() proved [gpa, gpa + len) lies inside one region.
  if (dest == Destination::kAny) return read_exact_at(fd, dst, file_offset);
  // Only the file's data extents: its holes read as zero, as `dst` does.
  HUSK_TRY_ASSIGN(const std::vector<GuestExtent> extents, data_extents(gpa, fd, file_offset, len));
  for (const GuestExtent& e : extents) {
    HUSK_TRY(read_exact_at(fd, dst.subspan(e.gpa - gpa, e.len), file_offset + (e.gpa - gpa)));
  }
  return {};
}

void GuestMemory::fit_page_sizes(std::span<const GuestExtent> writes) const {
  if (!huge_pages_) return;
  // Bytes written into each 2 MiB of guest-physical memory.
  std::map<GuestAddress, uint64_t> filled;
  for (const GuestExtent& w : writes) {
    if (w.gpa + w.len < w.gpa) continue;  // wraps around: no load writes that
    for (GuestAddress at = w.gpa; at < w.gpa + w.len;) {
      const GuestAddress chunk = at & ~(kHugePage - 1);
      const uint64_t n = std::min(w.gpa + w.len, chunk + kHugePage) - at;
      filled[chunk] += n;
      at += n;
    }
  }
  for (const auto& [chunk, bytes] : filled) {
    if (bytes >= kFewBytes) continue;
    for (const GuestRegion& r : regions_) {
      // The part of the 2 MiB in this region (regions are page aligned).
      const GuestAddress from = std::max(chunk, r.gpa());
      const GuestAddress to = std::min(chunk + kHugePage, r.gpa() + r.size());
      if (from < to) ::madvise(r.host() + (from - r.gpa()), to - from, MADV_NOHUGEPAGE);
    }
  }
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const GuestRegion& r : regions_) total += r.size();
  return total;
}

const GuestRegion* GuestMemory::find(GuestAddress gpa, uint64_t len) const {
  for (const GuestRegion& r : regions_) {
    if (r.contains(gpa, len)) return &r;
  }
  return nullptr;
}

bool GuestMemory::valid_range(GuestAddress gpa, uint64_t len) const {
  return find(gpa, len) != nullptr;
}

Result<std::span<uint8_t>> GuestMemory::slice(GuestAddress gpa, uint64_t len) const {
  const GuestRegion* r = find(gpa, len);
  if (r == nullptr) {
    return Unexpected(Error{EFAULT, fmt::format("guest range {:#x}+{:#x} is outside guest memory", gpa, len)});
  }
  return std::span<uint8_t>(r->host() + (gpa - r->gpa()), len);
}

Result<void> GuestMemory::write(GuestAddress gpa, std::span<const uint8_t> data) const {
  HUSK_TRY_ASSIGN(std::span<uint8_t> dst, slice(gpa, data.size()));
  if (data.size() >= kPrefaultThreshold) prefault(dst);
  if (!data.empty()) std::memcpy(dst.data(), data.data(), data.size());
  return {};
}

Result<void> GuestMemory::read(GuestAddress gpa, std::span<uint8_t> out) const {
  HUSK_TRY_ASSIGN(std::span<uint8_t> src, slice(gpa, out.size()));
  if (!out.empty()) std::memcpy(out.data(), src.data(), out.size());
  return {};
}

Result<void> GuestMemory::fill(GuestAddress gpa, uint8_t value, uint64_t len) const {
  HUSK_TRY_ASSIGN(std::span<uint8_t> dst, slice(gpa, len));
  if (len != 0) std::memset(dst.data(), value, len);
  return {};
}

}  // namespace husk
