// ConsoleSink: where the guest's serial console goes (a host fd: stdout or a
// file). It also watches the text line by line for a kernel panic, so that a
// guest which panics and then resets (panic=-1) is reported as a failure
// quoting the panic line instead of as a clean reset.
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "runtime/common/unique_fd.h"

namespace husk::devices {

class ConsoleSink {
 public:
  // Does not take ownership of `fd` unless `owned` holds it.
  explicit ConsoleSink(int fd, UniqueFd owned = UniqueFd()) : fd_(fd), owned_(std::move(owned)) {}

  void write(const uint8_t* data, size_t len);

  // The first "Kernel panic" line the guest printed, if any.
  [[nodiscard]] std::optional<std::string> panic_line() const;

 private:
  void scan(uint8_t byte);

  int fd_;
  UniqueFd owned_;
  mutable std::mutex mutex_;
  std::string line_;
  std::optional<std::string> panic_line_;
};

}  // namespace husk::devices
