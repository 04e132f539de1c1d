#include "runtime/common/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/unique_fd.h"

namespace husk {

namespace {

struct OpenFile {
  UniqueFd fd;
  uint64_t size;
};

// Opens a regular file for reading and checks its size against the cap.
Result<OpenFile> open_regular(const std::string& path, uint64_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + path);
  if (!S_ISREG(st.st_mode)) return fail(fmt::format("{} is not a regular file", path));
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size > max_size) {
    return fail(fmt::format("{} is {} bytes, more than the limit of {} bytes", path, size, max_size));
  }
  return OpenFile{std::move(fd), size};
}

}  // namespace

Result<void> read_exact_at(int fd, std::span<uint8_t> dst, uint64_t offset) {
  for (size_t done = 0; done < dst.size();) {
    const ssize_t n = ::pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read a file into guest memory");
    if (n == 0) {
      return fail(fmt::format("the file ends {} bytes short of what goes into guest memory", dst.size() - done));
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_size) {
  HUSK_TRY_ASSIGN(OpenFile file, open_regular(path, max_size));
  const UniqueFd& fd = file.fd;
  const uint64_t size = file.size;
  std::vector<uint8_t> data(size);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd.get(), data.data() + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path);
    }
    // The file shrank while we read it: return what is there rather than
    // trailing zeros that were never in the file.
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  data.resize(done);
  return data;
}

Result<std::string> read_text_file(const std::string& path, uint64_t max_size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("cannot read " + path);
  // Read straight into the string, a chunk no larger than what may still
  // come (plus the byte that tells a file too large): a 37-byte boot_id
  // costs no 64 KiB buffer to clear, on the heap or the stack.
  constexpr uint64_t kChunk = 64 * 1024;
  std::string data;
  for (;;) {
    const size_t old = data.size();
    data.resize(old + static_cast<size_t>(std::min(kChunk, max_size + 1 - old)));
    const ssize_t n = ::read(fd.get(), data.data() + old, data.size() - old);
    const int err = errno;
    data.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && err == EINTR) continue;
    if (n < 0) {
      errno = err;
      return fail_errno("cannot read " + path);
    }
    if (n == 0) return data;
    if (data.size() > max_size) {
      return fail(fmt::format("cannot read {}: it is larger than {} bytes", path, max_size));
    }
  }
}

Result<MappedFile> MappedFile::open(const std::string& path, uint64_t max_size) {
  HUSK_TRY_ASSIGN(OpenFile file, open_regular(path, max_size));
  const UniqueFd& fd = file.fd;
  const uint64_t size = file.size;
  if (size == 0) return MappedFile(nullptr, 0);
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd.get(), 0);
  if (p == MAP_FAILED) return fail_errno("mmap " + path);
  return MappedFile(static_cast<const uint8_t*>(p), size);
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

}  // namespace husk
