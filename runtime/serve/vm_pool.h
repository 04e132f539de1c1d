// VmPool: the VMs `husk serve` keeps started ahead of its requests
// (docs/serve.md, "The pool"). One thread, the pool's own, makes every VM:
// starting a VM forks the VMM process, and a fork from a threaded program
// is safe only in ways that are easiest to keep when a single, known
// thread does it (serve.cpp says how the rest is contained). The thread
// keeps `size` VMs ready; a request takes a ready one, or, when there is
// none, waits (by its deadline) for the next one the thread makes, before
// any refill. Every VM goes to one request and is never given back.
//
// A start that fails is handed to the request that waits longest, if one
// waits; refills then wait, doubling from retry_first to retry_max, while
// a waiting request still gets an attempt at once. A ready VM that has
// stopped meanwhile (its guest died) is dropped when taken.
//
// Templated on the VM type so that tests can count, fail and time the
// starts of a fake one (as Hedron templates its page tables on memory).
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/deadline.h"
#include "runtime/common/joining_thread.h"
#include "runtime/common/result.h"

namespace husk::serve {

template <typename Vm>
class VmPool {
 public:
  using Clock = std::chrono::steady_clock;
  // Starts one VM; called on the pool's thread only.
  using Factory = std::function<Result<std::unique_ptr<Vm>>()>;
  // Whether a ready VM can still take a request.
  using Usable = std::function<bool(Vm&)>;
  using Log = std::function<void(std::string_view)>;

  struct Options {
    size_t size = 2;
    std::chrono::milliseconds retry_first{1000};
    std::chrono::milliseconds retry_max{30'000};
  };

  struct Stats {
    size_t ready = 0;
    size_t waiting = 0;     // requests waiting for a VM
    size_t started = 0;     // VMs started since the pool began
    size_t failed = 0;      // starts that failed
    bool starting = false;  // the thread is starting one now
  };

  [[nodiscard]] static Result<std::unique_ptr<VmPool>> start(Options options, Factory factory, Usable usable,
                                                             Log log) {
    std::unique_ptr<VmPool> pool(new VmPool(options, std::move(factory), std::move(usable), std::move(log)));
    VmPool* self = pool.get();
    HUSK_TRY_ASSIGN(pool->thread_, JoiningThread::start("VM pool", [self] {
                      ::pthread_setname_np(::pthread_self(), "husk-pool");
                      self->run();
                    }));
    return pool;
  }

  ~VmPool() { stop(); }
  VmPool(const VmPool&) = delete;
  VmPool& operator=(const VmPool&) = delete;

  // A VM for one request, by `deadline` (an error with ETIMEDOUT past it),
  // or the error of the start made for this request.
  [[nodiscard]] Result<std::unique_ptr<Vm>> acquire(Deadline deadline) {
    for (;;) {
      std::unique_ptr<Vm> vm;
      {
        std::unique_lock lock(mutex_);
        if (stopped_) return fail("the VM pool has stopped");
        if (!ready_.empty()) {
          vm = std::move(ready_.front());
          ready_.pop_front();
          cv_.notify_all();  // a refill
        } else {
          auto waiter = std::make_shared<Waiter>();
          waiters_.push_back(waiter);
          cv_.notify_all();
          const auto done = [&] { return waiter->done || stopped_; };
          if (deadline.is_never()) {
            cv_.wait(lock, done);
          } else {
            cv_.wait_until(lock, deadline.time(), done);
          }
          if (!waiter->done) {
            std::erase(waiters_, waiter);
            if (stopped_) return fail("the VM pool has stopped");
            return Unexpected(Error{ETIMEDOUT, "no VM was ready in time"});
          }
          if (waiter->error) return Unexpected(*waiter->error);
          vm = std::move(waiter->vm);
        }
      }
      if (usable_(*vm)) return vm;
      say("a ready VM had stopped (its guest ended); dropped, taking another");
      vm.reset();
    }
  }

  // Whether the first VM is ready: true once one is, false while none is
  // by `deadline`; the error of a start that failed before any was ready.
  [[nodiscard]] Result<bool> wait_ready(Deadline deadline) {
    std::unique_lock lock(mutex_);
    const auto done = [&] { return !ready_.empty() || first_error_.has_value() || stopped_; };
    if (deadline.is_never()) {
      cv_.wait(lock, done);
    } else {
      cv_.wait_until(lock, deadline.time(), done);
    }
    if (!ready_.empty()) return true;
    if (first_error_) return Unexpected(*first_error_);
    return false;
  }

  // No more refills; requests that wait still get their VM (shutdown: the
  // requests in flight finish).
  void drain() {
    std::lock_guard lock(mutex_);
    draining_ = true;
    cv_.notify_all();
  }

  // Ends the thread once its current start (if any) is done, destroys the
  // ready VMs; waiting requests get an error. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  [[nodiscard]] Stats stats() const {
    std::lock_guard lock(mutex_);
    return Stats{ready_.size(), waiters_.size(), started_, failed_, starting_};
  }

 private:
  struct Waiter {
    bool done = false;
    std::unique_ptr<Vm> vm;
    std::optional<Error> error;
  };

  VmPool(Options options, Factory factory, Usable usable, Log log)
      : options_(options), factory_(std::move(factory)), usable_(std::move(usable)), log_(std::move(log)) {}

  void say(std::string_view line) {
    if (log_) log_(line);
  }

  std::chrono::milliseconds backoff() const {
    auto wait = options_.retry_first;
    for (size_t i = 1; i < failures_in_row_ && wait < options_.retry_max; ++i) wait *= 2;
    return std::min(wait, options_.retry_max);
  }

  void run() {
    std::unique_lock lock(mutex_);
    while (!stopped_) {
      const bool for_request = !waiters_.empty();  // then no VM is ready
      const bool for_refill = !draining_ && ready_.size() < options_.size;
      if (!for_request && !for_refill) {
        cv_.wait(lock);
        continue;
      }
      if (!for_request && Clock::now() < retry_at_) {
        cv_.wait_until(lock, retry_at_);
        continue;
      }
      starting_ = true;
      lock.unlock();
      Result<std::unique_ptr<Vm>> vm = factory_();
      std::string message;
      lock.lock();
      starting_ = false;
      if (vm) {
        ++started_;
        failures_in_row_ = 0;
        retry_at_ = {};
        if (!waiters_.empty()) {
          hand(waiters_.front())->vm = std::move(*vm);
        } else {
          ready_.push_back(std::move(*vm));
        }
      } else {
        ++failed_;
        ++failures_in_row_;
        if (ready_.empty() && started_ == 0 && !first_error_) first_error_ = vm.error();
        retry_at_ = Clock::now() + backoff();
        const bool handed = !waiters_.empty();
        if (handed) hand(waiters_.front())->error = vm.error();
        message = fmt::format("a VM did not start: {}{}", vm.error().message,
                              handed ? " (the request waiting for it gets 502)"
                                     : fmt::format(" (next try in {} ms)", backoff().count()));
      }
      cv_.notify_all();
      if (!message.empty()) {
        lock.unlock();
        say(message);
        lock.lock();
      }
    }
    // The ready VMs go with this thread: destroyed here, outside the lock.
    std::deque<std::unique_ptr<Vm>> doomed = std::move(ready_);
    ready_.clear();
    lock.unlock();
    doomed.clear();
  }

  // Takes the longest-waiting request off the queue, marked served.
  std::shared_ptr<Waiter> hand(std::shared_ptr<Waiter> waiter) {
    waiters_.pop_front();
    waiter->done = true;
    return waiter;
  }

  const Options options_;
  const Factory factory_;
  const Usable usable_;
  const Log log_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Vm>> ready_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
  bool draining_ = false;
  bool stopped_ = false;
  bool starting_ = false;
  size_t started_ = 0;
  size_t failed_ = 0;
  size_t failures_in_row_ = 0;
  Clock::time_point retry_at_{};
  std::optional<Error> first_error_;
  JoiningThread thread_;  // last: joined before the members it uses go
};

}  // namespace husk::serve
