// RawTerminal: puts a terminal in raw mode for an interactive guest console
// and restores it when destroyed (also on the error paths).
#pragma once

#include <termios.h>

namespace husk::cli {

class RawTerminal {
 public:
  // Does nothing when `fd` is not a terminal.
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

}  // namespace husk::cli
