// JoiningThread: a std::thread that is joined when it goes out of scope, so
// no thread outlives the objects it uses (std::jthread without stop tokens,
// which the vCPU loop does not need: it stops through StopState).
// start() is how runtime code makes one: a thread the system will not give
// (EAGAIN under a pids or process limit) is an error value, not a
// std::system_error that would end the host program.
#pragma once

#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "runtime/common/result.h"

namespace husk {

class JoiningThread {
 public:
  JoiningThread() = default;
  template <typename F>
  [[nodiscard]] static Result<JoiningThread> start(const char* what, F&& f) {
    try {
      return JoiningThread(std::thread(std::forward<F>(f)));
    } catch (const std::system_error& e) {
      return fail(fmt::format("cannot start the {} thread: {}", what, e.what()));
    }
  }
  ~JoiningThread() { join(); }
  JoiningThread(JoiningThread&&) noexcept = default;
  JoiningThread& operator=(JoiningThread&& other) noexcept {
    join();
    thread_ = std::move(other.thread_);
    return *this;
  }
  JoiningThread(const JoiningThread&) = delete;
  JoiningThread& operator=(const JoiningThread&) = delete;

  void join() {
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::thread::native_handle_type native_handle() { return thread_.native_handle(); }
  [[nodiscard]] bool joinable() const { return thread_.joinable(); }

 private:
  explicit JoiningThread(std::thread thread) : thread_(std::move(thread)) {}
  std::thread thread_;
};

}  // namespace husk
