#include "runtime/devices/legacy/console_sink.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

namespace husk::devices {

namespace {
constexpr const char* kPanicMarker = "Kernel panic - not syncing";
// A line longer than this is scanned in pieces; a panic line is far shorter.
constexpr size_t kMaxLine = 1024;
// A partial line is written out once this much of it is buffered.
constexpr size_t kFlushAt = 4096;
}  // namespace

ConsoleSink::~ConsoleSink() { flush(); }

void ConsoleSink::write(const uint8_t* data, size_t len) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < len; ++i) scan(data[i]);
  if (capped_) return;
  const uint64_t room = limit_ - accepted_;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(room, len));
  pending_.append(reinterpret_cast<const char*>(data), take);
  accepted_ += take;
  if (take < len) {
    capped_ = true;
    pending_ += fmt::format("\n[husk: the guest console passed {} bytes; the rest is dropped]\n", limit_);
  }
  const bool whole_line = std::find(data, data + take, '\n') != data + take;
  if (whole_line || capped_ || pending_.size() >= kFlushAt) flush_locked();
}

void ConsoleSink::flush() {
  std::lock_guard lock(mutex_);
  flush_locked();
}

void ConsoleSink::flush_locked() {
  size_t done = 0;
  while (done < pending_.size()) {
    const ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    // A console that cannot be written (closed pipe, full disk) must not stop
    // the guest: its output is dropped.
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  pending_.clear();
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
