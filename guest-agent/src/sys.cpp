#include "guest-agent/src/sys.h"

#include <fcntl.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "runtime/common/unique_fd.h"

namespace husk::guest {

int write_text(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  // Kernel knobs take the value in one write(); a short write is an error.
  const ssize_t n = ::write(fd.get(), value.data(), value.size());
  if (n < 0) return errno;
  return static_cast<size_t>(n) == value.size() ? 0 : EIO;
}

int read_text(const std::string& path, std::string& out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno;
  out.clear();
  char buf[4096];
  while (out.size() < 65536) {
    const ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return 0;
}

uint64_t keyed_value(const std::string& text, const std::string& key) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end == std::string::npos ? end : end - pos);
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 &&
        line[key.size()] == ' ') {
      return std::strtoull(line.c_str() + key.size() + 1, nullptr, 10);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return 0;
}

int make_dirs(const std::string& path, unsigned mode) {
  for (size_t pos = 1; pos <= path.size(); ++pos) {
    if (pos != path.size() && path[pos] != '/') continue;
    const std::string prefix = path.substr(0, pos);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int reseed_kernel_rng(const std::string& entropy) {
  if (entropy.size() < 32 || entropy.size() > 512) return EINVAL;
  UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!fd) return errno;
  // struct rand_pool_info ends in a flexible array: one buffer for both.
  std::string buf(sizeof(rand_pool_info) + entropy.size(), '\0');
  auto* info = reinterpret_cast<rand_pool_info*>(buf.data());
  info->entropy_count = static_cast<int>(entropy.size() * 8);
  info->buf_size = static_cast<int>(entropy.size());
  std::memcpy(buf.data() + sizeof(rand_pool_info), entropy.data(), entropy.size());
  if (::ioctl(fd.get(), RNDADDENTROPY, info) != 0) return errno;
  if (::ioctl(fd.get(), RNDRESEEDCRNG) != 0) return errno;
  return 0;
}

}  // namespace husk::guest
