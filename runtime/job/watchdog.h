// Watchdog: calls `on_expiry` once from its own thread if not disarmed by
// `deadline`. The host's own clock on a run, for a guest that never
// answers: the runner stops the VM from here.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "runtime/common/joining_thread.h"
#include "runtime/common/thread.h"

namespace husk::job {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  // Fails only if the system gives no thread for it.
  [[nodiscard]] static Result<std::unique_ptr<Watchdog>> start(Clock::time_point deadline,
                                                               std::function<void()> on_expiry) {
    std::unique_ptr<Watchdog> w(new Watchdog());
    Watchdog* self = w.get();
    HUSK_TRY_ASSIGN(w->thread_, spawn_thread(seccomp::ThreadClass::kWatchdog, "husk-watchdog", [self, deadline, fire = std::move(on_expiry)] {
      std::unique_lock lock(self->mutex_);
      if (!self->cv_.wait_until(lock, deadline, [self] { return self->disarmed_; })) {
        self->fired_ = true;
        lock.unlock();
        fire();
      }
    }));
    return w;
  }
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
  Watchdog() = default;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;
  JoiningThread thread_;
};

}  // namespace husk::job
