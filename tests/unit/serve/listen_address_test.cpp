// Tests for runtime/serve/listen_address.h and listener.h: --listen's
// forms, the refusal of anything but a Unix socket or loopback, and the
// sockets made from them (a stale Unix socket replaced, a live one refused,
// port 0 told).
#include "runtime/serve/listen_address.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/serve/listener.h"
#include "tests/support/temp_dir.h"

namespace husk::serve {
namespace {

using Catch::Matchers::Contains;
using Kind = ListenAddress::Kind;

std::string error_of(std::string_view text) {
  auto a = parse_listen_address(text);
  REQUIRE_FALSE(a);
  return a.error().message;
}

TEST_CASE("serve: --listen takes unix:PATH and any path with a slash as a Unix socket", "[unit][serve]") {
  auto a = parse_listen_address("unix:/run/husk/fn.sock");
  REQUIRE(a);
  CHECK(a->kind == Kind::kUnix);
  CHECK(a->path == "/run/husk/fn.sock");
  auto relative = parse_listen_address("./fn.sock");
  REQUIRE(relative);
  CHECK(relative->kind == Kind::kUnix);
  CHECK(relative->path == "./fn.sock");
  auto prefixed_relative = parse_listen_address("unix:fn.sock");
  REQUIRE(prefixed_relative);
  CHECK(prefixed_relative->path == "fn.sock");
  CHECK(describe(*a, 0) == "unix:/run/husk/fn.sock");
  CHECK(url_of(*a, 0) == "http://localhost/");

  CHECK_THAT(error_of("unix:"), Contains("path is empty"));
  CHECK_THAT(error_of("/" + std::string(sizeof(sockaddr_un{}.sun_path), 'x')), Contains("at most 107 bytes"));
}

TEST_CASE("serve: --listen takes loopback TCP addresses, port 0 included", "[unit][serve]") {
  auto v4 = parse_listen_address("127.0.0.1:8080");
  REQUIRE(v4);
  CHECK(v4->kind == Kind::kTcp);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8080);
  CHECK_FALSE(v4->ipv6);
  CHECK(describe(*v4, 8080) == "127.0.0.1:8080");
  CHECK(url_of(*v4, 8080) == "http://127.0.0.1:8080/");

  auto other_loopback = parse_listen_address("127.1.2.3:1");
  REQUIRE(other_loopback);
  CHECK(other_loopback->host == "127.1.2.3");

  auto name = parse_listen_address("localhost:0");
  REQUIRE(name);
  CHECK(name->host == "127.0.0.1");
  CHECK(name->port == 0);

  auto v6 = parse_listen_address("[::1]:65535");
  REQUIRE(v6);
  CHECK(v6->ipv6);
  CHECK(v6->host == "::1");
  CHECK(v6->port == 65535);
  CHECK(describe(*v6, 9) == "[::1]:9");
}

TEST_CASE("serve: --listen refuses addresses other machines could reach, and bad ports", "[unit][serve]") {
  for (const char* open : {"0.0.0.0:8080", "192.168.1.2:80", "10.0.0.1:80", "[::]:8080", "[2001:db8::1]:80"}) {
    INFO(open);
    const std::string message = error_of(open);
    CHECK_THAT(message, Contains("is not loopback"));
    CHECK_THAT(message, Contains("proxy"));
  }
  CHECK_THAT(error_of("example.com:80"), Contains("not a numeric loopback address"));
  CHECK_THAT(error_of(":8080"), Contains("not a numeric loopback address"));
  CHECK_THAT(error_of("127.0.0.1:65536"), Contains("0 to 65535"));
  CHECK_THAT(error_of("127.0.0.1:"), Contains("0 to 65535"));
  CHECK_THAT(error_of("127.0.0.1:80x"), Contains("0 to 65535"));
  CHECK_THAT(error_of("8080"), Contains("expected unix:PATH"));
  CHECK_THAT(error_of("::1:8080"), Contains("in brackets"));
  CHECK_THAT(error_of("[::1]8080"), Contains("[ADDRESS]:PORT"));
  CHECK_THAT(error_of("[127.0.0.1]:80"), Contains("not a numeric loopback"));
}

// Connects to a Unix socket; whether it answered.
bool connects(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

TEST_CASE("a Unix listener replaces a dead server's socket, refuses a live one's, and removes its own",
          "[unit][serve]") {
  husk::test::TempDir dir;
  const std::string path = dir.file("fn.sock");
  auto address = parse_listen_address("unix:" + path);
  REQUIRE(address);
  {
    auto first = Listener::open(*address);
    REQUIRE(first);
    CHECK(connects(path));
    CHECK(first->description() == "unix:" + path);
    // A second server on the same path while the first listens: refused.
    auto second = Listener::open(*address);
    REQUIRE_FALSE(second);
    CHECK_THAT(second.error().message, Contains("another server is listening there"));
  }
  CHECK_FALSE(std::filesystem::exists(path));

  // A socket file nobody listens on (a server killed with -9): replaced.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
    ::close(fd);
  }
  REQUIRE(std::filesystem::exists(path));
  auto again = Listener::open(*address);
  REQUIRE(again);
  CHECK(connects(path));

  // Not a socket: left alone.
  const std::string plain = dir.file("plain");
  { std::ofstream(plain) << "data"; }
  auto refused = Listener::open(*parse_listen_address("unix:" + plain));
  REQUIRE_FALSE(refused);
  CHECK_THAT(refused.error().message, Contains("not a socket"));
  CHECK(std::filesystem::exists(plain));
}

TEST_CASE("a TCP listener on port 0 tells the port it got, and a taken port names the error", "[unit][serve]") {
  auto address = parse_listen_address("127.0.0.1:0");
  REQUIRE(address);
  auto l = Listener::open(*address);
  REQUIRE(l);
  CHECK(l->port() != 0);
  CHECK(l->description() == "127.0.0.1:" + std::to_string(l->port()));
  auto same = parse_listen_address("127.0.0.1:" + std::to_string(l->port()));
  REQUIRE(same);
  auto taken = Listener::open(*same);
  REQUIRE_FALSE(taken);
  CHECK_THAT(taken.error().message, Contains("bind 127.0.0.1:" + std::to_string(l->port())));
  CHECK_THAT(taken.error().message, Contains("Address already in use"));
}

}  // namespace
}  // namespace husk::serve
