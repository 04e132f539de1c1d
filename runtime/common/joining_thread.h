// JoiningThread: a std::thread that is joined when it goes out of scope, so
// no thread outlives the objects it uses (std::jthread without stop tokens,
// which the vCPU loop does not need: it stops through StopState).
#pragma once

#include <thread>
#include <utility>

namespace husk {

class JoiningThread {
 public:
  JoiningThread() = default;
  template <typename F>
  explicit JoiningThread(F&& f) : thread_(std::forward<F>(f)) {}
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
  std::thread thread_;
};

}  // namespace husk
