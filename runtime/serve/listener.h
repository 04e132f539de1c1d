// Listener: the listening socket of `husk serve`, made here rather than by
// the HTTP library so that every failure names its cause ("bind
// 127.0.0.1:8080: Address already in use"), a Unix socket left by a dead
// server is replaced while a live one's is refused, and port 0 tells the
// port the kernel chose. The HTTP library (http_front.h) accepts on the
// descriptor. A Unix socket's file is removed when the Listener goes,
// unless something else has replaced it meanwhile.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "runtime/common/result.h"
#include "runtime/common/unique_fd.h"
#include "runtime/serve/listen_address.h"

namespace husk::serve {

class Listener {
 public:
  // Bound and listening (close-on-exec), with room for `backlog` waiting
  // connections.
  [[nodiscard]] static Result<Listener> open(const ListenAddress& address, int backlog = 128);
  ~Listener();
  Listener(Listener&& other) noexcept;
  Listener& operator=(Listener&&) = delete;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  [[nodiscard]] int fd() const { return fd_.get(); }
  // Hands the descriptor over (the HTTP server closes it when it stops);
  // the socket's file is still removed by this object.
  [[nodiscard]] UniqueFd take_fd() { return std::move(fd_); }
  [[nodiscard]] const ListenAddress& address() const { return address_; }
  // The TCP port listened on (the chosen one for port 0); 0 for Unix.
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] std::string description() const { return describe(address_, port_); }
  [[nodiscard]] std::string url() const { return url_of(address_, port_); }

 private:
  Listener(ListenAddress address, UniqueFd fd) : address_(std::move(address)), fd_(std::move(fd)) {}

  ListenAddress address_;
  UniqueFd fd_;
  uint16_t port_ = 0;
  // The Unix socket's file as bound (st_dev, st_ino): removed only if
  // it is still that one.
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  bool remove_socket_ = false;
};

}  // namespace husk::serve
