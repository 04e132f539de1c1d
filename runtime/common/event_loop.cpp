#include "runtime/common/event_loop.h"

#include <sys/epoll.h>

#include <array>

#include <fmt/format.h>

namespace husk {

Result<EventLoop> EventLoop::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return fail_errno("epoll_create1");
  return EventLoop(std::move(epoll));
}

Result<void> EventLoop::add(int fd, uint32_t events, Handler handler) {
  std::lock_guard lock(*mutex_);
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    return fail_errno(fmt::format("epoll_ctl add fd {}", fd));
  }
  handlers_[fd] = std::move(handler);
  return {};
}

void EventLoop::remove(int fd) {
  std::lock_guard lock(*mutex_);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

Result<void> EventLoop::modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) {
    return fail_errno(fmt::format("epoll_ctl modify fd {}", fd));
  }
  return {};
}

Result<void> EventLoop::run(int stop_fd) {
  epoll_event stop{};
  stop.events = EPOLLIN;
  stop.data.fd = stop_fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, stop_fd, &stop) < 0) {
    return fail_errno("epoll_ctl add stop fd");
  }
  std::array<epoll_event, 32> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<size_t>(i)].data.fd;
      if (fd == stop_fd) return {};
      Handler handler;
      {
        std::lock_guard lock(*mutex_);
        auto it = handlers_.find(fd);
        // A handler may have removed itself (or another fd) earlier in this
        // batch; such events are stale.
        if (it == handlers_.end()) continue;
        handler = it->second;
      }
      handler(events[static_cast<size_t>(i)].events);
    }
  }
}

}  // namespace husk
