// EventLoop: the device event-loop thread's epoll set. Devices register file
// descriptors (host input, later ioeventfds, disk and socket fds) with a
// handler; the loop runs until its stop fd becomes readable.
// Handlers run on the loop thread only, one at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"

namespace husk::vmm {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  static Result<EventLoop> create();

  // Registers `fd` (not owned) for `events` (EPOLLIN, ...).
  [[nodiscard]] Result<void> add(int fd, uint32_t events, Handler handler);
  void remove(int fd);

  // Dispatches events until `stop_fd` is readable. Returns an error only if
  // epoll itself fails.
  [[nodiscard]] Result<void> run(int stop_fd);

 private:
  explicit EventLoop(UniqueFd epoll) : epoll_(std::move(epoll)) {}
  UniqueFd epoll_;
  std::map<int, Handler> handlers_;
};

}  // namespace husk::vmm
