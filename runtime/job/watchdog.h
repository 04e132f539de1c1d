// Watchdog: calls `on_expiry` once from its own thread if not disarmed by
// `deadline`. The host's own clock on a run, for a guest that never
// answers: the runner stops the VM from here.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

#include "runtime/common/joining_thread.h"

namespace husk::job {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  Watchdog(Clock::time_point deadline, std::function<void()> on_expiry)
      : thread_([this, deadline, fire = std::move(on_expiry)] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_until(lock, deadline, [this] { return disarmed_; })) {
            fired_ = true;
            lock.unlock();
            fire();
          }
        }) {}
  ~Watchdog() { disarm(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Stops the clock; returns whether it had already fired.
  bool disarm() {
    {
      std::lock_guard lock(mutex_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  JoiningThread thread_;  // last: starts after the members it uses
};

}  // namespace husk::job
