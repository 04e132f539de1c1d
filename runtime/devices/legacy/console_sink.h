// ConsoleSink: where the guest's serial console goes (a host fd: stdout or a
// file). It also watches the text line by line for a kernel panic, so that a
// guest which panics and then resets (panic=-1) is reported as a failure
// quoting the panic line instead of as a clean reset.
//
// The guest writes a byte at a time; the sink buffers and writes whole lines
// (or 4 KiB), and the machine's control thread flushes a partial line (a
// shell prompt) within 100 ms. The guest is hostile: past `limit` bytes the
// sink writes one marker line and drops the rest (it still watches for a
// panic), so a program in the guest cannot fill the host's disk.
#pragma once

#include <mutex>
#include <cstdint>
#include <optional>
#include <string>

#include "runtime/common/unique_fd.h"

namespace husk::devices {

class ConsoleSink {
 public:
  // Does not take ownership of `fd` unless `owned` holds it.
  static constexpr uint64_t kDefaultLimit = 64ull << 20;

  explicit ConsoleSink(int fd, UniqueFd owned = UniqueFd(), uint64_t limit = kDefaultLimit)
      : fd_(fd), owned_(std::move(owned)), limit_(limit) {}
  ~ConsoleSink();
  ConsoleSink(const ConsoleSink&) = delete;
  ConsoleSink& operator=(const ConsoleSink&) = delete;

  void write(const uint8_t* data, size_t len);
  // Writes out what is buffered (a line without its newline yet).
  void flush();

  // The first "Kernel panic" line the guest printed, if any.
  [[nodiscard]] std::optional<std::string> panic_line() const;

 private:
  void scan(uint8_t byte);
  void flush_locked();

  int fd_;
  UniqueFd owned_;
  uint64_t limit_;
  uint64_t accepted_ = 0;  // bytes taken for output (buffered or written)
  bool capped_ = false;
  std::string pending_;
  mutable std::mutex mutex_;
  std::string line_;
  std::optional<std::string> panic_line_;
};

}  // namespace husk::devices
