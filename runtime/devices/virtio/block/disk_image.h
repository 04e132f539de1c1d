// DiskImage: the host file behind a virtio-blk disk, in one of three modes:
//   read-only     the file is opened O_RDONLY; writes are refused.
//   copy-on-write the file is opened O_RDONLY and never changes; writes go
//                 to a private, already-unlinked overlay file in $TMPDIR,
//                 tracked per 512-byte sector, and vanish with the VM.
//   persistent    the file is opened O_RDWR; writes go through to it.
// All I/O is positioned and vectored (preadv/pwritev) straight between the
// file and guest memory.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::virtio {

enum class DiskMode { kReadOnly, kCopyOnWrite, kPersistent };

class DiskImage {
 public:
  static constexpr uint64_t kSectorSize = 512;

  static Result<DiskImage> open(const std::string& path, DiskMode mode);

  [[nodiscard]] uint64_t size() const { return size_; }
  [[nodiscard]] DiskMode mode() const { return mode_; }
  [[nodiscard]] bool read_only() const { return mode_ == DiskMode::kReadOnly; }
  [[nodiscard]] const std::string& path() const { return path_; }
  // Whether a copy-on-write disk's overlay holds any write (a snapshot,
  // which does not save overlays, refuses such a disk).
  [[nodiscard]] bool overlay_written() const;

  // [offset, offset + total iov length) must lie inside the disk and be
  // sector aligned (the block device checks before calling).
  [[nodiscard]] Result<void> read(uint64_t offset, std::span<const iovec> iov) const;
  [[nodiscard]] Result<void> write(uint64_t offset, std::span<const iovec> iov);
  [[nodiscard]] Result<void> flush() const;

 private:
  DiskImage(std::string path, DiskMode mode, UniqueFd base, UniqueFd overlay, uint64_t size);
  [[nodiscard]] bool sector_in_overlay(uint64_t sector) const;
  void mark_overlay(uint64_t first_sector, uint64_t count);

  std::string path_;
  DiskMode mode_;
  UniqueFd base_;
  UniqueFd overlay_;             // copy-on-write only
  std::vector<uint64_t> dirty_;  // copy-on-write: one bit per sector
  uint64_t size_ = 0;
};

// The part [offset, offset+len) of the byte sequence `iov` describes.
[[nodiscard]] std::vector<iovec> slice_iov(std::span<const iovec> iov, uint64_t offset, uint64_t len);
[[nodiscard]] uint64_t iov_length(std::span<const iovec> iov);

}  // namespace husk::virtio
