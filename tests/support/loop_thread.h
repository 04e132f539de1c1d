// LoopThread: an EventLoop running on a thread of its own (a device's host
// side: listeners, sockets, the transport's work queue), stopped and joined
// on destruction, with the CPU time its thread used so far.
#pragma once

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ctime>
#include <thread>

#include "runtime/common/event_loop.h"
#include "runtime/common/unique_fd.h"

namespace husk::test {

class LoopThread {
 public:
  explicit LoopThread(EventLoop& loop)
      : stop_(::eventfd(0, EFD_CLOEXEC)), thread_([&loop, this] { (void)loop.run(stop_.get()); }) {}
  ~LoopThread() {
    const uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;

  // CPU time the loop's thread has used so far, in ms.
  double cpu_ms() {
    clockid_t clock{};
    if (::pthread_getcpuclockid(thread_.native_handle(), &clock) != 0) return -1;
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
  }

 private:
  UniqueFd stop_;
  std::thread thread_;
};

}  // namespace husk::test
