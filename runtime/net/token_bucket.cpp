// TokenBucket: exact refill arithmetic (see token_bucket.h).
#include "runtime/net/token_bucket.h"

#include <algorithm>
#include <limits>

namespace husk::net {

namespace {

// 128-bit products: nanoseconds (< 2^63) times a rate (< 2^64) cannot
// overflow, so no elapsed time and no rate needs a special case.
__extension__ typedef unsigned __int128 Wide;

constexpr Wide kNanosPerSecond = 1'000'000'000;
// Requests and bursts are clamped here so that tokens - n never overflows
// int64 (a frame is at most 64 KiB; this bound is only defensive).
constexpr uint64_t kMaxAmount = uint64_t{1} << 62;

int64_t clamp_amount(uint64_t n) { return static_cast<int64_t>(std::min(n, kMaxAmount)); }

}  // namespace

TokenBucket::TokenBucket(uint64_t rate_per_second, uint64_t burst, Clock::time_point now)
    : rate_(rate_per_second), burst_(clamp_amount(burst)), level_{burst_, 0, now} {}

TokenBucket::Level TokenBucket::level_at(Clock::time_point now) const {
  if (now <= level_.since) return level_;
  // A full bucket does not bank time: the refill starts again from now.
  if (level_.tokens >= burst_) return Level{level_.tokens, 0, now};
  const auto elapsed = static_cast<uint64_t>((now - level_.since).count());
  // In billionths of a token: elapsed (ns) * rate (tokens/s).
  const Wide earned = Wide{elapsed} * rate_ + level_.fraction;
  const Wide missing = static_cast<Wide>(burst_ - level_.tokens);  // > 0 here
  if (earned / kNanosPerSecond >= missing) return Level{burst_, 0, now};
  return Level{level_.tokens + static_cast<int64_t>(earned / kNanosPerSecond),
               static_cast<uint64_t>(earned % kNanosPerSecond), now};
}

int64_t TokenBucket::needed(uint64_t n) const { return std::min(clamp_amount(n), burst_); }

bool TokenBucket::try_consume(uint64_t n, Clock::time_point now) {
  if (rate_ == 0) return true;
  level_ = level_at(now);
  if (level_.tokens < needed(n)) return false;
  level_.tokens -= clamp_amount(n);
  return true;
}

std::chrono::nanoseconds TokenBucket::wait_time(uint64_t n, Clock::time_point now) const {
  if (rate_ == 0) return std::chrono::nanoseconds(0);
  const Level level = level_at(now);
  const int64_t need = needed(n);
  if (level.tokens >= need) return std::chrono::nanoseconds(0);
  // The first t at which (t * rate + fraction) / 1e9 whole tokens cover the
  // missing ones; time to wait is counted from level.since (= now, or later
  // if the clock went backwards).
  const Wide missing = static_cast<Wide>(need - level.tokens) * kNanosPerSecond - level.fraction;
  const Wide nanos = (missing + rate_ - 1) / rate_;
  const auto capped = static_cast<int64_t>(std::min<Wide>(nanos, std::numeric_limits<int64_t>::max() / 2));
  const auto ready = level.since + std::chrono::nanoseconds(capped);
  return std::max(std::chrono::nanoseconds(0), std::chrono::duration_cast<std::chrono::nanoseconds>(ready - now));
}

}  // namespace husk::net
