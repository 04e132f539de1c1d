// Reading a whole host file (a kernel, an initrd, a job's input) into memory, with a size
// cap so that a wrong path to a huge file fails cleanly instead of eating RAM.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/common/result.h"

namespace husk {

// Errors name the path: "open /x/vmlinux: No such file or directory".
[[nodiscard]] Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size);

// A whole host file of any kind (a pipe too) as text, for the inputs of
// jobs, at most `max_size` bytes (a job that names /dev/zero gets an error,
// not an exhausted host); errors: "cannot read PATH: strerror".
inline constexpr uint64_t kMaxTextFile = uint64_t{1} << 30;
[[nodiscard]] Result<std::string> read_text_file(const std::string& path, uint64_t max_size = kMaxTextFile);

// Fills `dst` with the bytes of `fd` from `offset` (pread, EINTR retried):
// a file that ends early is an error, what was read stays. Allocates only
// for an error, so a thread may use it without a malloc arena.
[[nodiscard]] Result<void> read_exact_at(int fd, std::span<uint8_t> dst, uint64_t offset);

// A whole host file mapped read-only: the kernel and initrd loaders copy
// straight from the page cache into guest memory, with no heap copy.
class MappedFile {
 public:
  // Same errors and size cap as read_file.
  static Result<MappedFile> open(const std::string& path, uint64_t max_size);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  [[nodiscard]] std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace husk
