// Tests for runtime/serve/concurrency_limiter.h: at most `limit` slots,
// a slot's place back when it goes (moved slots give it back once), and
// many threads never hold more than the limit.
#include "runtime/serve/concurrency_limiter.h"

#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace husk::serve {
namespace {

TEST_CASE("the limiter gives at most `limit` slots and takes each back once", "[unit][serve]") {
  ConcurrencyLimiter limiter(2);
  CHECK(limiter.limit() == 2);
  auto a = limiter.try_acquire();
  auto b = limiter.try_acquire();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(limiter.in_flight() == 2);
  CHECK_FALSE(limiter.try_acquire());
  {
    // A moved slot is one place, given back once.
    std::optional<ConcurrencyLimiter::Slot> moved(std::move(*a));
    a.reset();
    CHECK(limiter.in_flight() == 2);
  }
  CHECK(limiter.in_flight() == 1);
  auto c = limiter.try_acquire();
  REQUIRE(c);
  CHECK_FALSE(limiter.try_acquire());
  b.reset();
  c.reset();
  CHECK(limiter.in_flight() == 0);
}

TEST_CASE("threads racing for slots never hold more than the limit", "[unit][serve]") {
  ConcurrencyLimiter limiter(3);
  std::atomic<int> holding{0};
  std::atomic<int> most{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto slot = limiter.try_acquire();
        if (!slot) {
          ++refused;
          continue;
        }
        const int now = ++holding;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        --holding;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(most.load() <= 3);
  CHECK(limiter.in_flight() == 0);
}

}  // namespace
}  // namespace husk::serve
