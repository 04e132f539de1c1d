#include "runtime/vmm/pause_gate.h"

namespace husk::vmm {

namespace {
// A stop does not notify the gate: parked threads look at it this often.
constexpr auto kStopPoll = std::chrono::milliseconds(10);
}  // namespace

void PauseGate::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
}

bool PauseGate::closed() const {
  std::lock_guard lock(mutex_);
  return closed_;
}

bool PauseGate::wait_parked(size_t count, std::chrono::milliseconds timeout, const StopState& stop) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mutex_);
  while (parked_ < count) {
    if (stop.stopped() || std::chrono::steady_clock::now() >= until) return false;
    cv_.wait_for(lock, kStopPoll);
  }
  return true;
}

void PauseGate::open() {
  std::lock_guard lock(mutex_);
  closed_ = false;
  cv_.notify_all();
}

void PauseGate::park(const StopState& stop) {
  std::unique_lock lock(mutex_);
  if (!closed_) return;
  ++parked_;
  cv_.notify_all();
  while (closed_ && !stop.stopped()) cv_.wait_for(lock, kStopPoll);
  --parked_;
}

}  // namespace husk::vmm
