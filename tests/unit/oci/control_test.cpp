// The keeper's control socket (runtime/oci/control.h): a real ControlServer
// answering control_call from another thread, refused and unanswered
// requests, socket paths past sun_path's 108 bytes, and signal names.
#include "runtime/oci/control.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "runtime/common/joining_thread.h"
#include "tests/support/temp_dir.h"

namespace husk::oci {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kCallTimeout{5000};

// What a server thread saw: the request it accepted, if any.
struct Served {
  bool accepted = false;
  ControlRequest request{};
};

// Waits (bounded) for a connection on `server`, accepts it and answers
// `outcome`. Runs on its own thread: no Catch2 assertions in here.
Served serve_one(ControlServer& server, const Result<void>& outcome) {
  Served out;
  pollfd p{server.fd(), POLLIN, 0};
  if (::poll(&p, 1, 5000) != 1) return out;
  auto pending = server.accept();
  if (!pending) return out;
  out.accepted = true;
  out.request = pending->request;
  ControlServer::answer(*pending, outcome);
  return out;
}

// Calls `request` at `path` while a thread serves one connection.
Result<void> call_served(ControlServer& server, const std::string& path, const ControlRequest& request,
                         const Result<void>& outcome, Served& served) {
  auto thread = JoiningThread::start("control server", [&] { served = serve_one(server, outcome); });
  REQUIRE(thread);
  auto result = control_call(path, request, kCallTimeout);
  thread->join();
  return result;
}

// A raw SEQPACKET client, for requests control_call would never send.
UniqueFd raw_connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  REQUIRE(::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0);
  return fd;
}

TEST_CASE("control: start and kill through a real socket", "[oci][control]") {
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  auto server = ControlServer::listen(path);
  REQUIRE(server);
  CHECK(fs::is_socket(path));

  Served served;
  auto started = call_served(*server, path, ControlRequest{ControlRequest::Kind::kStart, 0}, {}, served);
  CHECK(started);
  CHECK(served.accepted);
  CHECK(served.request.kind == ControlRequest::Kind::kStart);

  served = {};
  auto killed = call_served(*server, path, ControlRequest{ControlRequest::Kind::kKill, SIGKILL}, {}, served);
  CHECK(killed);
  CHECK(served.accepted);
  CHECK(served.request.kind == ControlRequest::Kind::kKill);
  CHECK(served.request.signo == SIGKILL);

  // The keeper's refusal comes back as the call's error, its text intact.
  served = {};
  auto refused = call_served(*server, path, ControlRequest{ControlRequest::Kind::kStart, 0},
                             fail("container is not created"), served);
  CHECK(served.accepted);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().message == "container is not created");
}

TEST_CASE("control: a bad request is answered with an error and dropped", "[oci][control]") {
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  auto server = ControlServer::listen(path);
  REQUIRE(server);

  SECTION("raw garbage") {
    UniqueFd client = raw_connect(path);
    const std::string bogus = "bogus request";
    REQUIRE(::send(client.get(), bogus.data(), bogus.size(), 0) == static_cast<ssize_t>(bogus.size()));
    CHECK_FALSE(server->accept().has_value());
    char buf[512] = {};
    const ssize_t n = ::recv(client.get(), buf, sizeof(buf), 0);
    REQUIRE(n > 0);
    const std::string answer(buf, static_cast<size_t>(n));
    CHECK_THAT(answer, Catch::StartsWith("error "));
    CHECK_THAT(answer, Catch::Contains("bogus request"));
    // One request per connection: the server closed it.
    CHECK(::recv(client.get(), buf, sizeof(buf), 0) == 0);
  }
  SECTION("a signal out of range, through control_call") {
    Served served;
    auto r = call_served(*server, path, ControlRequest{ControlRequest::Kind::kKill, 0}, {}, served);
    CHECK_FALSE(served.accepted);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("unknown control request 'kill 0'"));
  }
  SECTION("a client that hangs up without a request") {
    { UniqueFd client = raw_connect(path); }
    CHECK_FALSE(server->accept().has_value());
  }
  SECTION("no connection waiting: accept does not block") {
    const auto t0 = Clock::now();
    CHECK_FALSE(server->accept().has_value());
    CHECK(Clock::now() - t0 < milliseconds(500));
  }
}

TEST_CASE("control: parse_control and format_control agree", "[oci][control]") {
  for (const ControlRequest& r : {ControlRequest{ControlRequest::Kind::kStart, 0},
                                  ControlRequest{ControlRequest::Kind::kKill, 1},
                                  ControlRequest{ControlRequest::Kind::kKill, 64}}) {
    auto back = parse_control(format_control(r));
    REQUIRE(back);
    CHECK(back->kind == r.kind);
    CHECK(back->signo == r.signo);
  }
  for (const char* bad : {"", "start ", "Start", "kill", "kill ", "kill 0", "kill 65", "kill -9", "kill 9x",
                          "kill 09 ", "kill  9", "stop"}) {
    INFO(bad);
    CHECK_FALSE(parse_control(bad));
  }
}

TEST_CASE("control: no listener is ENOENT or ECONNREFUSED", "[oci][control]") {
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  const ControlRequest start{ControlRequest::Kind::kStart, 0};

  auto missing = control_call(path, start, kCallTimeout);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == ENOENT);
  CHECK_THAT(missing.error().message, Catch::Contains(path));

  // A keeper that died leaves its socket file behind.
  {
    auto server = ControlServer::listen(path);
    REQUIRE(server);
  }
  REQUIRE(fs::is_socket(path));
  auto refused = control_call(path, start, kCallTimeout);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code == ECONNREFUSED);

  // A new keeper replaces the stale file.
  auto server = ControlServer::listen(path);
  REQUIRE(server);
  Served served;
  CHECK(call_served(*server, path, start, {}, served));
  CHECK(served.accepted);
}

TEST_CASE("control: a keeper that never answers times the call out", "[oci][control]") {
  test::TempDir tmp;
  const std::string path = tmp.file("control.sock");
  auto server = ControlServer::listen(path);
  REQUIRE(server);

  SECTION("never accepted") {
    const auto t0 = Clock::now();
    auto r = control_call(path, ControlRequest{ControlRequest::Kind::kKill, SIGTERM}, milliseconds(300));
    const auto took = Clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ETIMEDOUT);
    CHECK(took >= milliseconds(290));
    CHECK(took < milliseconds(2000));
  }
  SECTION("accepted but never answered") {
    std::optional<ControlServer::Pending> held;
    auto thread = JoiningThread::start("control server", [&] {
      pollfd p{server->fd(), POLLIN, 0};
      if (::poll(&p, 1, 5000) == 1) held = server->accept();
    });
    REQUIRE(thread);
    const auto t0 = Clock::now();
    auto r = control_call(path, ControlRequest{ControlRequest::Kind::kStart, 0}, milliseconds(300));
    const auto took = Clock::now() - t0;
    thread->join();
    CHECK(held.has_value());
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ETIMEDOUT);
    CHECK(took < milliseconds(2000));
  }
}

TEST_CASE("control: socket paths longer than sun_path", "[oci][control]") {
  test::TempDir tmp;
  const fs::path dir = tmp.path() / std::string(120, 'd');
  REQUIRE(fs::create_directories(dir));
  const std::string path = (dir / "control.sock").string();
  REQUIRE(path.size() >= sizeof(sockaddr_un::sun_path));

  auto where = unix_address(path);
  REQUIRE(where);
  CHECK(where->dir);
  CHECK_THAT(where->path, Catch::StartsWith("/proc/self/fd/"));
  CHECK_THAT(where->path, Catch::EndsWith("/control.sock"));
  CHECK(where->path.size() < sizeof(sockaddr_un::sun_path));

  auto server = ControlServer::listen(path);
  REQUIRE(server);
  // Bound in the long folder itself, not somewhere the short name points.
  CHECK(fs::is_socket(path));
  Served served;
  auto r = call_served(*server, path, ControlRequest{ControlRequest::Kind::kKill, SIGUSR1}, {}, served);
  CHECK(r);
  CHECK(served.accepted);
  CHECK(served.request.signo == SIGUSR1);

  // A short path is used as it is, with no folder held open.
  auto short_one = unix_address(tmp.file("s.sock"));
  REQUIRE(short_one);
  CHECK(short_one->path == tmp.file("s.sock"));
  CHECK_FALSE(short_one->dir);

  // A last component that is itself too long cannot be reached: an error,
  // not a truncated name.
  const std::string long_name = (tmp.path() / std::string(120, 'n')).string();
  CHECK_FALSE(ControlServer::listen(long_name));
  CHECK_FALSE(control_call(long_name, ControlRequest{}, milliseconds(100)));
  // So is a long path whose folder does not exist.
  auto no_dir = unix_address((dir / "missing" / std::string(10, 'x')).string() + std::string(100, 'y'));
  CHECK_FALSE(no_dir);
}

TEST_CASE("parse_signal takes numbers and names as kill does", "[oci][control]") {
  const std::pair<const char*, int> good[] = {
      {"9", SIGKILL},       {"KILL", SIGKILL}, {"SIGKILL", SIGKILL},          {"sigterm", SIGTERM},
      {"term", SIGTERM},    {"1", SIGHUP},     {"64", 64},                    {"15", SIGTERM},
      {"SIGWINCH", SIGWINCH}, {"usr1", SIGUSR1}, {"RTMIN", SIGRTMIN},        {"RTMIN+2", SIGRTMIN + 2},
      {"sigrtmin+1", SIGRTMIN + 1}};
  for (const auto& [text, signo] : good) {
    INFO(text);
    auto s = parse_signal(text);
    REQUIRE(s);
    CHECK(*s == signo);
  }
  // The last real-time signal, whatever the C library reserves below it.
  auto last = parse_signal("RTMIN+" + std::to_string(SIGRTMAX - SIGRTMIN));
  REQUIRE(last);
  CHECK(*last == SIGRTMAX);
  CHECK_FALSE(parse_signal("RTMIN+" + std::to_string(SIGRTMAX - SIGRTMIN + 1)));
  for (const char* text : {"0", "65", "FOO", "", "1x", "-9", "+9", "SIG", "9999", "KILL ", " KILL", "RTMIN+",
                           "RTMIN+x", "RTMIN+-5", "RTMIN+2x", "RTMIN+99",
                           "RTMIN+2147483647", "RTMIN+31"}) {
    INFO(text);
    auto s = parse_signal(text);
    REQUIRE_FALSE(s);
    CHECK(s.error().code == EINVAL);
  }
}

}  // namespace
}  // namespace husk::oci
