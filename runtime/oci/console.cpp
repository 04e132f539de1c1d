#include "runtime/oci/console.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "runtime/oci/control.h"

namespace husk::oci {

Result<Console> open_console(uint16_t rows, uint16_t cols) {
  Console c;
  c.master = UniqueFd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!c.master) return fail_errno("posix_openpt");
  if (::grantpt(c.master.get()) != 0 || ::unlockpt(c.master.get()) != 0) return fail_errno("unlockpt");
  char name[64] = {};
  if (::ptsname_r(c.master.get(), name, sizeof(name)) != 0) return fail_errno("ptsname");
  c.name = name;
  c.slave = UniqueFd(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!c.slave) return fail_errno(std::string("open ") + name);
  termios t{};
  if (::tcgetattr(c.slave.get(), &t) != 0) return fail_errno("tcgetattr");
  ::cfmakeraw(&t);
  if (::tcsetattr(c.slave.get(), TCSANOW, &t) != 0) return fail_errno("tcsetattr");
  const winsize ws{rows != 0 ? rows : uint16_t{24}, cols != 0 ? cols : uint16_t{80}, 0, 0};
  if (::ioctl(c.master.get(), TIOCSWINSZ, &ws) != 0) return fail_errno("TIOCSWINSZ");
  return c;
}

Result<void> send_console(const std::string& socket_path, int master, const std::string& name) {
  HUSK_TRY_ASSIGN(const UnixAddress where, unix_address(socket_path));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (where.path.size() >= sizeof(addr.sun_path)) return fail("console socket path too long: " + socket_path);
  std::memcpy(addr.sun_path, where.path.c_str(), where.path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("console socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail_errno("connect to the console socket " + socket_path);
  }
  std::string data = name;
  iovec iov{data.data(), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &master, sizeof(int));
  if (::sendmsg(fd.get(), &msg, MSG_NOSIGNAL) < 0) return fail_errno("send the terminal to " + socket_path);
  return {};
}

TermSize terminal_size(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return {};
  return TermSize{ws.ws_row, ws.ws_col};
}

}  // namespace husk::oci
