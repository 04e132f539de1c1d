// Tests for runtime/serve/vm_pool.h with a fake VM: the pool fills to its
// size, a request takes a ready VM or waits for the next start, every
// start happens on the pool's one thread, a failed start goes to the
// request waiting for it and refills back off, a stopped VM is dropped,
// deadlines hold, drain() and stop() end it cleanly.
#include "runtime/serve/vm_pool.h"

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

namespace husk::serve {
namespace {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

struct FakeVm {
  int id = 0;
  bool alive = true;
  std::atomic<int>* destroyed = nullptr;
  ~FakeVm() {
    if (destroyed != nullptr) ++*destroyed;
  }
};

// Counts and times the starts, records the threads they ran on, and can
// fail the next ones.
struct FakeFactory {
  std::atomic<int> started{0};
  std::atomic<int> destroyed{0};
  std::atomic<int> fail_next{0};
  std::atomic<bool> next_dead{false};
  std::chrono::milliseconds delay{0};
  std::mutex mutex;
  std::set<std::thread::id> threads;

  Result<std::unique_ptr<FakeVm>> start() {
    {
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(delay);
    if (fail_next > 0) {
      --fail_next;
      return fail("no kernel");
    }
    auto vm = std::make_unique<FakeVm>();
    vm->id = ++started;
    vm->alive = !next_dead.exchange(false);
    vm->destroyed = &destroyed;
    return vm;
  }
  std::unique_ptr<VmPool<FakeVm>> pool(size_t size, std::chrono::milliseconds retry = 1000ms) {
    VmPool<FakeVm>::Options o;
    o.size = size;
    o.retry_first = retry;
    o.retry_max = retry * 4;
    auto p = VmPool<FakeVm>::start(o, [this] { return start(); }, [](FakeVm& vm) { return vm.alive; }, nullptr);
    REQUIRE(p);
    return std::move(*p);
  }
};

template <typename F>
bool eventually(F condition, std::chrono::milliseconds within = 2000ms) {
  const auto until = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

TEST_CASE("the pool fills to its size and refills after each request, on one thread", "[unit][serve]") {
  FakeFactory f;
  auto pool = f.pool(2);
  REQUIRE(pool->wait_ready(Deadline::after(2000ms)) == true);
  CHECK(eventually([&] { return pool->stats().ready == 2; }));
  std::this_thread::sleep_for(20ms);
  CHECK(f.started == 2);  // no more than its size

  std::vector<int> ids;
  for (int i = 0; i < 5; ++i) {
    auto vm = pool->acquire(Deadline::after(2000ms));
    REQUIRE(vm);
    ids.push_back((*vm)->id);
  }
  // Each VM went to one request, in the order started.
  CHECK(ids == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(eventually([&] { return pool->stats().ready == 2; }));
  CHECK(f.threads.size() == 1);
  CHECK(f.threads.count(std::this_thread::get_id()) == 0);
}

TEST_CASE("with pool 0 a request waits for a VM started for it", "[unit][serve]") {
  FakeFactory f;
  f.delay = 30ms;
  auto pool = f.pool(0);
  std::this_thread::sleep_for(50ms);
  CHECK(f.started == 0);
  const auto before = std::chrono::steady_clock::now();
  auto vm = pool->acquire(Deadline::after(2000ms));
  REQUIRE(vm);
  CHECK(std::chrono::steady_clock::now() - before >= 25ms);
  std::this_thread::sleep_for(50ms);
  CHECK(f.started == 1);  // nothing kept ready
  CHECK(pool->stats().ready == 0);
}

TEST_CASE("requests waiting at once are served one start each, in order, by the one thread", "[unit][serve]") {
  FakeFactory f;
  f.delay = 20ms;
  auto pool = f.pool(0);
  std::vector<std::future<int>> waiting;
  for (int i = 0; i < 4; ++i) {
    waiting.push_back(std::async(std::launch::async, [&] {
      auto vm = pool->acquire(Deadline::after(5000ms));
      return vm ? (*vm)->id : -1;
    }));
  }
  std::set<int> ids;
  for (auto& w : waiting) ids.insert(w.get());
  CHECK(ids == std::set<int>{1, 2, 3, 4});
  CHECK(f.threads.size() == 1);
}

TEST_CASE("a request's deadline holds while it waits; the VM it asked for serves the next", "[unit][serve]") {
  FakeFactory f;
  f.delay = 300ms;
  auto pool = f.pool(0);
  const auto before = std::chrono::steady_clock::now();
  auto vm = pool->acquire(Deadline::after(50ms));
  REQUIRE_FALSE(vm);
  CHECK(vm.error().code == ETIMEDOUT);
  CHECK(std::chrono::steady_clock::now() - before < 250ms);
  // The start goes on and its VM waits, ready, for the next request.
  CHECK(eventually([&] { return pool->stats().ready == 1; }));
  auto next = pool->acquire(Deadline::after(10ms));
  REQUIRE(next);
  CHECK((*next)->id == 1);
}

TEST_CASE("a failed start goes to the waiting request; refills back off; the first error is told", "[unit][serve]") {
  FakeFactory f;
  f.fail_next = 1;
  auto pool = f.pool(1, 200ms);
  auto first = pool->wait_ready(Deadline::after(2000ms));
  REQUIRE_FALSE(first);
  CHECK_THAT(first.error().message, Contains("no kernel"));

  // The refill waits 200 ms after a failure, then succeeds.
  CHECK(eventually([&] { return pool->stats().ready == 1; }, 2000ms));
  CHECK(pool->stats().failed == 1);

  // A waiting request gets the failure of the start made for it at once
  // (no back-off for a request), and the next request its own attempt.
  FakeFactory g;
  g.fail_next = 1;
  auto on_demand = g.pool(0, 10'000ms);
  const auto before = std::chrono::steady_clock::now();
  auto failed = on_demand->acquire(Deadline::after(5000ms));
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error().message, Contains("no kernel"));
  auto next = on_demand->acquire(Deadline::after(5000ms));
  REQUIRE(next);
  CHECK(std::chrono::steady_clock::now() - before < 2000ms);
}

TEST_CASE("a ready VM that stopped meanwhile is dropped when taken", "[unit][serve]") {
  FakeFactory f;
  f.next_dead = true;
  auto pool = f.pool(1);
  REQUIRE(pool->wait_ready(Deadline::after(2000ms)) == true);
  auto vm = pool->acquire(Deadline::after(2000ms));
  REQUIRE(vm);
  CHECK((*vm)->alive);
  CHECK((*vm)->id == 2);
  CHECK(f.destroyed >= 1);
}

TEST_CASE("drain stops refills but serves waiting requests; stop destroys the ready VMs", "[unit][serve]") {
  FakeFactory f;
  auto pool = f.pool(2);
  CHECK(eventually([&] { return pool->stats().ready == 2; }));
  pool->drain();
  auto a = pool->acquire(Deadline::after(1000ms));
  auto b = pool->acquire(Deadline::after(1000ms));
  REQUIRE(a);
  REQUIRE(b);
  std::this_thread::sleep_for(30ms);
  CHECK(f.started == 2);  // no refill
  auto c = pool->acquire(Deadline::after(2000ms));  // started for it
  REQUIRE(c);
  CHECK(f.started == 3);

  FakeFactory g;
  auto other = g.pool(3);
  CHECK(eventually([&] { return other->stats().ready == 3; }));
  other->stop();
  CHECK(g.destroyed == 3);
  auto after = other->acquire(Deadline::after(10ms));
  REQUIRE_FALSE(after);
  CHECK_THAT(after.error().message, Contains("stopped"));
}

TEST_CASE("stop wakes a request that waits for a VM", "[unit][serve]") {
  FakeFactory f;
  f.delay = 200ms;
  auto pool = f.pool(0);
  auto waiting = std::async(std::launch::async, [&] { return pool->acquire(Deadline::never()); });
  std::this_thread::sleep_for(20ms);
  pool->stop();
  auto vm = waiting.get();
  REQUIRE_FALSE(vm);
  CHECK_THAT(vm.error().message, Contains("stopped"));
  CHECK(f.destroyed == f.started);
}

}  // namespace
}  // namespace husk::serve
