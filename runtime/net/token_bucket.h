// TokenBucket: the rate limiter of Firecracker's net and block devices
// (src/vmm/src/rate_limiter): a bucket of `burst` tokens that refills at
// `rate_per_second`, starts full, and may go into debt for one request
// larger than the whole bucket.
//
// Time is passed in, never read, so the device thread decides when "now" is
// (one clock read per event-loop turn) and tests run on explicit time points.
// Refills are exact integer arithmetic: the fraction of a token earned but
// not yet whole carries over, so many small refills add up to one big one.
#pragma once

#include <chrono>
#include <cstdint>

namespace husk::net {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // Starts full; rate 0 = unlimited (every request is granted at once).
  TokenBucket(uint64_t rate_per_second, uint64_t burst, Clock::time_point now);

  // Takes n tokens if the bucket has them now. A request larger than `burst`
  // is granted when the bucket is full and leaves it in debt (so a big frame
  // never starves); the debt is paid back by the refill before anything else
  // is granted.
  [[nodiscard]] bool try_consume(uint64_t n, Clock::time_point now);

  // How long until try_consume(n) would succeed (0 if now).
  [[nodiscard]] std::chrono::nanoseconds wait_time(uint64_t n, Clock::time_point now) const;

  [[nodiscard]] bool unlimited() const { return rate_ == 0; }

 private:
  struct Level {
    int64_t tokens = 0;          // may be negative: debt
    uint64_t fraction = 0;       // billionths of a token earned on top, < 1e9
    Clock::time_point since{};   // the time `tokens` and `fraction` are exact for
  };
  // The level at `now` without changing the bucket.
  [[nodiscard]] Level level_at(Clock::time_point now) const;
  // What a request of n needs in the bucket: n, or a full bucket for n > burst.
  [[nodiscard]] int64_t needed(uint64_t n) const;

  uint64_t rate_ = 0;
  int64_t burst_ = 0;
  Level level_{};
};

}  // namespace husk::net
