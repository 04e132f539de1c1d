#include "runtime/devices/legacy/console_sink.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

using husk::devices::ConsoleSink;

namespace {
void put(ConsoleSink& sink, const std::string& s) {
  sink.write(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

TEST_CASE("the console sink passes bytes through and spots a panic line", "[unit]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ConsoleSink sink(fds[1]);
  put(sink, "[    0.1] booting\r\n");
  CHECK_FALSE(sink.panic_line());
  put(sink, "[    0.2] Kernel panic - not syncing: Attempted to kill in");
  CHECK_FALSE(sink.panic_line());  // only whole lines count
  put(sink, "it! exitcode=0x00000100\r\n[    0.3] Kernel panic - not syncing: second\n");
  REQUIRE(sink.panic_line());
  CHECK(*sink.panic_line() ==
        "[    0.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100");
  char buf[512];
  const ssize_t n = ::read(fds[0], buf, sizeof(buf));
  CHECK(std::string(buf, static_cast<size_t>(n)).find("booting\r\n") != std::string::npos);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("the console sink survives a closed reader", "[unit]") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);
  signal(SIGPIPE, SIG_IGN);
  ConsoleSink sink(fds[1]);
  put(sink, "nobody reads this\n");
  CHECK_FALSE(sink.panic_line());
  ::close(fds[1]);
}
