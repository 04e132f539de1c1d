#include "runtime/devices/legacy/console_sink.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

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

namespace {
// What the reader end of a non-blocking pipe holds right now.
std::string drain(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}
}  // namespace

TEST_CASE("the console sink writes whole lines, and a partial one on flush", "[unit]") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_NONBLOCK) == 0);
  {
    ConsoleSink sink(fds[1]);
    for (char c : std::string("/ # ")) put(sink, std::string(1, c));  // the guest writes a byte at a time
    CHECK(drain(fds[0]).empty());  // buffered: not one write per byte
    sink.flush();
    CHECK(drain(fds[0]) == "/ # ");
    put(sink, "ls\r");
    put(sink, "\n");
    CHECK(drain(fds[0]) == "ls\r\n");  // a newline writes the line at once
    put(sink, std::string(5000, 'x'));  // a long line goes out in pieces
    CHECK(drain(fds[0]).size() == 5000);
    put(sink, "tail");
  }
  CHECK(drain(fds[0]) == "tail");  // and the rest when the sink goes
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("the console sink stops at its limit with one marker line, and still sees a panic", "[unit]") {
  int fds[2];
  REQUIRE(::pipe2(fds, O_NONBLOCK) == 0);
  ConsoleSink sink(fds[1], husk::UniqueFd(), 100);
  put(sink, std::string(60, 'a') + "\n");
  put(sink, std::string(60, 'b') + "\n");  // crosses 100 bytes
  put(sink, std::string(1000, 'c') + "\n");
  put(sink, "Kernel panic - not syncing: late\n");
  sink.flush();
  const std::string out = drain(fds[0]);
  CHECK(out.rfind(std::string(60, 'a') + "\n" + std::string(39, 'b') + "\n[husk: the guest console passed 100 bytes", 0) == 0);
  CHECK(out.find("ccc") == std::string::npos);
  CHECK(out.size() < 200);
  REQUIRE(sink.panic_line());
  CHECK(*sink.panic_line() == "Kernel panic - not syncing: late");
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_CASE("a console nobody reads holds the guest's writes only until the VM stops", "[unit]") {
  // Once Ctrl-C could not stop husk: the vCPU sat in write() on a full pipe.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  {
    ConsoleSink sink(fds[1]);
    std::atomic<bool> done{false};
    std::thread vcpu([&] {
      const std::string line(99, 'x');
      for (int i = 0; i < 10000; ++i) put(sink, line + "\n");  // ~1 MiB
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK_FALSE(done);  // backpressure: the pipe (64 KiB) and the backlog are full
    sink.abandon();
    for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(done);
    if (!done) {
      // Unblock the writer so the test itself cannot hang.
      ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
      char buf[65536];
      while (!done) (void)!::read(fds[0], buf, sizeof buf);
    }
    vcpu.join();
    const auto before = std::chrono::steady_clock::now();
    sink.flush();  // bounded: at most its 1 s wait
    CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(3));
  }
  ::close(fds[0]);
  ::close(fds[1]);
}
