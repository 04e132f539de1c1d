// Deadline: a point on the monotonic clock by which a wait must end, or
// never. The design's rule "every wait on the guest has a host-side
// deadline" is kept by passing one of these down to the poll(2) calls, so
// that a deadline covers a whole call (many reads and writes), not each
// read: a guest that drips one byte at a time cannot stretch it.
#pragma once

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>

namespace husk {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  [[nodiscard]] static Deadline never() { return Deadline(Clock::time_point::max()); }
  [[nodiscard]] static Deadline at(Clock::time_point t) { return Deadline(t); }
  // Now plus `d`; a negative `d` is already past, one too large to add is never.
  [[nodiscard]] static Deadline after(std::chrono::milliseconds d) {
    const auto now = Clock::now();
    if (d > std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now)) return never();
    return Deadline(now + d);
  }
  // For the int-milliseconds interfaces: -1 (any negative) is never.
  [[nodiscard]] static Deadline after_ms(int ms) {
    return ms < 0 ? never() : after(std::chrono::milliseconds(ms));
  }

  [[nodiscard]] bool is_never() const { return at_ == Clock::time_point::max(); }
  [[nodiscard]] Clock::time_point time() const { return at_; }
  [[nodiscard]] bool expired() const { return !is_never() && Clock::now() >= at_; }
  [[nodiscard]] Deadline earlier(Deadline other) const { return Deadline(std::min(at_, other.at_)); }
  [[nodiscard]] std::chrono::milliseconds left() const {
    if (is_never()) return std::chrono::milliseconds::max();
    const auto d = std::chrono::ceil<std::chrono::milliseconds>(at_ - Clock::now());
    return std::max(d, std::chrono::milliseconds(0));
  }
  // poll(2)'s timeout: -1 for never, else the milliseconds left rounded up
  // (a wait never wakes just before its deadline and spins), capped at INT_MAX.
  [[nodiscard]] int poll_ms() const {
    if (is_never()) return -1;
    return static_cast<int>(std::min<std::chrono::milliseconds::rep>(left().count(), INT_MAX));
  }

 private:
  explicit Deadline(Clock::time_point t) : at_(t) {}
  Clock::time_point at_;
};

// poll(2) on one descriptor until `events` or the deadline: >0 ready, 0 the
// deadline passed, <0 an error in errno. EINTR waits again for what is left.
[[nodiscard]] inline int poll_until(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, deadline.poll_ms());
    if (rc > 0 || (rc == 0 && deadline.expired())) return rc;
    if (rc < 0 && errno != EINTR) return rc;
  }
}

}  // namespace husk
