#include "cli/terminal.h"

#include <unistd.h>

namespace husk::cli {

RawTerminal::RawTerminal(int fd) : fd_(fd) {
  if (::isatty(fd) == 0 || ::tcgetattr(fd, &saved_) != 0) return;
  termios raw = saved_;
  // Keep ISIG so Ctrl-C still stops husk (it arrives as SIGINT); everything
  // else goes to the guest byte by byte.
  raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
  raw.c_iflag &= ~static_cast<tcflag_t>(ICRNL | IXON);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  active_ = ::tcsetattr(fd, TCSANOW, &raw) == 0;
}

RawTerminal::~RawTerminal() {
  if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
}

}  // namespace husk::cli
