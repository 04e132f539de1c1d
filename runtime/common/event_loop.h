// EventLoop: the device event-loop thread's epoll set. Devices register file
// descriptors (host input, later ioeventfds, disk and socket fds) with a
// handler; the loop runs until its stop fd becomes readable.
// Handlers run on the loop thread only, one at a time. add() and remove()
// may be called from any thread (a device activated by a vCPU registers its
// sockets), including from inside a handler.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  static Result<EventLoop> create();

  // Registers `fd` (not owned) for `events` (EPOLLIN, ...).
  [[nodiscard]] Result<void> add(int fd, uint32_t events, Handler handler);
  void remove(int fd);
  // Changes the events `fd` is watched for.
  [[nodiscard]] Result<void> modify(int fd, uint32_t events);

  // Dispatches events until `stop_fd` is readable. Returns an error only if
  // epoll itself fails.
  [[nodiscard]] Result<void> run(int stop_fd);

 private:
  explicit EventLoop(UniqueFd epoll)
      : epoll_(std::move(epoll)), mutex_(std::make_unique<std::mutex>()) {}
  UniqueFd epoll_;
  std::unique_ptr<std::mutex> mutex_;  // guards handlers_ (unique_ptr: movable)
  std::map<int, Handler> handlers_;
};

}  // namespace husk
