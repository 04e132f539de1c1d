// spawn_thread: the one way husk starts a thread (design.md, Threads; Cloud
// Hypervisor's spawn_virtio_thread). It names the thread's class and
// installs that class's seccomp filter (seccomp/filter.h) inside the new
// thread before `f` runs, so a thread never touches guest-controlled data
// unfiltered. The filter is compiled by the caller, the thread only
// installs it; spawn_thread returns once the filter is in place, so a
// failure to install (or to create the thread at all) is an error value
// here, and the thread then never runs `f`.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "runtime/common/joining_thread.h"
#include "runtime/common/result.h"
#include "seccomp/filter.h"
#include "seccomp/thread_class.h"

namespace husk {

namespace detail {
// The new thread's word on its filter, for the thread that waits for it.
struct ThreadStart {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<Result<void>> entered;
};
}  // namespace detail

// `name` is the thread's name as ps and the seccomp report show it (at
// most 15 characters are kept, e.g. "husk-vcpu0").
template <typename F>
[[nodiscard]] Result<JoiningThread> spawn_thread(seccomp::ThreadClass cls, const std::string& name, F&& f) {
  HUSK_TRY(seccomp::prepare({cls}));
  auto start = std::make_shared<detail::ThreadStart>();
  auto thread = JoiningThread::start(name.c_str(), [cls, name, start, body = std::forward<F>(f)]() mutable {
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    Result<void> entered = seccomp::enter(cls);
    const bool ok = entered.has_value();
    {
      std::lock_guard lock(start->mutex);
      start->entered = std::move(entered);
    }
    start->cv.notify_one();
    if (ok) body();
  });
  if (!thread) return Unexpected(thread.error());
  std::unique_lock lock(start->mutex);
  start->cv.wait(lock, [&] { return start->entered.has_value(); });
  if (!*start->entered) {
    lock.unlock();
    thread->join();
    return fail(fmt::format("the {} thread {} cannot enter its seccomp filter: {}", seccomp::class_name(cls), name,
                            start->entered->error().message));
  }
  return std::move(*thread);
}

}  // namespace husk
