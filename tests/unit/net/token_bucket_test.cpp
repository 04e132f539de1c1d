// TokenBucket: sustained rate, burst and debt on explicit time points (no
// sleeping, so the numbers are exact and the tests fast).
#include "runtime/net/token_bucket.h"

#include <chrono>
#include <cstdint>

#include <catch2/catch.hpp>

namespace husk::net {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using Clock = TokenBucket::Clock;

const Clock::time_point kStart = Clock::time_point{} + std::chrono::hours(1);

TEST_CASE("token bucket: rate 0 is unlimited", "[net][token_bucket]") {
  TokenBucket bucket(0, 0, kStart);
  CHECK(bucket.unlimited());
  for (int i = 0; i < 1000; ++i) REQUIRE(bucket.try_consume(1'000'000, kStart));
  CHECK(bucket.wait_time(UINT64_MAX, kStart) == nanoseconds(0));
}

TEST_CASE("token bucket: starts full and grants a burst at once", "[net][token_bucket]") {
  TokenBucket bucket(1000, 5000, kStart);
  CHECK(bucket.try_consume(3000, kStart));
  CHECK(bucket.try_consume(2000, kStart));
  CHECK_FALSE(bucket.try_consume(1, kStart));
  // One token takes a millisecond at 1000/s.
  CHECK(bucket.wait_time(1, kStart) == milliseconds(1));
  CHECK(bucket.wait_time(500, kStart) == milliseconds(500));
  CHECK_FALSE(bucket.try_consume(500, kStart + milliseconds(499)));
  CHECK(bucket.try_consume(500, kStart + milliseconds(500)));
}

TEST_CASE("token bucket: does not bank more than the burst", "[net][token_bucket]") {
  TokenBucket bucket(1000, 100, kStart);
  const auto later = kStart + std::chrono::hours(10);
  CHECK(bucket.try_consume(100, later));
  CHECK_FALSE(bucket.try_consume(1, later));
  CHECK(bucket.wait_time(1, later) == milliseconds(1));
}

TEST_CASE("token bucket: sustained rate within 1%", "[net][token_bucket]") {
  // A sender that asks for 1500-byte frames every 10 us for 10 s at 1 MB/s.
  constexpr uint64_t kRate = 1'000'000;
  TokenBucket bucket(kRate, 64 * 1024, kStart);
  uint64_t sent = 0;
  auto now = kStart;
  const auto end = kStart + std::chrono::seconds(10);
  for (; now < end; now += std::chrono::microseconds(10)) {
    if (bucket.try_consume(1500, now)) sent += 1500;
  }
  const double expected = 10.0 * kRate + 64 * 1024;  // the refill plus the initial burst
  CHECK(static_cast<double>(sent) >= expected * 0.99);
  CHECK(static_cast<double>(sent) <= expected * 1.01);
}

TEST_CASE("token bucket: many tiny refills add up exactly", "[net][token_bucket]") {
  // 3 tokens/s asked for every 8 ms: each refill earns 0.024 of a token,
  // which must carry over (the bucket never fills, so nothing overflows).
  TokenBucket bucket(3, 100, kStart);
  REQUIRE(bucket.try_consume(100, kStart));
  int granted = 0;
  for (auto now = kStart; now <= kStart + std::chrono::seconds(10); now += milliseconds(8)) {
    if (bucket.try_consume(1, now)) ++granted;
  }
  CHECK(granted == 30);
}

TEST_CASE("token bucket: a request larger than the burst leaves debt", "[net][token_bucket]") {
  TokenBucket bucket(1000, 100, kStart);
  // Not full: the big request waits until it is.
  REQUIRE(bucket.try_consume(50, kStart));
  CHECK_FALSE(bucket.try_consume(1000, kStart));
  CHECK(bucket.wait_time(1000, kStart) == milliseconds(50));
  const auto full = kStart + milliseconds(50);
  // Full: granted, and the bucket owes 900 tokens.
  CHECK(bucket.try_consume(1000, full));
  CHECK_FALSE(bucket.try_consume(1, full));
  // The debt (900) plus the one token: 901 ms.
  CHECK(bucket.wait_time(1, full) == milliseconds(901));
  CHECK_FALSE(bucket.try_consume(1, full + milliseconds(900)));
  CHECK(bucket.try_consume(1, full + milliseconds(901)));
}

TEST_CASE("token bucket: burst 0 serialises requests by their size", "[net][token_bucket]") {
  TokenBucket bucket(1000, 0, kStart);
  CHECK(bucket.try_consume(10, kStart));
  CHECK_FALSE(bucket.try_consume(10, kStart + milliseconds(9)));
  CHECK(bucket.wait_time(10, kStart + milliseconds(9)) == milliseconds(1));
  CHECK(bucket.try_consume(10, kStart + milliseconds(10)));
}

TEST_CASE("token bucket: time going backwards changes nothing", "[net][token_bucket]") {
  TokenBucket bucket(1000, 10, kStart);
  REQUIRE(bucket.try_consume(10, kStart));
  CHECK_FALSE(bucket.try_consume(1, kStart - milliseconds(100)));
  CHECK(bucket.try_consume(1, kStart + milliseconds(1)));
}

}  // namespace
}  // namespace husk::net
