#include "runtime/devices/legacy/console_sink.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>

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
// One slice of a wait for the console fd; abandon() is seen between slices.
constexpr int kWaitSliceMs = 100;
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
  if (!whole_line && !capped_ && pending_.size() < kFlushAt) return;
  drain_locked(0);
  // Backpressure for a slow reader, until the VM stops.
  while (pending_.size() > kBacklog && !abandoned_) drain_locked(kWaitSliceMs);
  if (pending_.size() > kBacklog) pending_.clear();  // abandoned: dropped
}

void ConsoleSink::flush(int wait_ms) {
  std::lock_guard lock(mutex_);
  drain_locked(wait_ms);
}

void ConsoleSink::try_flush() {
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (lock.owns_lock()) drain_locked(0);
}

void ConsoleSink::drain_locked(int wait_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  size_t done = 0;
  while (done < pending_.size()) {
    // A pipe that polls writable takes at least PIPE_BUF bytes without
    // blocking; a file or a terminal always polls writable.
    pollfd p{fd_, POLLOUT, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    if (p.revents & (POLLERR | POLLNVAL)) {
      // A console that cannot be written (closed pipe, bad fd) must not
      // stop the guest: its output is dropped.
      done = pending_.size();
      break;
    }
    const size_t chunk = std::min<size_t>(pending_.size() - done, PIPE_BUF);
    const ssize_t n = ::write(fd_, pending_.data() + done, chunk);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      done = pending_.size();  // full disk, closed pipe: dropped
      break;
    }
    done += static_cast<size_t>(n);
  }
  pending_.erase(0, done);
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
