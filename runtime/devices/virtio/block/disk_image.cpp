#include "runtime/devices/virtio/block/disk_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>

#include <fmt/format.h>

namespace husk::virtio {

namespace {

// preadv/pwritev until done: a regular file may still return short counts.
template <typename Op>
Result<void> full_io(Op op, const char* what, const std::string& path, uint64_t offset,
                     std::span<const iovec> iov) {
  std::vector<iovec> rest(iov.begin(), iov.end());
  size_t first = 0;
  while (first < rest.size()) {
    const ssize_t n = op(rest.data() + first, static_cast<int>(std::min<size_t>(rest.size() - first, IOV_MAX)),
                         static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(fmt::format("{} {} at {}", what, path, offset));
    if (n == 0) return fail(fmt::format("{} {} at {}: unexpected end of file", what, path, offset));
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < rest.size() && left >= rest[first].iov_len) {
      left -= rest[first].iov_len;
      ++first;
    }
    if (left > 0) {
      rest[first].iov_base = static_cast<uint8_t*>(rest[first].iov_base) + left;
      rest[first].iov_len -= left;
    }
  }
  return {};
}

Result<UniqueFd> make_overlay(const std::string& for_path, uint64_t size) {
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  // O_TMPFILE: the overlay never has a name, so nothing is left behind
  // even if husk is killed.
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) {
    std::string name = dir + "/husk-overlay-XXXXXX";
    fd.reset(::mkostemp(name.data(), O_CLOEXEC));
    if (!fd) return fail_errno("create the copy-on-write overlay for " + for_path + " in " + dir);
    ::unlink(name.c_str());
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    return fail_errno("size the copy-on-write overlay for " + for_path);
  }
  return fd;
}

}  // namespace

uint64_t iov_length(std::span<const iovec> iov) {
  uint64_t total = 0;
  for (const iovec& v : iov) total += v.iov_len;
  return total;
}

std::vector<iovec> slice_iov(std::span<const iovec> iov, uint64_t offset, uint64_t len) {
  std::vector<iovec> out;
  for (const iovec& v : iov) {
    if (len == 0) break;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(v.iov_len - offset, len);
    out.push_back(iovec{static_cast<uint8_t*>(v.iov_base) + offset, n});
    len -= n;
    offset = 0;
  }
  return out;
}

DiskImage::DiskImage(std::string path, DiskMode mode, UniqueFd base, UniqueFd overlay, uint64_t size)
    : path_(std::move(path)), mode_(mode), base_(std::move(base)), overlay_(std::move(overlay)), size_(size) {
  if (mode_ == DiskMode::kCopyOnWrite) dirty_.assign((size_ / kSectorSize + 63) / 64, 0);
}

Result<DiskImage> DiskImage::open(const std::string& path, DiskMode mode) {
  const int flags = (mode == DiskMode::kPersistent ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) return fail_errno("open disk " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat disk " + path);
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    const off_t end = ::lseek(fd.get(), 0, SEEK_END);
    if (end < 0) return fail_errno("size of disk " + path);
    size = static_cast<uint64_t>(end);
  } else {
    return fail(fmt::format("disk {} is neither a regular file nor a block device", path));
  }
  // The guest sees whole sectors only.
  size -= size % kSectorSize;
  if (size == 0) return fail(fmt::format("disk {} is smaller than one 512-byte sector", path));
  UniqueFd overlay;
  if (mode == DiskMode::kCopyOnWrite) {
    HUSK_TRY_ASSIGN(overlay, make_overlay(path, size));
  }
  return DiskImage(path, mode, std::move(fd), std::move(overlay), size);
}

bool DiskImage::sector_in_overlay(uint64_t sector) const {
  return (dirty_[sector / 64] >> (sector % 64)) & 1;
}

void DiskImage::mark_overlay(uint64_t first_sector, uint64_t count) {
  for (uint64_t s = first_sector; s < first_sector + count; ++s) dirty_[s / 64] |= uint64_t{1} << (s % 64);
}

Result<void> DiskImage::read(uint64_t offset, std::span<const iovec> iov) const {
  auto pread_base = [this](const iovec* v, int n, off_t off) { return ::preadv(base_.get(), v, n, off); };
  if (mode_ != DiskMode::kCopyOnWrite) return full_io(pread_base, "read", path_, offset, iov);
  // Runs of sectors come from the overlay or the base, whichever holds
  // their current contents.
  auto pread_overlay = [this](const iovec* v, int n, off_t off) { return ::preadv(overlay_.get(), v, n, off); };
  const uint64_t first = offset / kSectorSize;
  const uint64_t count = iov_length(iov) / kSectorSize;
  uint64_t run_start = 0;
  while (run_start < count) {
    const bool in_overlay = sector_in_overlay(first + run_start);
    uint64_t run_end = run_start + 1;
    while (run_end < count && sector_in_overlay(first + run_end) == in_overlay) ++run_end;
    const std::vector<iovec> part =
        slice_iov(iov, run_start * kSectorSize, (run_end - run_start) * kSectorSize);
    const uint64_t at = offset + run_start * kSectorSize;
    if (in_overlay) {
      HUSK_TRY(full_io(pread_overlay, "read overlay of", path_, at, part));
    } else {
      HUSK_TRY(full_io(pread_base, "read", path_, at, part));
    }
    run_start = run_end;
  }
  return {};
}

Result<void> DiskImage::write(uint64_t offset, std::span<const iovec> iov) {
  if (mode_ == DiskMode::kReadOnly) return fail(fmt::format("disk {} is read-only", path_));
  const int fd = mode_ == DiskMode::kCopyOnWrite ? overlay_.get() : base_.get();
  auto op = [fd](const iovec* v, int n, off_t off) { return ::pwritev(fd, v, n, off); };
  HUSK_TRY(full_io(op, "write", path_, offset, iov));
  if (mode_ == DiskMode::kCopyOnWrite) mark_overlay(offset / kSectorSize, iov_length(iov) / kSectorSize);
  return {};
}

Result<void> DiskImage::flush() const {
  // The overlay dies with the VM: there is nothing durable to flush.
  if (mode_ != DiskMode::kPersistent) return {};
  if (::fdatasync(base_.get()) != 0) return fail_errno("flush disk " + path_);
  return {};
}

bool DiskImage::overlay_written() const {
  return std::any_of(dirty_.begin(), dirty_.end(), [](uint64_t word) { return word != 0; });
}

}  // namespace husk::virtio
