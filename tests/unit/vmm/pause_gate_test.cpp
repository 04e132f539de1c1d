// PauseGate with real threads: they park while it is closed, the control
// side sees them all parked, and they go on when it opens or the VM stops.
#include <atomic>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/vmm/pause_gate.h"

using namespace husk;
using namespace husk::vmm;
using namespace std::chrono_literals;

namespace {

// Threads that count their turns and park at the gate between turns.
struct Workers {
  Workers(PauseGate& gate, StopState& stop, int n) {
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([this, &gate, &stop] {
        while (!stop.stopped() && !quit.load()) {
          gate.park(stop);
          turns.fetch_add(1);
          std::this_thread::sleep_for(1ms);
        }
      });
    }
  }
  ~Workers() {
    quit.store(true);
    for (auto& t : threads) t.join();
  }
  std::atomic<bool> quit{false};
  std::atomic<uint64_t> turns{0};
  std::vector<std::thread> threads;
};

}  // namespace

TEST_CASE("pause gate: threads park while it is closed and go on when it opens", "[unit]") {
  auto stop = StopState::create();
  REQUIRE(stop);
  PauseGate gate;
  Workers w(gate, **stop, 3);
  gate.close();
  REQUIRE(gate.wait_parked(3, 5s, **stop));
  const uint64_t parked_at = w.turns.load();
  std::this_thread::sleep_for(30ms);
  CHECK(w.turns.load() == parked_at);  // nobody ran while parked
  gate.open();
  std::this_thread::sleep_for(30ms);
  CHECK(w.turns.load() > parked_at);
}

TEST_CASE("pause gate: a wait for more threads than park times out; a stop frees the parked", "[unit]") {
  auto stop = StopState::create();
  REQUIRE(stop);
  PauseGate gate;
  Workers w(gate, **stop, 2);
  gate.close();
  CHECK_FALSE(gate.wait_parked(3, 100ms, **stop));
  REQUIRE(gate.wait_parked(2, 5s, **stop));
  (*stop)->request(VmExit{ExitReason::kHostStop, "test"});
  // The workers leave the gate, closed still, and end; a wait for parked
  // threads of a stopped VM gives up at once.
  const auto start = std::chrono::steady_clock::now();
  for (auto& t : w.threads) t.join();
  w.threads.clear();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK_FALSE(gate.wait_parked(1, 5s, **stop));
}
