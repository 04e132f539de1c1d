// The container's host terminal (runtime/oci/console.h): a real pty pair
// in raw mode, its size, and its master sent over a --console-socket and
// received with SCM_RIGHTS the way containerd's shim and conmon receive it.
#include "runtime/oci/console.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/oci/control.h"
#include "tests/support/temp_dir.h"

namespace husk::oci {
namespace {

namespace fs = std::filesystem;

void write_fully(int fd, const std::string& data) {
  REQUIRE(::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
}

// Reads until `want` bytes came or nothing more comes for a while.
std::string read_some(int fd, size_t want, int timeout_ms = 2000) {
  std::string out;
  while (out.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) break;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool readable_within(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A listening Unix stream socket at `path`, as a --console-socket is.
UniqueFd listen_stream(const std::string& path) {
  auto where = unix_address(path);
  REQUIRE(where);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(where->path.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, where->path.c_str(), where->path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(::listen(fd.get(), 1) == 0);
  return fd;
}

struct Received {
  UniqueFd fd;
  std::string data;
};

// Accepts one connection and receives one message with one descriptor.
Received receive_console(int listener) {
  REQUIRE(readable_within(listener, 5000));
  UniqueFd conn(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(conn);
  char data[256] = {};
  iovec iov{data, sizeof(data)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(conn.get(), &msg, MSG_CMSG_CLOEXEC);
  REQUIRE(n > 0);
  CHECK((msg.msg_flags & MSG_CTRUNC) == 0);
  Received out;
  out.data.assign(data, static_cast<size_t>(n));
  const cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  REQUIRE(cm != nullptr);
  REQUIRE(cm->cmsg_level == SOL_SOCKET);
  REQUIRE(cm->cmsg_type == SCM_RIGHTS);
  REQUIRE(cm->cmsg_len == CMSG_LEN(sizeof(int)));
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(cm), sizeof(int));
  out.fd = UniqueFd(fd);
  return out;
}

TEST_CASE("console: a raw pty pair passes bytes through untouched", "[oci][console]") {
  auto console = open_console(0, 0);
  REQUIRE(console);
  REQUIRE(console->master);
  REQUIRE(console->slave);
  CHECK_THAT(console->name, Catch::StartsWith("/dev/pts/"));
  CHECK(::isatty(console->slave.get()) == 1);
  char name[64] = {};
  REQUIRE(::ptsname_r(console->master.get(), name, sizeof(name)) == 0);
  CHECK(console->name == name);

  // Output: no "\n" to "\r\n" (OPOST/ONLCR off).
  const std::string out = "line one\nline two\n\tend\x7f";
  write_fully(console->slave.get(), out);
  CHECK(read_some(console->master.get(), out.size()) == out);

  // Input: no "\r" to "\n" (ICRNL off), ^C and ^D are bytes (ISIG and
  // ICANON off), delivered without waiting for a line end.
  const std::string in = "ab\r\x03\x04x";
  write_fully(console->master.get(), in);
  CHECK(read_some(console->slave.get(), in.size()) == in);
  // And no echo back to the master.
  CHECK_FALSE(readable_within(console->master.get(), 200));
}

TEST_CASE("console: the size set is what the slave reports", "[oci][console]") {
  auto sized = open_console(50, 132);
  REQUIRE(sized);
  const TermSize s = terminal_size(sized->slave.get());
  CHECK(s.rows == 50);
  CHECK(s.cols == 132);
  const TermSize m = terminal_size(sized->master.get());
  CHECK(m.rows == 50);
  CHECK(m.cols == 132);

  auto deflt = open_console(0, 0);
  REQUIRE(deflt);
  const TermSize d = terminal_size(deflt->slave.get());
  CHECK(d.rows == 24);
  CHECK(d.cols == 80);

  // Not a terminal: {0, 0}.
  test::TempDir tmp;
  UniqueFd file(::open(tmp.file("plain").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  REQUIRE(file);
  const TermSize none = terminal_size(file.get());
  CHECK(none.rows == 0);
  CHECK(none.cols == 0);
  CHECK(terminal_size(-1).rows == 0);
}

TEST_CASE("console: send_console delivers a usable master and its name", "[oci][console]") {
  test::TempDir tmp;
  std::string socket_path = tmp.file("console.sock");
  SECTION("a short path") {}
  SECTION("a path longer than sun_path") {
    const fs::path dir = tmp.path() / std::string(120, 'c');
    REQUIRE(fs::create_directories(dir));
    socket_path = (dir / "console.sock").string();
    REQUIRE(socket_path.size() >= sizeof(sockaddr_un::sun_path));
  }
  UniqueFd listener = listen_stream(socket_path);

  auto console = open_console(30, 100);
  REQUIRE(console);
  // The shim connects back after runc returns; the connection waits in the
  // backlog meanwhile, so sending before accepting is how it goes.
  REQUIRE(send_console(socket_path, console->master.get(), console->name));
  Received got = receive_console(listener.get());
  REQUIRE(got.fd);
  CHECK(got.data == console->name);

  // The received descriptor is the same terminal's master: it has the
  // size, and bytes flow both ways through it.
  char name[64] = {};
  REQUIRE(::ptsname_r(got.fd.get(), name, sizeof(name)) == 0);
  CHECK(console->name == name);
  const TermSize s = terminal_size(got.fd.get());
  CHECK(s.rows == 30);
  CHECK(s.cols == 100);

  // The keeper keeps only the slave: the master it sent lives on in the
  // receiver alone.
  console->master.reset();
  write_fully(console->slave.get(), "hello\n");
  CHECK(read_some(got.fd.get(), 6) == "hello\n");
  write_fully(got.fd.get(), "typed\r");
  CHECK(read_some(console->slave.get(), 6) == "typed\r");
}

TEST_CASE("console: send_console with nobody listening fails", "[oci][console]") {
  test::TempDir tmp;
  auto console = open_console(0, 0);
  REQUIRE(console);
  auto r = send_console(tmp.file("absent.sock"), console->master.get(), console->name);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == ENOENT);
  CHECK_THAT(r.error().message, Catch::Contains("absent.sock"));
}

}  // namespace
}  // namespace husk::oci
