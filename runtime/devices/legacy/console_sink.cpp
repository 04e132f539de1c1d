#include "runtime/devices/legacy/console_sink.h"

#include <unistd.h>

#include <cerrno>

namespace husk::devices {

namespace {
constexpr const char* kPanicMarker = "Kernel panic - not syncing";
// A line longer than this is scanned in pieces; a panic line is far shorter.
constexpr size_t kMaxLine = 1024;
}  // namespace

void ConsoleSink::write(const uint8_t* data, size_t len) {
  std::lock_guard lock(mutex_);
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::write(fd_, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    // A console that cannot be written (closed pipe, full disk) must not stop
    // the guest: its output is dropped.
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  for (size_t i = 0; i < len; ++i) scan(data[i]);
}

void ConsoleSink::scan(uint8_t byte) {
  if (byte == '\n' || line_.size() >= kMaxLine) {
    if (!panic_line_ && line_.find(kPanicMarker) != std::string::npos) {
      while (!line_.empty() && (line_.back() == '\r' || line_.back() == ' ')) line_.pop_back();
      panic_line_ = line_;
    }
    line_.clear();
    if (byte == '\n') return;
  }
  line_.push_back(static_cast<char>(byte));
}

std::optional<std::string> ConsoleSink::panic_line() const {
  std::lock_guard lock(mutex_);
  return panic_line_;
}

}  // namespace husk::devices
